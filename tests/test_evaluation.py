"""SR evaluation: BasicSR's metric values, name pairing, reported problems, LPIPS/DISTS files, SFD-IQA, CLI."""

from __future__ import annotations

import csv
import json
import os

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_niqe, calculate_psnr, calculate_ssim
from conftest import photo
from test_sr_inference import load_script, write

from sfd_tools.sr.evaluation import evaluate_folders, match_pairs, model_column, sfd_iqa_column, write_results
from sfd_tools.sr.perceptual_metrics import LPIPS, LPIPS_SLICES, WeightsNotFound, load_dists, load_lpips

SIZE = 200  # BasicSR's NIQE needs two 96 x 96 blocks after the border crop


def degrade(img: np.ndarray, scale: int = 4) -> np.ndarray:
    small = cv2.resize(img, (SIZE // scale, SIZE // scale), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """GT: two 200² photo crops; SR: their x4 bicubic round trip, named <stem>_out.png."""
    root = tmp_path_factory.mktemp("eval")
    gt, sr = root / "gt", root / "sr"
    gt.mkdir()
    sr.mkdir()
    crops = {"cat": photo("chelsea")[40:240, 120:320], "coffee": photo("coffee")[100:300, 200:400]}
    for name, rgb in crops.items():
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        write(gt / f"{name}.png", bgr)
        write(sr / f"{name}_out.png", degrade(bgr))
    return root


def test_metrics_equal_basicsr_functions(folders):
    res = evaluate_folders(str(folders / "sr"), str(folders / "gt"), scale=4, sr_suffix="_out", progress=False)
    assert res["count"] == 2 and not any(res["problems"].values())
    assert res["better"] == {"psnr": "higher", "ssim": "higher", "niqe": "lower"}
    for row in res["per_image"]:
        sr, gt = cv2.imread(row["sr"]), cv2.imread(row["gt"])
        assert row["psnr"] == calculate_psnr(sr, gt, 4, "HWC", test_y_channel=True)
        assert row["ssim"] == calculate_ssim(sr, gt, 4, "HWC", test_y_channel=True)
        assert row["niqe"] == float(calculate_niqe(sr, 4, "HWC", convert_to="y"))
        assert 20 < row["psnr"] < 40 and 0 < row["ssim"] < 1
    assert res["mean"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in res["per_image"]]))
    assert res["settings"]["crop_border"] == 4
    res2 = evaluate_folders(
        str(folders / "sr"), str(folders / "gt"), 2, metrics=["psnr"], sr_suffix="_out", progress=False
    )
    row = res2["per_image"][0]
    assert row["psnr"] == calculate_psnr(cv2.imread(row["sr"]), cv2.imread(row["gt"]), 2, test_y_channel=True)


def test_problems_are_reported_not_dropped(folders, tmp_path):
    sr, gt = tmp_path / "sr", tmp_path / "gt"
    sr.mkdir()
    gt.mkdir()
    for name in ("cat", "coffee"):
        (gt / f"{name}.png").write_bytes((folders / "gt" / f"{name}.png").read_bytes())
        (sr / f"{name}_out.png").write_bytes((folders / "sr" / f"{name}_out.png").read_bytes())
    img = cv2.imread(str(folders / "gt" / "cat.png"))
    write(gt / "same.png", img)
    write(sr / "same_out.png", img)  # identical: PSNR is inf, stored as null in strict JSON
    write(sr / "extra_out.png", img)  # no GT
    write(gt / "lonely.png", img)  # no SR
    write(gt / "small.png", img)
    write(sr / "small_out.png", img[:120])  # size mismatch
    write(gt / "bad.png", img)
    (sr / "bad_out.png").write_bytes(b"not a png")  # corrupt
    write(gt / "tiny.png", img[:100, :100])
    write(sr / "tiny_out.png", img[:100, :100])  # too small for NIQE: that value fails, is reported
    write(sr / "dup_out.png", img)
    write(sr / "dup_out.jpg", img)  # two SR files for one name
    res = evaluate_folders(str(sr), str(gt), 4, sr_suffix="_out", progress=False)
    p = res["problems"]
    assert [os.path.basename(x) for x in p["sr_without_gt"]] == ["extra_out.png"]
    assert [os.path.basename(x) for x in p["gt_without_sr"]] == ["lonely.png"]
    assert len(p["size_mismatch"]) == 1 and "SR 120x200 vs GT 200x200" in p["size_mismatch"][0]
    assert len(p["unreadable"]) == 1 and "bad_out.png" in p["unreadable"][0]
    assert len(p["failed"]) == 1 and p["failed"][0].startswith("tiny [niqe]: ValueError: NIQE needs")
    assert len(p["ambiguous"]) == 1 and p["ambiguous"][0].startswith("dup:")
    assert [r["name"] for r in res["per_image"]] == ["cat", "coffee", "same", "tiny"]
    assert res["counts"] == {"psnr": 4, "ssim": 4, "niqe": 3} and res["per_image"][3]["niqe"] is None

    paths = write_results(res, str(tmp_path / "out"), "m")
    saved = json.load(open(paths["json"]))
    assert saved["mean"]["psnr"] is None and saved["per_image"][2]["psnr"] is None  # inf -> null
    assert saved["mean"]["ssim"] == pytest.approx(res["mean"]["ssim"])
    rows = list(csv.DictReader(open(paths["per_image_csv"])))
    assert [r["name"] for r in rows] == ["cat", "coffee", "same", "tiny"] and rows[2]["psnr"] == "inf"
    mean = list(csv.DictReader(open(paths["mean_csv"])))
    assert mean[0]["count"] == "4" and mean[0]["problems"] == "6"


