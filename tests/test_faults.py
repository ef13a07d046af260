"""Fault suite: training killed with SIGKILL and resumed through the real launcher continues
exactly (every later logged loss equal to an uninterrupted run's), damaged checkpoints are passed
over with a warning, a CLIP file of another architecture is named in one line, and non-finite
losses skip their step and, repeated, stop training with the state saved.

The exactness tests run ``basicsr/train.py`` in subprocesses (tiny networks, tiny CLIP, 12
iterations, one thread each); losses are compared bit for bit through TensorBoard's event files,
which hold every logged value as float32 (``print_freq: 1``).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import signal
import subprocess
import sys

import cv2
import pytest
import torch
import yaml
from conftest import CLIP_CONFIGS, ROOT, lr_hr_batch, photo, sfd_opt

from sfd_utils.photos import bicubic_down, tiles

# kind: (iterations, checkpoint every, crop). 10 paired training images at batch 2 = 5 iterations
# per epoch; CSUD's set has 6 rainy images = 3 iterations per epoch. Real-ESRGAN's dataset pads
# every image to 400x400 before the degradations, so that run is the shortest.
RUNS = {"sfd": (10, 3, 64), "real": (7, 2, 64), "csud": (10, 3, 32)}

# Runs the launcher as `python basicsr/train.py`, after arranging a real SIGKILL of the process:
# at the start of iteration SFD_KILL_AT_ITER, or half-way through writing the checkpoint file
# whose name starts with SFD_KILL_IN_SAVE (the bytes written so far stay on disk).
DRIVER = """
import io, os, runpy, signal, sys
sys.path.insert(0, {root!r})
from sfd_utils.compat import install
install()
import torch
import basicsr.models.base_model as bm
kill_at = int(os.environ.get("SFD_KILL_AT_ITER", "0"))
kill_in = os.environ.get("SFD_KILL_IN_SAVE", "")
update_lr = bm.BaseModel.update_learning_rate
def update_learning_rate(self, current_iter, warmup_iter=-1):
    if current_iter == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return update_lr(self, current_iter, warmup_iter)
bm.BaseModel.update_learning_rate = update_learning_rate
save = torch.save
def half_save(obj, f, *args, **kwargs):
    if kill_in and os.path.basename(str(getattr(f, "name", f))).startswith(kill_in):
        buf = io.BytesIO()
        save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return save(obj, f, *args, **kwargs)
torch.save = half_save
sys.argv = ["basicsr/train.py", *sys.argv[1:]]
runpy.run_path(os.path.join(os.getcwd(), "basicsr", "train.py"), run_name="__main__")
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    """10 HR 64x64 crops (+ bicubic x4 LR, meta_info) and, for CSUD, 6 'rainy' and 4 'clean' crops."""
    root = tmp_path_factory.mktemp("fault_data")
    for sub in ("hr", "lr", "rain", "clean"):
        (root / sub).mkdir()
    crops = [c for name in ("astronaut", "coffee", "chelsea") for c in tiles(photo(name), 64, 96)[:4]][:10]
    names = []
    for i, crop in enumerate(crops):
        bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(root / "hr" / f"{i:02d}.png"), bgr)
        cv2.imwrite(str(root / "lr" / f"{i:02d}.png"), cv2.cvtColor(bicubic_down(crop, 4), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / ("rain" if i < 6 else "clean") / f"{i:02d}.png"), bgr)
        names.append(f"hr/{i:02d}.png")
    (root / "meta_info.txt").write_text("\n".join(names) + "\n")
    return str(root)


