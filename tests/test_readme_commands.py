"""The README's commands, and those of the pages in ``docs/``, work as printed.

Every ```bash block of README.md and of every ``docs/**/*.md`` page is marked
``<!-- readme-test: run | template | skip (reason) -->``. The ``run`` blocks are executed in order
(README.md first, then the docs pages by path), verbatim, with bash, in a copy of the repository whose
``python`` is this test's interpreter (as after ``source .venv/bin/activate``) — at tiny sizes: the
recipes in that copy train for two iterations with the tiny CLIP config instead of RN50, and the
two commands whose defaults run for minutes get a few extra flags (listed in TINY_FLAGS). The
state ``make demo`` leaves behind that the blocks rely on (the CLIP weights file) is made first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = re.compile(r"<!-- readme-test: (run|template|skip)\b[^>]*-->\s*\n```bash\n(.*?)```", re.S)
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
# Commands whose default length is minutes: flags appended in the test only (sizes, not behaviour).
TINY_FLAGS = {
    "scripts/iqa_ranking_check.py": ["--no-niqe"],
    "scripts/make_synthetic_rain.py": ["--size", "64", "--test-size", "64", "--per-photo", "2"],
}
LINKED = (
    *("basicsr", "scripts", "sfd_arch", "sfd_loss", "sfd_model", "sfd_data", "sfd_metric", "sfd_utils"),
    *("sfd_tools", "sfd_trainner", "sfd_pyiqa", "sfd_lab"),
)


def pages() -> list[str]:
    """README.md, then every Markdown page under docs/ (sorted by path), relative to the root."""
    docs = sorted(
        os.path.relpath(os.path.join(d, f), ROOT)
        for d, _, files in os.walk(os.path.join(ROOT, "docs"))
        for f in files
        if f.endswith(".md")
    )
    return ["README.md", *docs]


def page_blocks(page: str) -> tuple[list[tuple[str, str]], int]:
    """(kind, block) of every marked ```bash block of ``page``, and how many ```bash blocks it has."""
    text = open(os.path.join(ROOT, page), encoding="utf-8").read()
    return [(m.group(1), m.group(2)) for m in MARK.finditer(text)], len(BLOCK.findall(text))


def readme_blocks() -> tuple[list[tuple[str, str]], int]:
    """The marked blocks of README.md and the docs pages, in running order, and the number of blocks."""
    marked, total = [], 0
    for page in pages():
        found, n = page_blocks(page)
        marked += found
        total += n
    return marked, total


def commands(block: str) -> list[str]:
    """Lines joined at trailing backslashes; comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_every_bash_block_is_marked():
    assert {"docs/results/performance.md", "docs/gpu-check.md"} <= set(pages())
    for page in pages():
        found, n = page_blocks(page)
        assert len(found) == n, f"a ```bash block of {page} lacks its <!-- readme-test: ... --> marker"
    marked, _ = readme_blocks()
    for kind, block in marked:
        if kind == "template":
            assert all("<" in c for c in commands(block)), f"a template line has no <placeholder>: {block}"
        if kind == "run":
            assert all("<" not in c for c in commands(block)), f"a run block has a placeholder: {block}"


def _tiny_recipes(work: str) -> None:
    """Copies of the demo recipes at tiny sizes: 2 iterations, tiny CLIP, small validation."""
    os.makedirs(os.path.join(work, "options"))
    for name in os.listdir(os.path.join(ROOT, "options")):
        with open(os.path.join(ROOT, "options", name), encoding="utf-8") as f:
            opt = yaml.safe_load(f)
        if name.startswith("demo_"):
            train = opt["train"]
            train["total_iter"] = 2
            opt["val"]["val_freq"] = 2
            opt["logger"].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
            for d in opt["datasets"].values():
                if "batch_size_per_gpu" in d:
                    d["batch_size_per_gpu"] = 2
            if opt.get("network_d", {}).get("type") == "SFDDiscriminator":
                opt["network_d"].update(clip_model="tiny-rn", feat_mid_channels=8, n_ctx=4)
                opt["network_d"]["clip_config"] = os.path.join(ROOT, "sfd_arch", "clip_configs", "tiny-rn.json")
        with open(os.path.join(work, "options", name), "w", encoding="utf-8") as f:
            yaml.safe_dump(opt, f, sort_keys=False)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("readme"))
    for name in LINKED:
        os.symlink(os.path.join(ROOT, name), os.path.join(work, name))
    _tiny_recipes(work)
    # What `make demo` leaves for the commands: the CLIP weights file the demo recipe names (here a
    # random-calibrated tiny CLIP, matching the tiny recipe copies).
    import open_clip
    import torch

    from sfd_arch.clip_backbone import register_clip_config
    from sfd_arch.clip_provenance import save_random_calibrated

    register_clip_config(os.path.join(ROOT, "sfd_arch", "clip_configs", "tiny-rn.json"))
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-rn", pretrained=None)
    path = os.path.join(work, "experiments", "pretrained_models", "RN50_random_calibrated.pt")
    os.makedirs(os.path.dirname(path))
    save_random_calibrated(model, path, note="readme test stand-in")
    # `source .venv/bin/activate` puts the environment's bin folder first on PATH: do the same
    return work, os.path.dirname(sys.executable)


def test_run_blocks_work_as_printed(workspace):
    work, bindir = workspace
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    marked, _ = readme_blocks()
    ran = 0
    for kind, block in marked:
        if kind != "run":
            continue
        for cmd in commands(block):
            script = next((s for s in TINY_FLAGS if s in cmd), None)
            full = cmd + (" " + " ".join(TINY_FLAGS[script]) if script else "")
            proc = subprocess.run(["bash", "-c", full], cwd=work, env=env, capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"README command failed: {cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            ran += 1
    assert ran >= 10
    # what the commands promise to leave behind
    for path in (
        "experiments/demo_SR_psnr_cpu/models/net_g_latest.pth",
        "experiments/demo_SFD_cpu/models/net_d_latest.pth",
        "results/eval/SFD-demo.json",
        "results/eval/Bicubic.json",
        "results/pd_demo.png",
        "results/iqa_ranking_demo/report.md",
        "results/demo_CSUD_cpu",
    ):
        assert os.path.exists(os.path.join(work, path)), path
    shutil.rmtree(os.path.join(work, "datasets"), ignore_errors=True)
