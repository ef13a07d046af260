"""Every program against the odd inputs of issue 28: exit status, traceback, lines, peak memory.

Each case runs one program of a checkout (``scripts/<name>.py`` of ``--repo``: this repository, or
an older tree extracted with ``git archive``) as a user would, in its own process, and records:
the exit status, whether stderr holds a Python traceback, how many lines stderr has, the peak
resident memory (:mod:`sfd_lab.checks.peak_memory`: ``wait4``'s ``ru_maxrss`` from a small parent),
the wall time, and any file that appeared outside the run's output root. A watchdog kills a case
past ``--kill-above-mb`` of resident memory or ``--timeout`` seconds (recorded as such), so a
memory bomb in an old tree is measured without taking the machine down.

The verdict per case is the contract of issue 28: the expected status (1 = the odd input named and
skipped, 2 = one line), no traceback, no escaped file, peak memory under 2 GB.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field

import numpy as np

from sfd_lab.checks import odd_files as odd
from sfd_lab.checks.peak_memory import run_measured

MEMORY_LIMIT_MB = 2048  # the bound for any odd input


@dataclass
class Case:
    """One program run: ``script`` (a ``scripts/`` stem) with ``argv``; the statuses the contract allows."""

    name: str
    script: str
    argv: list
    expect: tuple
    env: dict = field(default_factory=dict)


@dataclass
class Outcome:
    case: str
    script: str
    code: int | None
    traceback: bool
    stderr_lines: int
    peak_mb: float
    seconds: float
    killed: str
    escaped: list
    last_line: str
    ok: bool = False


def run_case(repo: str, case: Case, work: str, outside: str, kill_mb: float, timeout: float) -> Outcome:
    """Run ``case`` with ``repo``'s script; see the module docstring for what is recorded."""
    before = set(os.listdir(outside))
    cmd = [sys.executable, os.path.join(repo, "scripts", f"{case.script}.py"), *case.argv]
    env = {**os.environ, "PYTHONPATH": repo, **case.env}  # the checkout's packages, even its start-up hook's
    m = run_measured(cmd, cwd=work, env=env, kill_mb=kill_mb, timeout=timeout)
    lines = [line for line in m.stderr.splitlines() if line.strip()]
    escaped = sorted(set(os.listdir(outside)) - before)
    for name in escaped:  # clean up what a case wrote outside its root, for the next case
        path = os.path.join(outside, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return Outcome(
        case.name,
        case.script,
        m.code,
        "Traceback (most recent call last)" in m.stderr,
        len(lines),
        m.peak_mb,
        m.seconds,
        m.killed,
        escaped,
        (lines[-1] if lines else "")[:200],
    )


def _bgr(h: int = 48, w: int = 64) -> np.ndarray:
    from sfd_utils.photos import load_photo

    return np.ascontiguousarray(load_photo("chelsea")[60 : 60 + h, 100 : 100 + w, ::-1])


def _weights(folder: str) -> dict:
    """Tiny real checkpoints the programs accept: an SFD discriminator, a CSUD derainer, an RRDBNet."""
    import open_clip
    import torch

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS
    from sfd_arch.nafnet_arch import CSUDNAFNet
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator

    open_clip.add_model_config(TINY_CLIP_CONFIGS)
    torch.manual_seed(0)
    clip = os.path.join(folder, "tiny-rn.pt")
    torch.save(open_clip.create_model("tiny-rn", pretrained=None).state_dict(), clip)
    disc = SFDDiscriminator("tiny-rn", clip, n_ctx=4, feat_mid_channels=8)
    files = {"net_d": os.path.join(folder, "net_d.pth"), "net_g_derain": os.path.join(folder, "net_g_derain.pth")}
    torch.save({"params": disc.state_dict()}, files["net_d"])
    net = CSUDNAFNet(width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])
    torch.save({"params": net.state_dict()}, files["net_g_derain"])
    return files