def overrides(kind: str, data: str, clip_file: str, name: str) -> list[str]:
    """--force_yml entries shrinking a recipe to a CPU run of a few iterations that logs every loss."""
    iters, freq, crop = RUNS[kind]
    common = [
        f"name={name}",
        "manual_seed=3",
        f"train:total_iter={iters}",
        f"logger:save_checkpoint_freq={freq}",
        "logger:print_freq=1",
        "logger:use_tb_logger=true",
        f"val:val_freq={freq}",  # validation right after each save: it must not disturb training
        "val:save_img=false",
        "datasets:train:batch_size_per_gpu=2",
        "datasets:train:num_worker_per_gpu=0",
        f"datasets:train:gt_size={crop}",
        f"datasets:val:dataroot_gt={data}/hr",
        f"datasets:val:dataroot_lq={data}/lr" if kind != "csud" else f"datasets:val:dataroot_lq={data}/hr",
    ]
    if kind == "csud":
        return [
            *common,
            f"datasets:train:dataroot_rain={data}/rain",
            f"datasets:train:dataroot_clean={data}/clean",
            "network_g:width=8",
            "network_t:num_feat=8",
            "network_d:ndf=8",
            "network_d:blur_kernel_size=5",
        ]
    sfd = [
        *common,
        "network_d:clip_model=tiny-rn",
        f"network_d:clip_config={CLIP_CONFIGS}",
        f"network_d:clip_pretrained={clip_file}",
        "network_d:feat_mid_channels=16",
        "network_d:n_ctx=4",
        "network_g:num_feat=8",
        "network_g:num_block=1",
        "network_g:num_grow_ch=8",
        "path:pretrain_network_g=~",
        "train:perceptual_opt=~",
    ]
    if kind == "sfd":
        return [*sfd, f"datasets:train:dataroot_gt={data}/hr", f"datasets:train:dataroot_lq={data}/lr"]
    return [  # real: Real-ESRGAN degradations on the fly, training-pair pool of 4
        *sfd,
        f"datasets:train:dataroot_gt={data}",
        f"datasets:train:meta_info={data}/meta_info.txt",
        "gt_size=64",
        "queue_size=4",
    ]


RECIPES = {"sfd": "demo_SFD_cpu.yml", "real": "train_SFD_RealRRDB_x4.yml", "csud": "demo_CSUD_cpu.yml"}


def launch(root: str, recipe: str, entries: list[str], extra=(), env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, os.path.join(root, "driver.py"), "-opt", recipe, *extra, "--force_yml", *entries]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, cwd=root, env=full_env, capture_output=True, text=True, timeout=600)