def test_suffix_regex_for_basicsr_visualization_names(tmp_path):
    (tmp_path / "vis").mkdir()
    (tmp_path / "gt").mkdir()
    for f in ("baby_5000.png", "bird_5000.png"):
        (tmp_path / "vis" / f).write_bytes(b"")
    for f in ("baby.png", "bird.png"):
        (tmp_path / "gt" / f).write_bytes(b"")
    pairing = match_pairs(str(tmp_path / "vis"), str(tmp_path / "gt"), sr_regex=r"_\d+")
    assert [k for k, _, _ in pairing.pairs] == ["baby", "bird"] and not pairing.sr_without_gt
    pairing = match_pairs(str(tmp_path / "vis"), str(tmp_path / "gt"))
    assert not pairing.pairs and len(pairing.sr_without_gt) == len(pairing.gt_without_sr) == 2


def test_lpips_and_dists_need_local_files(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFound, match="lpips/weights/v0.1/alex.pth"):
        load_lpips(str(tmp_path / "nope.pth"))
    torch.save(
        {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))},
        tmp_path / "alex_lin.pth",
    )
    expected = str(tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth")
    with pytest.raises(WeightsNotFound, match=expected.replace(".", r"\.")):
        load_lpips(str(tmp_path / "alex_lin.pth"))  # linear layers alone: the trunk is missing
    with pytest.raises(WeightsNotFound, match="DISTS_pytorch/weights.pt"):
        load_dists(str(tmp_path / "nope.pth"))
    torch.save({"alpha": torch.rand(1, 1475, 1, 1), "beta": torch.rand(1, 1475, 1, 1)}, tmp_path / "dists.pt")
    with pytest.raises(WeightsNotFound, match="vgg16-397923af.pth"):
        load_dists(str(tmp_path / "dists.pt"))
    with pytest.raises(WeightsNotFound, match="x.pth"):  # before any image is read
        evaluate_folders(str(tmp_path), str(tmp_path), metrics=["lpips"], lpips_weights=str(tmp_path / "x.pth"))


def test_lpips_from_trunk_and_full_file(tmp_path, folders):
    torch.manual_seed(0)
    ref = LPIPS("alex")
    for p in ref.parameters():
        p.data.normal_(0, 0.05).abs_()
    torch.save(ref.state_dict(), tmp_path / "lpips_full.pth")
    # the same weights split the way they are published: torchvision trunk + linear layers
    trunk = {}
    for k, v in ref.state_dict().items():
        if k.startswith("net.slice"):
            trunk["features." + k.split(".", 3)[2] + "." + k.split(".", 3)[3]] = v
    assert len(trunk) == 10 and LPIPS_SLICES["alex"][-1][1] == 12
    torch.save(trunk, tmp_path / "alexnet-trunk.pth")
    torch.save({k: v for k, v in ref.state_dict().items() if k.startswith("lin")}, tmp_path / "lin.pth")
    a = load_lpips(str(tmp_path / "lpips_full.pth"))
    b = load_lpips(str(tmp_path / "lin.pth"), str(tmp_path / "alexnet-trunk.pth"))
    for sub in ("sr", "gt"):  # small copies keep the CPU cost down
        (tmp_path / sub).mkdir()
    write(tmp_path / "sr" / "cat_out.png", cv2.imread(str(folders / "sr" / "cat_out.png"))[:64, :64])
    write(tmp_path / "gt" / "cat.png", cv2.imread(str(folders / "gt" / "cat.png"))[:64, :64])
    sr, gt = cv2.imread(str(tmp_path / "sr" / "cat_out.png")), cv2.imread(str(tmp_path / "gt" / "cat.png"))
    va, vb = model_column("lpips", a, "cpu")(sr, gt)["lpips"], model_column("lpips", b, "cpu")(sr, gt)["lpips"]
    assert va == vb and va > 0
    assert model_column("lpips", a, "cpu")(gt, gt)["lpips"] == pytest.approx(0, abs=1e-6)
    res = evaluate_folders(
        str(tmp_path / "sr"),
        str(tmp_path / "gt"),
        metrics=["psnr", "lpips"],
        sr_suffix="_out",
        lpips_weights=str(tmp_path / "lpips_full.pth"),
        device="cpu",
        progress=False,
    )
    assert res["per_image"][0]["lpips"] == pytest.approx(va) and res["better"]["lpips"] == "lower"


def test_dists_from_trunk_file(tmp_path, folders):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    trunk = make_layers(cfgs["D"])  # torchvision VGG16 `features`, saved as torchvision names them
    torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, tmp_path / "vgg16.pth")
    torch.save({"alpha": torch.rand(1, 1475, 1, 1), "beta": torch.rand(1, 1475, 1, 1)}, tmp_path / "dists.pt")
    model = load_dists(str(tmp_path / "dists.pt"), str(tmp_path / "vgg16.pth"))
    assert torch.equal(model.stage5.get_submodule("28").weight, trunk[28].weight)
    assert torch.equal(model.stage2.get_submodule("5").weight, trunk[5].weight)
    column = model_column("dists", model, "cpu")
    sr, gt = (
        cv2.imread(str(folders / "sr" / "cat_out.png"))[:32, :32],
        cv2.imread(str(folders / "gt" / "cat.png"))[:32, :32],
    )
    assert column(gt, gt)["dists"] == pytest.approx(0, abs=1e-5)
    assert 0 < column(sr, gt)["dists"] < 1


