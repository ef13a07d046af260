"""CSUD end to end: stock BasicSR train entry + auto-resume, recipes' start-up checks, derain CLI,
benchmark function."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, photo

from sfd_arch.nafnet_arch import CSUDNAFNet
from sfd_lab.bench.csud import run_csud_benchmark
from sfd_model.csud_model import TINY_NETWORKS
from sfd_tools.csud import derain
from sfd_tools.csud.synthetic_rain import add_rain, make_synthetic_rain
from sfd_utils.options_check import check_options

RECIPES = ("train_CSUD_NAFNet.yml", "train_CSUD_NAFNet_realrain.yml", "demo_CSUD_cpu.yml")


@pytest.fixture(scope="module")
def rain_data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("csud_data")
    make_synthetic_rain(str(root), train_size=64, test_size=64, max_per_photo=1, max_test_per_photo=1)
    return str(root)


def tiny_recipe(tmp_path, data: str, iters: int) -> str:
    opt = yaml.safe_load(open(os.path.join(ROOT, "options", "demo_CSUD_cpu.yml")))
    opt["name"] = "csud_e2e"
    train, val = opt["datasets"]["train"], opt["datasets"]["val"]
    train.update(dataroot_rain=f"{data}/train/rain", dataroot_clean=f"{data}/train/clean", gt_size=32)
    train["batch_size_per_gpu"] = 2
    val.update(dataroot_lq=f"{data}/test/rain", dataroot_gt=f"{data}/test/clean")
    opt.update({k: dict(v) for k, v in TINY_NETWORKS.items()})
    opt["train"]["total_iter"] = iters
    opt["val"]["val_freq"] = 2
    opt["logger"].update(print_freq=1, save_checkpoint_freq=2)
    path = tmp_path / "csud_e2e.yml"
    path.write_text(yaml.safe_dump(opt))
    return str(path)


def train(root, recipe, *extra):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "basicsr/train.py", "-opt", recipe, *extra]
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    return log


def test_stock_train_entry_trains_and_auto_resumes(tmp_path, rain_data):
    (tmp_path / "basicsr").mkdir()
    shutil.copy(os.path.join(ROOT, "basicsr", "train.py"), tmp_path / "basicsr" / "train.py")
    recipe = tiny_recipe(tmp_path, rain_data, iters=2)
    log = train(tmp_path, recipe)
    assert "psnr_y" in log and "l_t_cc" in log
    exp = tmp_path / "experiments" / "csud_e2e"
    for x in ("g", "t", "d"):
        assert (exp / "models" / f"net_{x}_2.pth").is_file()
    assert (exp / "training_states" / "2.state").is_file()
    assert any((tmp_path / "tb_logger" / "csud_e2e").glob("events.out.tfevents.*"))
    log = train(tmp_path, recipe, "--auto_resume", "--force_yml", "train:total_iter=4")
    assert "Resuming training from epoch" in log and "iter: 2" in log
    for x in ("g", "t", "d"):
        assert (exp / "models" / f"net_{x}_4.pth").is_file()


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipes_name_missing_files_at_startup(recipe, tmp_path, monkeypatch):
    opt = yaml.safe_load(open(os.path.join(ROOT, "options", recipe)))
    assert opt["model_type"] == "CSUDModel" and opt["network_t"]["type"] == "CSUDRainGenerator"
    monkeypatch.chdir(tmp_path)  # no datasets/ nor VGG weights here
    with pytest.raises(FileNotFoundError, match=r"(datasets\.train\.dataroot_rain|perceptual_opt)"):
        check_options(opt)


def test_authors_recipe_hyper_parameters():
    opt = yaml.safe_load(open(os.path.join(ROOT, "options", "train_CSUD_NAFNet.yml")))
    tr = opt["train"]
    assert tr["total_iter"] == 100000 and tr["scheduler"]["milestones"] == [20000, 40000, 60000, 80000]
    assert tr["scheduler"]["gamma"] == 0.5 and opt["datasets"]["train"]["gt_size"] == 256
    assert opt["datasets"]["train"]["batch_size_per_gpu"] == 2
    for key in ("optim_g", "optim_t", "optim_d"):
        assert tr[key]["lr"] == 1e-4 and tr[key]["betas"] == [0.9, 0.99]
    weights = {k: tr[k]["loss_weight"] for k in ("cc_opt", "self_recon_t_opt", "self_recon_dr_opt", "gan_opt")}
    assert weights == {"cc_opt": 10, "self_recon_t_opt": 5, "self_recon_dr_opt": 0.5, "gan_opt": 1}
    assert tr["perceptual_opt"]["perceptual_weight"] == 0.2
    assert opt["network_g"] == {
        "type": "CSUDNAFNet",
        "img_channel": 3,
        "width": 32,
        "middle_blk_num": 12,
        "enc_blk_nums": [2, 2, 4, 8],
        "dec_blk_nums": [2, 2, 2, 2],
    }


def test_tiling_matches_whole_image_for_a_pointwise_net():
    net = torch.nn.Conv2d(3, 3, 1)
    x = torch.rand(1, 3, 70, 53)
    whole = derain.derain_tensor(net, x, tile=0)
    torch.testing.assert_close(derain.derain_tensor(net, x, tile=32, overlap=8), whole)
    assert derain._positions(70, 32, 24) == [0, 24, 38]
    with pytest.raises(ValueError, match="overlap"):
        derain.derain_tensor(net, x, tile=16, overlap=16)


def test_derain_cli_scores_and_skips_corrupt_files(tmp_path, capsys):
    torch.manual_seed(0)
    net = CSUDNAFNet(width=8, middle_blk_num=1, enc_blk_nums=[1], dec_blk_nums=[1])
    weights = tmp_path / "net_g_1.pth"
    torch.save({"params": net.state_dict()}, weights)
    inp, gt = tmp_path / "rain", tmp_path / "gt"
    inp.mkdir(), gt.mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(("a", "b")):
        clean = photo("chelsea")[40 * i : 40 * i + 45, 50 : 50 + 61]
        cv2.imwrite(str(gt / f"{name}.png"), clean[..., ::-1])
        cv2.imwrite(str(inp / f"{name}.jpg"), add_rain(clean, rng)[..., ::-1])  # GT matched by stem
    (inp / "broken.png").write_bytes(b"garbage")
    cv2.imwrite(str(inp / "nogt.png"), photo("coffee")[:40, :40])
    out = tmp_path / "out"
    code = derain.main(["-i", str(inp), "-w", str(weights), "--gt", str(gt), "-o", str(out), "--tile", "32"])
    text = capsys.readouterr().out
    assert code == 1  # exit-status contract: inputs were skipped (broken.png) or not scored (nogt.png), each named
    assert "broken.png" in text and "skipped 1 unreadable" in text and "1 without GT" in text
    assert "not scored (no GT of that name):" in text and "nogt.png" in text
    assert sorted(os.listdir(out)) == ["a.png", "b.png", "metrics.csv", "nogt.png"]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("name,height,width,seconds,psnr_rgb,ssim_rgb,psnr_y,ssim_y,in_psnr_rgb")
    assert rows[-1].startswith("MEAN") and len(rows) == 1 + 3 + 1
    res = derain.derain_paths(derain.load_derainer(str(weights)), [str(inp / "a.jpg")], gt_dir=str(gt))
    assert res["scored"] == 1 and 0 < res["mean"]["psnr_rgb"] < 100 and 0 < res["mean"]["in_ssim_y"] <= 1


def test_benchmark_function_writes_json_and_markdown(tmp_path):
    result = run_csud_benchmark("tiny", str(tmp_path))
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".md")
    data = json.loads((tmp_path / files[0]).read_text())
    assert set(data["methods"]) == {"ours", "released_order"}
    for m in data["methods"].values():
        assert m["s_per_iter_median"] > 0 and m["peak_rss_mib"] > 0
    assert result["profile"] == "tiny"
    with pytest.raises(ValueError, match="profile"):
        run_csud_benchmark("huge", None)


def test_derain_script_reports_a_missing_checkpoint_in_one_line(tmp_path):
    cv2.imwrite(str(tmp_path / "rain.png"), photo("chelsea")[:16, :16, ::-1])  # an empty folder is its own error
    out = subprocess.run(
        [sys.executable, "scripts/derain.py", "-i", str(tmp_path), "-w", str(tmp_path / "none.pth")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and out.stderr.startswith("error: weights:") and "Traceback" not in out.stderr
