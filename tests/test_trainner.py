"""traiNNer-redux host: registration through the start-up hook (without basicsr), the recipe under
traiNNer's own schema, a CPU training run of traiNNer's ``train.py`` and SFD-IQA on its checkpoint.

traiNNer-redux comes from the peer source archive (see ``trainner_peer.py``); without it these tests
skip, naming why. Everything that imports traiNNer runs in a subprocess with this worktree first on
``PYTHONPATH``, so the pytest process (a basicsr process) never imports traiNNer.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
from conftest import CLIP_CONFIGS, ROOT, photo
from safetensors.torch import load_file, save_file

from sfd_arch.sfd_discriminator_arch import SFDDiscriminator, decode_config
from sfd_metric.sfd_iqa import SFDIQA, SFDCheckpointError, is_safetensors_file, load_sfd_checkpoint

RECIPE = os.path.join(ROOT, "options", "train_SFD_traiNNer_ESRGAN_x4.yml")
RUNNER = os.path.join(ROOT, "tests", "trainner_cpu_train.py")
BLOCK_BASICSR = textwrap.dedent(
    """
    import importlib.abc, sys
    class _NoBasicsr(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "basicsr" or name.startswith("basicsr."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, _NoBasicsr())
    """
)


def run_py(code: str, cwd: str = ROOT, timeout: int = 300, args: tuple[str, ...] = ()) -> str:
    """Run ``code`` in a fresh interpreter with this worktree first on the path; return stdout."""
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def tiny_disc_file(tmp_path, clip_file: str, name: str = "net_d.safetensors") -> str:
    """An untrained tiny SFDDiscriminator saved as traiNNer saves net_d (flat safetensors)."""
    torch.manual_seed(0)
    disc = SFDDiscriminator("tiny-rn", clip_file, n_ctx=4, feat_mid_channels=8)
    path = str(tmp_path / name)
    save_file({k: v.contiguous() for k, v in disc.state_dict().items()}, path)
    return path


# -- checkpoint formats (no traiNNer needed) ------------------------------------------------------------
def test_sfd_checkpoint_reads_trainner_safetensors_and_pth(tmp_path, tiny_clip_files):
    st = tiny_disc_file(tmp_path, tiny_clip_files["tiny-rn"])
    config, state = load_sfd_checkpoint(st)
    assert config["clip_model"] == "tiny-rn" and config["n_ctx"] == 4
    assert not any(k.startswith("backbone.") for k in state)  # heads and prompts only, no CLIP tensors
    renamed = tmp_path / "net_d_100"  # no extension: recognised by its header
    renamed.write_bytes(open(st, "rb").read())
    assert is_safetensors_file(str(renamed)) and load_sfd_checkpoint(str(renamed))[0] == config
    raw = tmp_path / "net_d_100.pth"  # traiNNer's `save_checkpoint_format: pth`: a raw state dict
    torch.save(load_file(st), raw)
    assert not is_safetensors_file(str(raw))
    assert load_sfd_checkpoint(str(raw))[0] == config
    img = photo("chelsea")[:96, :128]
    scores = {p: SFDIQA.from_checkpoint(p, tile=64, device="cpu").score(img).q for p in (st, str(raw))}
    assert scores[st] == pytest.approx(scores[str(raw)], abs=1e-6)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(open(st, "rb").read()[:200])
    with pytest.raises(SFDCheckpointError, match="broken.safetensors"):
        load_sfd_checkpoint(str(broken))


# -- start-up hook ------------------------------------------------------------------------------------
def test_plain_interpreter_imports_nothing_heavy():
    out = run_py(
        "import sys; print(int('torch' in sys.modules), int('sfd_trainner' in sys.modules), "
        "int(any(type(f).__name__ == '_HostFinder' for f in sys.meta_path)))",
        cwd="/",
    )
    assert out.split() == ["0", "0", "1"]


def test_importing_trainner_registers_sfd_without_basicsr(trainner_root, tmp_path, tiny_clip_files):
    ckpt = tiny_disc_file(tmp_path, tiny_clip_files["tiny-rn"])
    rgb_file = tmp_path / "rgb.npy"
    np.save(rgb_file, photo("chelsea")[:96, :128])
    code = BLOCK_BASICSR + textwrap.dedent(
        """
        import json, sys
        import numpy as np, torch
        import traiNNer
        from traiNNer.utils.registry import ARCH_REGISTRY, METRIC_REGISTRY
        from traiNNer.metrics import calculate_metric
        from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
        from sfd_metric.sfd_iqa import get_scorer
        rgb = np.load(sys.argv[2])
        opt = {"type": "calculate_sfd_iqa", "checkpoint": sys.argv[1], "tile": 64, "better": "higher"}
        value = calculate_metric({"img": rgb, "img2": rgb}, opt, torch.device("cpu"))  # traiNNer's call
        scorer = get_scorer(sys.argv[1], clip_pretrained=None, tile=64, stride=None, alpha=0.5,
                            batch_size=16, bf16=False, device="cpu")
        print(json.dumps({
            "arch": ARCH_REGISTRY.get("sfddiscriminator") is SFDDiscriminator,
            "arch_any_case": ARCH_REGISTRY.get("SFDDiscriminator") is SFDDiscriminator,
            "metric": METRIC_REGISTRY.get("calculate_sfd_iqa").__module__,
            "basicsr": "basicsr" in sys.modules,
            "value": value, "rgb": scorer.score(rgb).q, "bgr": scorer.score(rgb[..., ::-1]).q,
        }))
        """
    )
    out = json.loads(run_py(code, args=(ckpt, str(rgb_file))).strip().splitlines()[-1])
    assert out["arch"] and out["arch_any_case"]
    assert out["metric"] == "sfd_trainner.sfd_iqa_metric"
    assert out["basicsr"] is False  # the traiNNer path never imports basicsr
    assert 0.0 <= out["value"] <= 1.0
    assert out["value"] == pytest.approx(out["rgb"], abs=1e-6)  # scored as RGB, not flipped
    assert abs(out["rgb"] - out["bgr"]) > 1e-6


def test_basicsr_imported_after_trainner_gets_every_plugin_class(trainner_root):
    code = textwrap.dedent(
        """
        import sys
        import traiNNer
        from traiNNer.utils.registry import ARCH_REGISTRY as T_ARCH
        assert "basicsr" not in sys.modules and "sfd_model" not in sys.modules
        import basicsr
        from basicsr.utils.registry import ARCH_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY, LOSS_REGISTRY
        print(int(ARCH_REGISTRY.get("SFDDiscriminator") is T_ARCH.get("sfddiscriminator")),
              int("SFDModel" in MODEL_REGISTRY), int("SFDGANLoss" in LOSS_REGISTRY),
              int("calculate_sfd_iqa" in METRIC_REGISTRY), int("CSUDRainGenerator" in ARCH_REGISTRY))
        """
    )
    assert run_py(code).split()[-5:] == ["1", "1", "1", "1", "1"]


# -- the recipe under traiNNer's schema -------------------------------------------------------------------
def test_recipe_is_accepted_by_trainner_schema_and_a_typo_is_not(trainner_root, tmp_path):
    typo = tmp_path / "typo.yml"
    typo.write_text(open(RECIPE).read().replace("use_amp: true", "use_ampp: true"))
    code = BLOCK_BASICSR + textwrap.dedent(
        """
        import inspect, json, sys
        import traiNNer
        from traiNNer.utils.options import yaml_load
        from traiNNer.utils.registry import ARCH_REGISTRY
        opt, _ = yaml_load(sys.argv[1])
        cls = ARCH_REGISTRY.get(opt.network_d["type"])
        params = set(inspect.signature(cls).parameters)
        try:
            yaml_load(sys.argv[2])
            typo = "accepted"
        except Exception as err:
            typo = str(err)
        print(json.dumps({"cls": cls.__name__, "unknown_d_keys": sorted(set(opt.network_d) - params - {"type"}),
                          "losses": [l["type"] for l in opt.train.losses], "typo": typo}))
        """
    )
    out = json.loads(run_py(code, args=(RECIPE, str(typo))).strip().splitlines()[-1])
    assert out["cls"] == "SFDDiscriminator"
    assert out["unknown_d_keys"] == []
    assert "ganloss" in out["losses"]
    assert "use_ampp" in out["typo"]  # msgspec forbids unknown keys: the schema check is real


# -- traiNNer's train.py on CPU, then SFD-IQA from its checkpoint -----------------------------------------
def write_pairs(folder, names, size: int = 96, scale: int = 2) -> None:
    for sub in ("hr", "lr"):
        (folder / sub).mkdir(parents=True)
    for i, name in enumerate(names):
        hr = np.ascontiguousarray(photo(name)[30 * i : 30 * i + size, 40 : 40 + size, ::-1])  # BGR for cv2
        cv2.imwrite(str(folder / "hr" / f"{name}.png"), hr)
        lr = cv2.resize(hr, (size // scale, size // scale), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / "lr" / f"{name}.png"), lr)


def tiny_options(tmp_path, clip_file: str, run_root, pretrain_d: str) -> str:
    """traiNNer options: tiny `compact` generator x2, tiny-CLIP SFD discriminator started from
    ``pretrain_d`` (loaded by traiNNer's own load_network), 2 iterations, checkpoints every iteration,
    a final validation with PSNR and SFD-IQA from traiNNer's own net_d_1."""
    models = run_root / "experiments" / "sfd_cpu" / "models" / "resume_models"
    opt = f"""
name: sfd_cpu
scale: 2
use_amp: false
use_channels_last: false
use_compile: false
num_gpu: 0
manual_seed: 0
datasets:
  train:
    name: tiny
    type: pairedimagedataset
    dataroot_gt: [{tmp_path}/train/hr]
    dataroot_lq: [{tmp_path}/train/lr]
    lq_size: 32
    use_hflip: true
    use_rot: false
    num_worker_per_gpu: 0
    batch_size_per_gpu: 2
    prefetch_factor: ~
    persistent_workers: false
  val:
    name: heldout
    type: pairedimagedataset
    dataroot_gt: [{tmp_path}/val/hr]
    dataroot_lq: [{tmp_path}/val/lr]
network_g: {{type: compact, num_feat: 8, num_conv: 2}}
network_d:
  type: sfddiscriminator
  clip_model: tiny-rn
  clip_config: {CLIP_CONFIGS}/tiny-rn.json
  clip_pretrained: {clip_file}
  feat_mid_channels: 8
  n_ctx: 4
path: {{pretrain_network_g: ~, pretrain_network_d: {pretrain_d}, resume_state: ~}}
train:
  ema_decay: 0
  optim_g: {{type: AdamW, lr: !!float 1e-3, weight_decay: 0, betas: [0.9, 0.99]}}
  optim_d: {{type: AdamW, lr: !!float 1e-3, weight_decay: 0, betas: [0.9, 0.99]}}
  scheduler: {{type: MultiStepLR, milestones: [1000], gamma: 0.5}}
  total_iter: 2
  warmup_iter: -1
  losses:
    - {{type: l1loss, loss_weight: 1.0}}
    - {{type: ganloss, gan_type: vanilla, loss_weight: 0.1}}
val:
  val_enabled: true
  val_freq: 100  # only the validation after training
  save_img: false
  metrics_enabled: true
  metrics:
    psnr: {{type: calculate_psnr, crop_border: 2}}
    sfd_iqa: {{type: calculate_sfd_iqa, checkpoint: {models}/net_d_1.safetensors, tile: 64, better: higher}}
logger:
  print_freq: 1
  save_checkpoint_freq: 1
  save_checkpoint_format: safetensors
  use_tb_logger: false
"""
    path = tmp_path / "sfd_cpu.yml"
    path.write_text(opt)
    return str(path)


def test_trainner_trains_sfd_discriminator_and_its_checkpoint_scores(trainner_root, tmp_path, tiny_clip_files):
    write_pairs(tmp_path / "train", ["astronaut", "coffee", "rocket"])
    write_pairs(tmp_path / "val", ["chelsea"])
    run_root = tmp_path / "run"
    pretrain_d = tiny_disc_file(tmp_path, tiny_clip_files["tiny-rn"], "pretrain_net_d.safetensors")
    options = tiny_options(tmp_path, tiny_clip_files["tiny-rn"], run_root, pretrain_d)
    counts_file = tmp_path / "clip_counts.json"
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "2", "COLUMNS": "200"}  # rich: fewer wraps
    env["SFD_TEST_CLIP_COUNTS"] = str(counts_file)
    proc = subprocess.run(
        [sys.executable, RUNNER, trainner_root, str(run_root), "-opt", options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = proc.stdout + proc.stderr
    # traiNNer logs an exception in its loop and still exits 0: judge by the log and the files
    assert proc.returncode == 0 and "End of training" in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    assert "Loading SFDDiscriminator model" in log, log[-4000:]  # pretrain_d through traiNNer, strict
    exp = run_root / "experiments" / "sfd_cpu" / "models"
    d0 = load_file(pretrain_d)
    d1, d2 = (load_file(str(exp / "resume_models" / f"net_d_{i}.safetensors")) for i in (1, 2))
    assert sorted(d1) == sorted(d0)
    assert (exp / "net_g_latest.safetensors").is_file()
    assert decode_config(d2["_extra_state"])["clip_model"] == "tiny-rn"  # SFD metadata survives safetensors
    # the HR crop the discriminator trained on (lq_size 32 x scale 2): SFD-IQA's default tile for this file
    assert decode_config(d2["_extra_state"])["train_patch_size"] == 64
    assert not any(k.startswith("backbone.") for k in d2)  # CLIP is never saved
    trained = [k for k in d1 if k != "_extra_state" and not torch.equal(d1[k], d2[k])]
    assert any(k.startswith("feat_disc.") for k in trained) and any(k.startswith("prompt_pair.") for k in trained)
    # traiNNer's SRModel calls net_d three times per iteration; feature reuse keeps CLIP at two image
    # passes and one text pass (counted around each optimize_parameters by the test runner)
    counts = json.loads(counts_file.read_text())
    assert len(counts) == 2 and all(c["image"] <= 2 and c["text"] <= 1 for c in counts), counts
    # SFD-IQA ran as a traiNNer validation metric (RGB + device) on traiNNer's own net_d_1
    values = [float(v) for v in re.findall(r"# sfd_iqa\s*:\s*([0-9.]+)", log)]
    assert values and all(0.0 <= v <= 1.0 for v in values), log[-3000:]

    # traiNNer's own generator file (its `compact`, a flat safetensors) upscales with no recipe
    from sfd_tools.sr.inference import load_upscaler

    upscaler = load_upscaler(str(exp / "net_g_latest.safetensors"), device="cpu")
    lr = cv2.imread(str(tmp_path / "val" / "lr" / "chelsea.png"))
    assert upscaler.scale == 2 and upscaler.enhance(lr)[0].shape == (96, 96, 3)

    # the user's scoring command on traiNNer's latest net_d, where basicsr is not installed
    latest = str(exp / "resume_models" / "net_d_latest.safetensors")
    out_dir = tmp_path / "iqa"
    script = os.path.join(ROOT, "scripts", "sfd_iqa_eval.py")
    argv = [script, str(tmp_path / "val" / "hr"), "-c", latest, "-o", str(out_dir)]
    argv += ["--tile", "64", "--device", "cpu", "--quiet", "--no-plot"]
    code = BLOCK_BASICSR + f"import runpy; sys.argv = {argv!r}; runpy.run_path({script!r}, run_name='__main__')"
    run_py(code)
    with open(out_dir / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["chelsea.png"]
    hr = cv2.imread(str(tmp_path / "val" / "hr" / "chelsea.png"))[..., ::-1]
    expected = SFDIQA.from_checkpoint(latest, tile=64, device="cpu").score(hr)
    assert float(rows[0]["q"]) == pytest.approx(expected.q, abs=1e-5)


def test_misspelt_network_d_option_is_one_line_under_trainner_train_py(trainner_root, tmp_path, tiny_clip_files):
    """traiNNer's train.py prints an uncaught start-up error in rich's traceback box (about 90 lines of
    code frames for this mistake before the fix); the option error comes out as one line instead."""
    write_pairs(tmp_path / "train", ["astronaut"])
    write_pairs(tmp_path / "val", ["chelsea"])
    pretrain_d = tiny_disc_file(tmp_path, tiny_clip_files["tiny-rn"], "pretrain_net_d.safetensors")
    options = tiny_options(tmp_path, tiny_clip_files["tiny-rn"], tmp_path / "run", pretrain_d)
    text = open(options).read()
    open(options, "w").write(text.replace("clip_model: tiny-rn", "clip_model: tiny-rm"))
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "2", "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, RUNNER, trainner_root, str(tmp_path / "run"), "-opt", options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode != 0
    assert "╭" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]  # no box
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("ValueError: network_d.clip_model: unknown open_clip model 'tiny-rm'"), last
    assert "tiny-rn" in last  # the close match