def test_sfd_iqa_column_matches_the_scorer(tiny_clip_files, tmp_path, folders):
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
    from sfd_metric.sfd_iqa import SFDIQA

    torch.manual_seed(0)
    disc = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=16)
    torch.save({"params": disc.state_dict()}, tmp_path / "net_d_latest.pth")
    column = sfd_iqa_column(str(tmp_path / "net_d_latest.pth"), device="cpu")
    sr = cv2.imread(str(folders / "sr" / "cat_out.png"))
    got = column(sr, None)
    want = SFDIQA.from_checkpoint(str(tmp_path / "net_d_latest.pth"), device="cpu").score(sr[:, :, ::-1].copy())
    assert got == {"sfd_iqa": want.q, "sfd_iqa_feat": want.q_feat, "sfd_iqa_text": want.q_text}
    assert 0 <= got["sfd_iqa"] <= 1


def test_cli_writes_results_and_exit_codes(folders, tmp_path, capsys):
    cli = load_script("evaluate_sr")
    base = ["--sr", str(folders / "sr"), "--gt", str(folders / "gt"), "--quiet", "--metrics", "psnr", "ssim"]
    code = cli.main([*base, "--sr-suffix", "_out", "--out", str(tmp_path), "--label", "Bicubic"])
    assert code == 0
    res = json.load(open(tmp_path / "Bicubic.json"))
    assert res["label"] == "Bicubic" and res["count"] == 2 and set(res["mean"]) == {"psnr", "ssim"}
    assert os.path.isfile(tmp_path / "Bicubic_per_image.csv") and os.path.isfile(tmp_path / "Bicubic_mean.csv")
    assert cli.main([*base, "--out", str(tmp_path), "--name", "nosuffix"]) == 2  # nothing pairs: nothing to do
    out = capsys.readouterr()
    assert "sr without gt: 2" in out.out and "nothing was evaluated" in out.err
    missing = ["--metrics", "lpips", "--lpips-weights", str(tmp_path / "lpips.pth"), "--out", str(tmp_path)]
    assert cli.main([*base[:4], *missing]) == 2
    assert "lpips.pth" in capsys.readouterr().err