def image_cases(work: str, sparse_bytes: int, bomb_side: int) -> list[Case]:
    """One folder per odd image (next to a good one), run through the four image-reading programs."""
    cases = []
    makers = {
        "png_claims_100000x100000": lambda d: odd.png_claiming(os.path.join(d, "claims.png")),
        f"png_bomb_{bomb_side}x{bomb_side}": lambda d: odd.png_bomb(os.path.join(d, "bomb.png"), bomb_side),
        "gif_65535_frames": lambda d: odd.gif_frames(os.path.join(d, "frames.png")),
        "folder_named_x.png": lambda d: odd.folder_named(os.path.join(d, "x.png")),
        "symlink_loop": lambda d: odd.symlink_loop(d),
        f"sparse_{sparse_bytes >> 30}GB": lambda d: odd.sparse_file(os.path.join(d, "sparse.png"), sparse_bytes),
        "not_an_image": lambda d: odd.text_file(os.path.join(d, "notes.png")),
    }
    weights = _weights(work)
    for label, make in makers.items():
        folder, gt = os.path.join(work, "in", label), os.path.join(work, "gt", label)
        os.makedirs(folder)
        os.makedirs(gt)
        odd.write_png(os.path.join(folder, "good.png"), _bgr())
        make(folder)
        for name in os.listdir(folder):  # the GT side holds a good image under every name
            odd.write_png(os.path.join(gt, name), _bgr())
        cases += _programs_on(label, folder, gt, work, weights, expect=(1,))
    folder, gt = os.path.join(work, "in", "not_utf8_name"), os.path.join(work, "gt", "not_utf8_name")
    for f in (folder, gt):
        os.makedirs(f)
        odd.write_png(odd.not_utf8_name(f), _bgr())
    cases += _programs_on("not_utf8_name", folder, gt, work, weights, expect=(0,))
    return cases


def _programs_on(label: str, folder: str, gt: str, work: str, weights: dict, expect: tuple) -> list[Case]:
    out = os.path.join(work, "out", label)
    bicubic = ["--arch", "SFDBicubicUpsampler", "--arch-opt", "scale=2", "--device", "cpu", "--quiet"]
    return [
        Case(f"infer: {label}", "inference_sr", ["-i", folder, "-o", f"{out}/infer", *bicubic], expect),
        Case(
            f"evaluate: {label}",
            "evaluate_sr",
            ["--sr", folder, "--gt", gt, "--metrics", "psnr", "--scale", "1", "--quiet", "--out", f"{out}/eval"],
            expect,
        ),
        Case(
            f"sfd-iqa: {label}",
            "sfd_iqa_eval",
            [folder, "-c", weights["net_d"], "--tile", "64", "-o", f"{out}/iqa", "--quiet", "--no-plot"],
            expect,
        ),
        Case(
            f"derain: {label}",
            "derain",
            ["-i", folder, "-w", weights["net_g_derain"], "-o", f"{out}/derain", "--device", "cpu"],
            expect,
        ),
    ]


def weights_cases(work: str) -> list[Case]:
    """Hostile weights files given to every program that loads weights, and SFD_CLIP_WEIGHTS to the demo."""
    folder = os.path.join(work, "weights")
    os.makedirs(folder)
    files = {
        "pickled_pth": odd.pickled_weights(os.path.join(folder, "pickled.pth")),
        "safetensors_10k_deep_metadata": odd.deep_metadata_safetensors(os.path.join(folder, "deep.safetensors")),
        "safetensors_naming_1.9G_param_net": odd.huge_network_safetensors(os.path.join(folder, "huge.safetensors")),
    }
    images = os.path.join(work, "in", "good")
    os.makedirs(images)
    odd.write_png(os.path.join(images, "good.png"), _bgr())
    out = os.path.join(work, "out", "weights")
    cases = []
    for label, path in files.items():
        cases += [
            Case(f"infer --model {label}", "inference_sr", ["-i", images, "-o", out, "--model", path, "--quiet"], (2,)),
            Case(f"derain -w {label}", "derain", ["-i", images, "-w", path, "-o", out, "--device", "cpu"], (2,)),
            Case(f"export --model {label}", "export", ["--model", path, "-o", out], (2,)),
            Case(f"sfd-iqa -c {label}", "sfd_iqa_eval", [images, "-c", path, "-o", out, "--quiet"], (2,)),
            Case(
                f"evaluate --sfd-iqa-checkpoint {label}",
                "evaluate_sr",
                ["--sr", images, "--gt", images, "--sfd-iqa-checkpoint", path, "--quiet", "--out", out],
                (2,),
            ),
        ]
    cases.append(
        Case(
            "demo SFD_CLIP_WEIGHTS=pickled_pth",
            "demo",
            ["--iters", "1"],
            (2,),
            {"SFD_CLIP_WEIGHTS": files["pickled_pth"]},
        )
    )
    return cases


