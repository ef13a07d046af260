"""End-to-end training through BasicSR's own entry: our launcher, an unmodified fork, torchrun
(gloo, 2 CPU processes), CPU auto-resume, start-up errors, and every SFD recipe with tiny overrides."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import cv2
import pytest
import yaml
from conftest import CLIP_CONFIGS, ROOT, photo

import basicsr
from sfd_utils.photos import bicubic_down, tiles


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> str:
    """A tiny paired data set (HR 64x64 crops of two photos + bicubic x4 LR) and a meta_info file."""
    root = tmp_path_factory.mktemp("data")
    (root / "hr").mkdir(), (root / "lr").mkdir()
    names = []
    for photo_name in ("astronaut", "coffee"):
        for i, crop in enumerate(tiles(photo(photo_name), 64, 128)[:3]):
            name = f"{photo_name}_{i}.png"
            cv2.imwrite(str(root / "hr" / name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / "lr" / name), cv2.cvtColor(bicubic_down(crop, 4), cv2.COLOR_RGB2BGR))
            names.append(name)
    (root / "meta_info.txt").write_text("\n".join(f"hr/{n}" for n in names) + "\n")
    return str(root)


def tiny_overrides(pairs: str, clip_file: str, name: str, iters: int = 2) -> list[str]:
    """--force_yml entries that shrink any SFD recipe to seconds on CPU."""
    return [
        f"name={name}",
        f"datasets:train:dataroot_gt={pairs}/hr",
        f"datasets:train:dataroot_lq={pairs}/lr",
        "datasets:train:gt_size=64",
        "datasets:train:batch_size_per_gpu=2",
        "datasets:train:num_worker_per_gpu=0",
        f"datasets:val:dataroot_gt={pairs}/hr",
        f"datasets:val:dataroot_lq={pairs}/lr",
        "network_d:clip_model=tiny-rn",
        f"network_d:clip_config={CLIP_CONFIGS}",
        f"network_d:clip_pretrained={clip_file}",
        "network_d:feat_mid_channels=16",
        "network_d:n_ctx=4",
        "path:pretrain_network_g=~",
        "train:perceptual_opt=~",
        f"train:total_iter={iters}",
        "val:val_freq=2",
        "logger:save_checkpoint_freq=2",
        "logger:print_freq=1",
    ]


def run_train(root, opt_path, extra=(), env=None, launcher=None, expect_ok=True):
    cmd = [sys.executable, "basicsr/train.py", "-opt", str(opt_path), *extra]
    if launcher:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={port}",
            "basicsr/train.py",
            "-opt",
            str(opt_path),
            "--launcher",
            "pytorch",
            *extra,
        ]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    out = subprocess.run(cmd, cwd=root, env=full_env, capture_output=True, text=True, timeout=600)
    log = out.stdout + out.stderr
    if expect_ok:
        assert out.returncode == 0, log[-4000:]
    return out.returncode, log


def launcher_root(tmp_path) -> str:
    """A folder laid out like this repo: basicsr/train.py (our launcher, no __init__.py)."""
    (tmp_path / "basicsr").mkdir()
    shutil.copy(os.path.join(ROOT, "basicsr", "train.py"), tmp_path / "basicsr" / "train.py")
    return str(tmp_path)


def write_recipe(tmp_path, recipe="demo_SFD_cpu.yml") -> str:
    opt = yaml.safe_load(open(os.path.join(ROOT, "options", recipe)))
    path = tmp_path / recipe
    path.write_text(yaml.safe_dump(opt))
    return str(path)


def force(entries):
    return ["--force_yml", *entries]


def test_launcher_trains_and_auto_resumes_on_cpu(tmp_path, pairs, tiny_clip_files):
    root = launcher_root(tmp_path)
    recipe = write_recipe(tmp_path)
    entries = tiny_overrides(pairs, tiny_clip_files["tiny-rn"], "launch", iters=2)
    _, log = run_train(root, recipe, force(entries))
    assert "# sfd_iqa:" in log  # validation scores with the discriminator being trained
    models = tmp_path / "experiments" / "launch" / "models"
    assert (models / "net_g_2.pth").is_file() and (models / "net_d_2.pth").is_file()
    assert (tmp_path / "experiments" / "launch" / "training_states" / "2.state").is_file()
    assert any((tmp_path / "tb_logger").glob("launch/events.out.tfevents.*"))
    entries = [e for e in entries if not e.startswith("train:total_iter")] + ["train:total_iter=4"]
    _, log = run_train(root, recipe, ["--auto_resume", *force(entries)])
    assert "Resuming training from epoch" in log and "iter: 2" in log
    assert (models / "net_g_4.pth").is_file()


def test_missing_file_stops_at_startup_naming_the_key(tmp_path, pairs, tiny_clip_files):
    root = launcher_root(tmp_path)
    entries = tiny_overrides(pairs, tiny_clip_files["tiny-rn"], "missing")
    entries.append(f"path:pretrain_network_g={tmp_path}/nope.pth")
    code, log = run_train(root, write_recipe(tmp_path), force(entries), expect_ok=False)
    assert code == 2 and "path.pretrain_network_g" in log and "nope.pth" in log and "Traceback" not in log
    entries[-1] = f"datasets:train:dataroot_gt={tmp_path}/no_data"
    code, log = run_train(root, write_recipe(tmp_path), force(entries), expect_ok=False)
    assert code == 2 and "datasets.train.dataroot_gt" in log and "Traceback" not in log  # a message, not a trace
    entries[-1] = "train:optim_d:lr=1e-3"  # BasicSR's --force_yml keeps this a string
    code, log = run_train(root, write_recipe(tmp_path), force(entries), expect_ok=False)
    assert code == 2 and "train.optim_d.lr: " in log and "got '1e-3' (a string)" in log


def test_force_yml_seed_takes_effect(tmp_path, pairs, tiny_clip_files, monkeypatch):
    """basicsr seeds before applying --force_yml (the new seed is logged, not used); ours re-seeds."""
    import torch
    from basicsr.utils import options as bo

    from sfd_utils.launcher import _checked

    entries = tiny_overrides(pairs, tiny_clip_files["tiny-rn"], "seed") + ["manual_seed=7"]
    argv = ["train.py", "-opt", write_recipe(tmp_path), *force(entries)]
    monkeypatch.setattr(sys, "argv", argv)
    basicsr_own = bo.parse_options
    while hasattr(basicsr_own, "__wrapped__"):  # an earlier test in this process may have wrapped it
        basicsr_own = basicsr_own.__wrapped__
    torch.manual_seed(1)
    opt, _ = basicsr_own(str(tmp_path), is_train=True)
    assert opt["manual_seed"] == 7 and torch.initial_seed() != 7  # the pitfall, as basicsr does it
    torch.manual_seed(1)
    opt, _ = _checked(basicsr_own)(str(tmp_path), is_train=True)
    assert opt["manual_seed"] == 7 and torch.initial_seed() == 7


def test_unmodified_fork_finds_plugin(tmp_path, pairs, tiny_clip_files):
    """A BasicSR checkout built from the installed basicsr's files, run as `python basicsr/train.py`."""
    fork = tmp_path / "fork"
    shutil.copytree(os.path.dirname(basicsr.__file__), fork / "basicsr", ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(fork)}
    where = subprocess.run(
        [sys.executable, "-c", "import basicsr; print(basicsr.__file__)"],
        cwd=fork,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(fork))  # the fork's package is the one imported
    entries = tiny_overrides(pairs, tiny_clip_files["tiny-rn"], "fork")
    run_train(str(fork), write_recipe(tmp_path), force(entries), env=env)
    assert (fork / "experiments" / "fork" / "models" / "net_d_2.pth").is_file()