def tb_scalars(files: list[str]) -> dict[int, dict[str, float]]:
    """{step: {tag: value}} from TensorBoard event files (a later file wins for a step)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    out: dict[int, dict[str, float]] = {}
    for path in files:
        for event in EventFileLoader(path).Load():
            for value in event.summary.value:  # the loader turns simple_value into a float tensor
                if value.HasField("simple_value"):
                    out.setdefault(event.step, {})[value.tag] = value.simple_value
                elif value.HasField("tensor") and len(value.tensor.float_val) == 1:
                    out.setdefault(event.step, {})[value.tag] = value.tensor.float_val[0]
    return out


def events(root: str, name: str) -> list[str]:
    return sorted(glob.glob(os.path.join(root, "tb_logger", name, "events.out.tfevents.*")))


@pytest.mark.parametrize(
    ("kind", "fault"),
    [
        ("sfd", "kill_in_save"),  # SIGKILL half-way through writing net_d_9.pth: resume from 6 (mid-epoch)
        ("real", "empty_net"),  # SIGKILL at iteration 7, then net_g_6.pth emptied: resume from 4 (mid-epoch)
        ("csud", "truncated_state"),  # SIGKILL at iteration 10, then 9.state truncated: resume from 6 (epoch end)
    ],
)
def test_killed_run_resumes_exactly(tmp_path, data, tiny_clip_files, kind, fault):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "basicsr"))
    shutil.copy(os.path.join(ROOT, "basicsr", "train.py"), os.path.join(root, "basicsr", "train.py"))
    with open(os.path.join(root, "driver.py"), "w") as f:
        f.write(DRIVER.format(root=ROOT))
    recipe = os.path.join(root, RECIPES[kind])
    with open(os.path.join(ROOT, "options", RECIPES[kind])) as src, open(recipe, "w") as dst:
        yaml.safe_dump(yaml.safe_load(src), dst)
    clip = tiny_clip_files["tiny-rn"]

    ref = launch(root, recipe, overrides(kind, data, clip, "ref"))
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = tb_scalars(events(root, "ref"))

    iters, freq, _ = RUNS[kind]
    last = (iters - 1) // freq * freq  # the newest state the killed run wrote (or was writing)
    start = last - freq  # where the resumed run must start
    env = {"SFD_KILL_IN_SAVE": f"net_d_{last}.pth"} if fault == "kill_in_save" else {"SFD_KILL_AT_ITER": str(iters)}
    killed = launch(root, recipe, overrides(kind, data, clip, "run"), env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    exp = os.path.join(root, "experiments", "run")
    models, states = os.path.join(exp, "models"), os.path.join(exp, "training_states")
    if fault == "kill_in_save":
        leftovers = glob.glob(os.path.join(models, f"net_d_{last}.pth.*.tmp"))
        assert leftovers and not os.path.exists(os.path.join(models, f"net_d_{last}.pth"))  # never a partial file
        assert not os.path.exists(os.path.join(states, f"{last}.state"))
    elif fault == "empty_net":
        open(os.path.join(models, f"net_g_{last}.pth"), "wb").close()  # e.g. a full disk with in-place writes
    else:
        path = os.path.join(states, f"{last}.state")
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    before = set(events(root, "run"))

    entries = overrides(kind, data, clip, "run")
    if kind == "real":  # the data a run sees does not depend on the number of loader processes
        entries = [e.replace("num_worker_per_gpu=0", "num_worker_per_gpu=2") for e in entries]
    resumed = launch(root, recipe, entries, extra=["--auto_resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert f"Resuming training from epoch: {1 if kind != 'real' else 0}, iter: {start}." in log
    if fault == "kill_in_save":
        assert f"removed {models}/net_d_{last}.pth." in log and not glob.glob(os.path.join(models, "*.tmp"))
    elif fault == "empty_net":
        assert f"{os.path.join(models, f'net_g_{last}.pth')} is empty (0 bytes)" in log
    else:
        assert f"training state {os.path.join(states, f'{last}.state')} is unreadable" in log

    after = tb_scalars(sorted(set(events(root, "run")) - before))
    logged = sorted(k for k, v in after.items() if any(t.startswith("losses/") for t in v))
    assert logged == list(range(start + 1, iters + 1))
    for step in logged:
        losses = {k: v for k, v in reference[step].items() if k.startswith("losses/")}
        assert len(losses) >= 3
        resumed_losses = {k: v for k, v in after[step].items() if k.startswith("losses/")}
        assert resumed_losses == losses, f"iteration {step}: {resumed_losses} != {losses}"
    final = sorted(os.path.basename(p) for p in glob.glob(os.path.join(models, "net_*_latest.pth")))
    assert len(final) == (3 if kind == "csud" else 2)
    for name in final:  # weights and EMA weights end bit-identical
        ref_file = torch.load(os.path.join(root, "experiments", "ref", "models", name), weights_only=True)
        run_file = torch.load(os.path.join(models, name), weights_only=True)
        assert ref_file.keys() == run_file.keys()
        for key in ref_file:
            assert all(torch.equal(v, run_file[key][k]) for k, v in ref_file[key].items()), f"{name} {key}"


# ---------------------------------------------------------------- the pieces, in-process
def test_sampler_continues_an_epoch_and_samples_keep_their_randomness():
    import random

    import numpy as np

    from sfd_utils.resume import POSITION_KEY, ResumableSampler, SeededDataset, batch_position

    class Draws(torch.utils.data.Dataset):  # an "augmentation" drawing from all three global RNGs
        def __len__(self):
            return 7

        def __getitem__(self, i):
            return {"i": i, "r": random.random(), "n": float(np.random.rand()), "t": torch.rand(()).item()}

    data = SeededDataset(Draws())
    full = ResumableSampler(data, num_replicas=1, rank=0)
    full.seed = 5
    full.set_epoch(2)
    keys = list(full)
    assert sorted(int(k) for k in keys) == list(range(7)) and [k.position for k in keys] == list(range(7))
    part = ResumableSampler(data, num_replicas=1, rank=0)
    part.seed = 5
    part.resume_from(2, 4)
    list(part)  # an iterator made before set_epoch (BasicSR's prefetcher does this) does not use it up
    part.set_epoch(2)
    rest = list(part)
    assert [(int(k), k.seed) for k in rest] == [(int(k), k.seed) for k in keys[4:]]
    part.set_epoch(3)
    assert len(list(part)) == 7  # later epochs start from their beginning

    torch.manual_seed(0)
    before = random.getstate(), torch.get_rng_state()
    first = data[keys[5]]
    random.random(), np.random.rand(), torch.rand(1)  # whatever happened in between
    again = data[rest[1]]
    assert {k: first[k] for k in "irnt"} == {k: again[k] for k in "irnt"}
    assert data[keys[4]]["r"] != first["r"]  # another sample, other draws
    random.setstate(before[0]), torch.set_rng_state(before[1])
    data[keys[5]]
    assert random.getstate() == before[0] and torch.equal(torch.get_rng_state(), before[1])  # restored
    assert first[POSITION_KEY].tolist() == [2, 5, 7]
    batch = torch.utils.data.default_collate([data[k] for k in keys[2:4]])
    assert batch_position(batch) == {"epoch": 2, "samples": 4, "total": 7}
    assert data[3]["i"] == 3 and POSITION_KEY not in data[3]  # plain indices pass through


# ---------------------------------------------------------------- damaged files, in-process
def fake_experiment(tmp_path, iters=(3, 6, 9)) -> dict:
    """A models/ + training_states/ pair per iteration (tiny but real torch files)."""
    models, states = tmp_path / "models", tmp_path / "training_states"
    models.mkdir(), states.mkdir()
    for it in iters:
        for net in ("g", "d"):
            torch.save({"params": {"w": torch.full((2,), float(it))}}, models / f"net_{net}_{it}.pth")
        torch.save({"epoch": 0, "iter": it, "optimizers": [], "schedulers": []}, states / f"{it}.state")
    return {
        "name": "x",
        "auto_resume": True,
        "rank": 0,
        "num_gpu": 0,
        "network_g": {},
        "network_d": {},
        "path": {"experiments_root": str(tmp_path), "models": str(models), "training_states": str(states)},
    }


def test_auto_resume_passes_over_damaged_latest_files(tmp_path, capsys):
    from sfd_utils.launcher import load_resume_state

    opt = fake_experiment(tmp_path)
    states, models = tmp_path / "training_states", tmp_path / "models"
    (states / "9.state").write_bytes((states / "9.state").read_bytes()[:100])  # truncated
    (models / "net_d_6.pth").write_bytes(b"")  # 0 bytes
    (models / "net_g_9.pth.123.tmp").write_bytes(b"half")
    (states / "12.state.99.tmp").write_bytes(b"half")
    state = load_resume_state(opt)
    err = capsys.readouterr().err
    assert state["iter"] == 3 and opt["path"]["resume_state"] == str(states / "3.state")
    assert opt["path"]["pretrain_network_g"] == str(models / "net_g_3.pth")
    assert f"training state {states / '9.state'} is unreadable" in err
    assert f"{models / 'net_d_6.pth'} is empty (0 bytes)" in err
    assert not list(models.glob("*.tmp")) and not list(states.glob("*.tmp"))  # stale temporaries gone
    for f in ("3.state", "6.state", "9.state"):
        assert (states / f).exists()  # damaged files are named, not deleted


def test_auto_resume_with_only_damaged_states_stops_with_one_line(tmp_path):
    from sfd_utils.launcher import load_resume_state

    opt = fake_experiment(tmp_path, iters=(3,))
    (tmp_path / "training_states" / "3.state").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"no complete training state .*3\.state is empty"):
        load_resume_state(opt)


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    from sfd_utils import checkpoint

    path = str(tmp_path / "net_g_5.pth")
    checkpoint.atomic_torch_save({"params": {"w": torch.ones(3)}}, path)
    assert torch.equal(torch.load(path, weights_only=True)["params"]["w"], torch.ones(3))

    def failing_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.atomic_torch_save({"params": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["params"]["w"], torch.ones(3))  # old file intact
    assert os.listdir(tmp_path) == ["net_g_5.pth"]  # no temporary left


# ---------------------------------------------------------------- CLIP weights of another architecture
def test_clip_file_of_another_architecture_named_in_one_line(tmp_path, tiny_clip_files):
    from sfd_arch.clip_backbone import resolve_clip_weights
    from sfd_utils.options_check import check_options

    vit = tiny_clip_files["tiny-vit"]
    with pytest.raises(ValueError) as err:
        resolve_clip_weights("tiny-rn", vit)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 400
    assert vit in msg and "'tiny-rn'" in msg and "looks like a ViT" in msg and "patch 16" in msg
    assert "ModifiedResNet" in msg  # what the requested model is
    with pytest.raises(ValueError, match="looks like a ModifiedResNet"):
        resolve_clip_weights("tiny-vit", tiny_clip_files["tiny-rn"])
    opt = sfd_opt(vit, str(tmp_path))  # the start-up check sees it before anything is built
    with pytest.raises(ValueError, match="clip_pretrained: .* does not fit clip_model .tiny-rn."):
        check_options(opt, datasets=False)
    truncated = tmp_path / "clip.pt"
    truncated.write_bytes(open(tiny_clip_files["tiny-rn"], "rb").read()[:2000])
    with pytest.raises(ValueError, match=f"{truncated} cannot be read as CLIP weights"):
        resolve_clip_weights("tiny-rn", str(truncated))
    resolve_clip_weights("tiny-rn", tiny_clip_files["tiny-rn"])  # the right file passes


# ---------------------------------------------------------------- non-finite losses
class Records(logging.Handler):
    """Collects the messages of BasicSR's logger (it does not propagate to the root logger)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.text = ""

    def emit(self, record):
        self.text += record.getMessage() + "\n"

    def __enter__(self):
        logging.getLogger("basicsr").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("basicsr").removeHandler(self)