def output_cases(work: str, outside: str) -> list[Case]:
    """Output paths that are files, cannot be created, or names that climb out of the output root."""
    import torch
    from basicsr.archs.rrdbnet_arch import RRDBNet

    a_file = os.path.join(work, "a_file")
    with open(a_file, "w") as f:
        f.write("a file, not a folder")
    images = os.path.join(work, "in", "good")
    net_g = os.path.join(work, "net_g_rrdb.pth")
    torch.manual_seed(0)
    torch.save({"params": RRDBNet(3, 3, scale=4, num_feat=8, num_block=1, num_grow_ch=4).state_dict()}, net_g)
    os.makedirs(os.path.join(work, "out", "names", "good_x"))  # lets a path through `good_x/..` resolve
    result = os.path.join(work, "eval.json")
    with open(result, "w") as f:
        json.dump({"label": "a", "count": 1, "mean": {"psnr": 25.0, "lpips": 0.2}}, f)
    bicubic = ["--arch", "SFDBicubicUpsampler", "--arch-opt", "scale=2", "--device", "cpu", "--quiet"]
    escape = os.path.relpath(os.path.join(outside, "escaped"), os.path.join(work, "out", "names"))
    net_d = os.path.join(work, "net_d.pth")
    return [
        Case("infer -o <a file>", "inference_sr", ["-i", images, "-o", a_file, *bicubic], (2,)),
        Case("infer -o /sys/<new>", "inference_sr", ["-i", images, "-o", "/sys/sfd_out", *bicubic], (2,)),
        Case(
            "evaluate --out <a file>", "evaluate_sr", ["--sr", images, "--gt", images, "--out", a_file, "--quiet"], (2,)
        ),
        Case(
            "sfd-iqa -o <a file>", "sfd_iqa_eval", [images, "-c", net_d, "-o", a_file, "--quiet", "--tile", "64"], (2,)
        ),
        Case(
            "derain -o <a file>",
            "derain",
            ["-i", images, "-w", os.path.join(work, "net_g_derain.pth"), "-o", a_file],
            (2,),
        ),
        Case("export -o <a file>", "export", ["--model", net_g, "-o", a_file, "--format", "safetensors"], (2,)),
        Case("plot_pd --out <a file>/pd", "plot_pd", [result, "--out", os.path.join(a_file, "pd")], (2,)),
        Case(
            "iqa_ranking --out <a file>",
            "iqa_ranking_check",
            ["--checkpoint", net_d, "--out", a_file, "--no-speed"],
            (2,),
        ),
        Case("make_synthetic_rain --root <a file>", "make_synthetic_rain", ["--root", a_file], (2,)),
        Case("prepare_demo_data --root <a file>", "prepare_demo_data", ["--root", a_file], (2,)),
        Case(
            "evaluate --name ../../outside/escaped",
            "evaluate_sr",
            [
                "--sr",
                images,
                "--gt",
                images,
                "--metrics",
                "psnr",
                "--out",
                os.path.join(work, "out", "names"),
                "--name",
                escape,
                "--quiet",
            ],
            (2,),
        ),
        Case(
            "export --name ../../outside/escaped",
            "export",
            ["--model", net_g, "-o", os.path.join(work, "out", "names"), "--name", escape, "--format", "safetensors"],
            (2,),
        ),
        Case(
            "infer --suffix x/../../../outside/escaped",
            "inference_sr",
            ["-i", images, "-o", os.path.join(work, "out", "names"), "--suffix", f"x/../{escape}", *bicubic],
            (2,),
        ),
    ]