def test_torchrun_two_cpu_processes(tmp_path, pairs, tiny_clip_files):
    root = launcher_root(tmp_path)
    entries = tiny_overrides(pairs, tiny_clip_files["tiny-rn"], "ddp")
    _, log = run_train(root, write_recipe(tmp_path), force(entries), launcher="pytorch")
    assert "world_size: 2" in log and "dist: True" in log
    assert (tmp_path / "experiments" / "ddp" / "models" / "net_d_2.pth").is_file()


@pytest.mark.parametrize(
    "recipe", ["train_SFD_RRDB_x4.yml", "train_SFD_RRDB_x2.yml", "train_SFD_SwinIR_x4.yml", "train_SFD_RealRRDB_x4.yml"]
)
def test_recipes_run_with_tiny_overrides(tmp_path, pairs, tiny_clip_files, recipe):
    root = launcher_root(tmp_path)
    name = recipe[:-4]
    entries = tiny_overrides(pairs, tiny_clip_files["tiny-rn"], name)
    opt = yaml.safe_load(open(os.path.join(ROOT, "options", recipe)))
    scale = opt["scale"]
    if scale != 4:
        entries = [e.replace(f"{pairs}/lr", f"{pairs}/lr_x{scale}") for e in entries]
        lr_dir = os.path.join(pairs, f"lr_x{scale}")
        os.makedirs(lr_dir, exist_ok=True)
        for f in os.listdir(os.path.join(pairs, "hr")):
            img = cv2.imread(os.path.join(pairs, "hr", f))
            cv2.imwrite(
                os.path.join(lr_dir, f),
                cv2.resize(img, None, fx=1 / scale, fy=1 / scale, interpolation=cv2.INTER_CUBIC),
            )
    if opt["network_g"]["type"] in ("RRDBNet", "SFDRRDBNet"):
        entries += ["network_g:num_feat=8", "network_g:num_block=1", "network_g:num_grow_ch=8"]
    else:  # SwinIR
        entries += [
            "network_g:embed_dim=12",
            "network_g:depths=[1]",
            "network_g:num_heads=[2]",
            "network_g:img_size=16",
        ]
    if opt["model_type"] == "SFDRealModel":
        entries = [e for e in entries if "dataroot_lq" not in e or "val" in e]
        entries += [
            f"datasets:train:dataroot_gt={pairs}",
            f"datasets:train:meta_info={pairs}/meta_info.txt",
            "gt_size=64",
            "queue_size=4",
            "datasets:train:use_shuffle=false",
        ]
    if recipe == "train_SFD_RRDB_x4.yml":  # start from a checkpoint in the official SFD (old ESRGAN) naming
        import torch
        from basicsr.archs.rrdbnet_arch import RRDBNet

        from sfd_utils.checkpoint import basicsr_to_old_esrgan

        net = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=8, scale=4)
        torch.save(basicsr_to_old_esrgan(net.state_dict()), tmp_path / "official_x4.pth")
        entries += [f"path:pretrain_network_g={tmp_path}/official_x4.pth", "path:param_key_g=~"]
    run_train(root, write_recipe(tmp_path, recipe), force(entries))
    assert (tmp_path / "experiments" / name / "models" / "net_d_2.pth").is_file()