def nan_loss(*args, **kwargs):
    return torch.tensor(float("nan"), requires_grad=True)


def weights(net) -> dict[str, torch.Tensor]:
    """Trainable parameters (running statistics change in any forward pass)."""
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def test_nonfinite_generator_loss_skips_the_step_then_stops_sfd(tmp_path, tiny_clip_files):
    from basicsr.models import build_model

    from sfd_utils.resume import NonFiniteLossError

    torch.manual_seed(0)
    opt = sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path), ema_decay=0.9, nonfinite_max_skips=2)
    model = build_model(opt)
    batch = lr_hr_batch()
    model.feed_data(batch)
    model.optimize_parameters(1)  # a normal step
    g0, ema0, d0 = weights(model.net_g), weights(model.net_g_ema), weights(model.net_d)
    real_pix = model.cri_pix
    model.cri_pix = nan_loss
    with Records() as logs:
        model.optimize_parameters(2)
    assert "iter 2: non-finite loss (l_g_pix=nan); generator step skipped" in logs.text
    assert all(torch.equal(v, weights(model.net_g)[k]) for k, v in g0.items())  # G untouched
    assert all(torch.equal(v, weights(model.net_g_ema)[k]) for k, v in ema0.items())  # EMA untouched
    assert any(not torch.equal(v, weights(model.net_d)[k]) for k, v in d0.items())  # D's finite step ran
    model.cri_pix = real_pix
    model.optimize_parameters(3)  # a finite iteration resets the count
    assert model._nonfinite_run == 0
    model.cri_pix = nan_loss
    model.optimize_parameters(4)
    with pytest.raises(NonFiniteLossError, match="2 iterations in a row .* saved as iteration 5"):
        model.optimize_parameters(5)
    assert os.path.isfile(os.path.join(opt["path"]["training_states"], "5.state"))
    assert os.path.isfile(os.path.join(opt["path"]["models"], "net_g_5.pth"))
    for net in (model.net_g, model.net_d):
        assert all(torch.isfinite(v).all() for v in weights(net).values())