def table_cases(work: str, outside: str) -> list[Case]:
    """Score tables naming images outside their folder; JSON inputs that are devices, deep or huge."""
    folder = os.path.join(work, "table")
    os.makedirs(folder)
    odd.write_png(os.path.join(folder, "good.png"), _bgr())
    odd.write_png(os.path.join(outside, "..", "secret.png"), _bgr())
    table = os.path.join(folder, "mos.csv")
    secret = os.path.abspath(os.path.join(outside, "..", "secret.png"))
    with open(table, "w") as f:
        f.write(f"image_name,MOS\ngood.png,3.0\n../secret.png,2.0\n{secret},1.0\n")
    net_d = os.path.join(work, "net_d.pth")
    deep = os.path.join(work, "deep.json")
    with open(deep, "w") as f:
        f.write("[" * 100_000 + "]" * 100_000)
    sparse = odd.sparse_file(os.path.join(work, "sparse.json"), 8 << 30)
    return [
        Case(
            "sfd-iqa: MOS table naming ../ and absolute images",
            "sfd_iqa_eval",
            [table, "-c", net_d, "--tile", "64", "-o", os.path.join(work, "out", "table"), "--quiet", "--no-plot"],
            (2,),
        ),
        Case("plot_pd /dev/zero", "plot_pd", ["/dev/zero", "--out", os.path.join(work, "out", "pd")], (2,)),
        Case("plot_pd 100k-deep JSON", "plot_pd", [deep, "--out", os.path.join(work, "out", "pd")], (2,)),
        Case("plot_pd sparse 8 GB JSON", "plot_pd", [sparse, "--out", os.path.join(work, "out", "pd")], (2,)),
    ]


def verdict(o: Outcome, expect: tuple) -> bool:
    return o.code in expect and not o.traceback and not o.escaped and not o.killed and o.peak_mb < MEMORY_LIMIT_MB


def markdown(outcomes: list[Outcome], repo: str) -> str:
    lines = [
        f"# Odd inputs (issue 28): {repo}",
        "",
        "| case | exit | traceback | stderr lines | peak MB | s | killed | escaped | verdict | last line |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        last = o.last_line.replace("|", "\\|")
        cells = [o.case, o.code, "yes" if o.traceback else "no", o.stderr_lines, f"{o.peak_mb:.0f}", f"{o.seconds:.0f}"]
        cells += [o.killed or "-", ", ".join(o.escaped) or "-", "ok" if o.ok else "FAIL", last]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    n_ok = sum(o.ok for o in outcomes)
    lines += ["", f"{n_ok} of {len(outcomes)} cases as the contract says."]
    return "\n".join(lines)


def run_odd_inputs(a) -> int:
    """``scripts/odd_inputs_check.py``: the namespace of :func:`sfd_lab.checks.cli.odd_inputs_parser`."""
    from sfd_utils.files import output_dir

    repo = os.path.abspath(a.repo)
    out = output_dir(a.out, "--out")
    work = tempfile.mkdtemp(prefix="sfd_odd_inputs_")
    outside = os.path.join(work, "outside")
    os.makedirs(outside)
    try:
        cases = image_cases(work, a.sparse_gb << 30, a.bomb_side) + weights_cases(work)
        cases += output_cases(work, outside) + table_cases(work, outside)
        if a.only:
            cases = [c for c in cases if any(k in c.name for k in a.only)]
        outcomes = []
        for case in cases:
            o = run_case(repo, case, work, outside, a.kill_above_mb, a.timeout)
            o.ok = verdict(o, case.expect)
            outcomes.append(o)
            print(
                f"{'ok  ' if o.ok else 'FAIL'} {case.name}: exit {o.code}, {o.peak_mb:.0f} MB, {o.seconds:.0f} s"
                f"{', traceback' if o.traceback else ''}{', ' + o.killed if o.killed else ''}"
                f"{', escaped ' + str(o.escaped) if o.escaped else ''}",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(out, "odd_inputs.json"), "w") as f:
        json.dump([asdict(o) for o in outcomes], f, indent=1)
    with open(os.path.join(out, "odd_inputs.md"), "w", encoding="utf-8") as f:
        f.write(markdown(outcomes, repo) + "\n")
    print(f"report: {os.path.join(out, 'odd_inputs.md')}")
    return 0