def test_command_line_mistakes_are_named_before_basicsr_starts(tmp_path, capsys):
    from sfd_utils.launcher import check_command_line
    from sfd_utils.recipe import RecipeError

    recipe = os.path.join(ROOT, "options", "demo_SFD_cpu.yml")
    with pytest.raises(RecipeError, match="options file .*nope.yml. does not exist"):
        check_command_line(["train.py", "-opt", str(tmp_path / "nope.yml")])
    bad = tmp_path / "bad.yml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(RecipeError, match="bad.yml:2:1: not valid YAML"):
        check_command_line(["train.py", "-opt", str(bad)])
    with pytest.raises(RecipeError, match="write key=value"):
        check_command_line(["train.py", "-opt", recipe, "--force_yml", "train:total_iter"])
    with pytest.raises(RecipeError, match="trian is not in .*did you mean train\\?"):
        check_command_line(["train.py", "-opt", recipe, "--force_yml", "trian:total_iter=3"])
    check_command_line(["train.py", "-opt", recipe, "--force_yml", "train:totl_iter=3", "--auto_resume"])
    assert "did you mean train.total_iter?" in capsys.readouterr().err  # a new key: warned, not refused
    args, opt, warnings = check_command_line(
        ["train.py", "-opt", recipe, "--force_yml", "train.total_iter=3", "name=x"]
    )
    assert capsys.readouterr().err == "" and warnings == [] and args.force_yml == ["train.total_iter=3", "name=x"]
    assert opt["train"]["total_iter"] == 3 and opt["name"] == "x"
    with pytest.raises(RecipeError, match="--force_y: write the flag in full"):
        check_command_line(["train.py", "-opt", recipe, "--force_y", "name=x"])
    with pytest.raises(RecipeError, match="train.total_iter: expected a number, got 'x'"):
        check_command_line(["train.py", "-opt", recipe, "--force_yml", "train:total_iter=x"])


def test_help_lists_the_flags_and_exit_statuses(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "basicsr", "train.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for text in ("-opt RECIPE.yml", "--force_yml KEY=VALUE", "never run", "--check", "exit status:", "4 "):
        assert text in proc.stdout, text


def test_an_unexpected_error_exits_4_with_the_traceback_on_screen_and_in_the_log(tmp_path, pairs):
    """Not the user's input: status 4 (never 1, which means skipped inputs), the traceback kept."""
    root = launcher_root(tmp_path)
    recipe = write_recipe(tmp_path, "demo_SR_psnr_cpu.yml")
    entries = [e for e in tiny_overrides(pairs, "unused", "boom") if not e.startswith(("network_d", "train:perc"))]
    code = f"""
import sys
import basicsr.train as bt

def create_train_val_dataloader(opt, logger):
    raise ZeroDivisionError("injected")

bt.create_train_val_dataloader = create_train_val_dataloader
from sfd_utils.launcher import train_pipeline
sys.argv = ["train.py", "-opt", {recipe!r}, "--force_yml", *{entries!r}]
train_pipeline({root!r})
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "Traceback" in proc.stderr and "ZeroDivisionError: injected" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("sfd-basicsr: failed unexpectedly (exit status 4)")
    logs = list((tmp_path / "experiments" / "boom").glob("train_boom_*.log"))
    assert logs and "ZeroDivisionError: injected" in logs[0].read_text()