def test_nonfinite_discriminator_loss_skips_csud_steps(tmp_path):
    from basicsr.models import build_model

    from sfd_model.csud_model import csud_options
    from sfd_utils.resume import NonFiniteLossError

    torch.manual_seed(0)
    model = build_model(csud_options(str(tmp_path), train={"nonfinite_max_skips": 1}))
    batch = lr_hr_batch(size=32)
    model.feed_data({"rain": batch["gt"], "clean": batch["gt"].flip(-1)})
    d0, t0 = weights(model.net_d), weights(model.net_t)
    model.cri_gan.forward = lambda *a, **k: torch.tensor(float("inf"), requires_grad=True)
    with Records() as logs, pytest.raises(NonFiniteLossError, match="1 iterations"):
        model.optimize_parameters(7)
    assert "iter 7: non-finite loss (" in logs.text and "l_t_gan_pseudo=inf" in logs.text
    assert "l_d_real=inf" in logs.text and "discriminator step skipped" in logs.text
    assert all(torch.equal(v, weights(model.net_d)[k]) for k, v in d0.items())
    assert all(torch.equal(v, weights(model.net_t)[k]) for k, v in t0.items())
    assert os.path.isfile(os.path.join(tmp_path, "training_states", "7.state"))


def test_nonfinite_option_checked_at_build(tmp_path, tiny_clip_files):
    from basicsr.models import build_model

    with pytest.raises(ValueError, match="train.nonfinite_max_skips must be a whole number"):
        build_model(sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path), nonfinite_max_skips="5"))
