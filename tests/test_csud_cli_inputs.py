"""CSUD command-line tools on awkward inputs: derain.py (output folder, name clashes, wrong or
unreadable checkpoints, tile options, 16-bit/RGBA/gray images) and make_synthetic_rain.py (re-runs,
crop sizes larger than the photos, invalid options, help text)."""

from __future__ import annotations

import importlib.util
import os

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, photo

from sfd_arch.csud_generator_arch import CSUDRainGenerator
from sfd_arch.nafnet_arch import CSUDNAFNet
from sfd_tools.csud import derain
from sfd_utils.cli import run_cli

TINY_NAFNET = {"type": "CSUDNAFNet", "width": 8, "middle_blk_num": 1, "enc_blk_nums": [1], "dec_blk_nums": [1]}


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    torch.manual_seed(0)
    net = CSUDNAFNet(**{k: v for k, v in TINY_NAFNET.items() if k != "type"})
    path = tmp_path_factory.mktemp("weights") / "net_g_1.pth"
    torch.save({"params": net.state_dict()}, path)
    return str(path)


def rainy_folder(folder, names=("a.png", "b.png")) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), photo("chelsea")[10 * i : 10 * i + 24, 30:62, ::-1])
    return str(folder)


def run_derain(capsys, *args) -> tuple[int, str, str]:
    code = run_cli(derain.main, [str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def snapshot(folder) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder))}


# -- derain.py ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "gt"])
def test_derain_refuses_an_output_folder_that_is_the_input_or_gt(tmp_path, capsys, weights, spelling):
    inp = tmp_path / "rain"
    rainy_folder(inp)
    before = snapshot(inp)
    extra = []
    if spelling == "same":
        out = inp
    elif spelling == "dotdot":
        (tmp_path / "other").mkdir()
        out = f"{tmp_path}/other/../rain/."
    elif spelling == "symlink":
        out = tmp_path / "link"
        os.symlink(inp, out)
    else:  # -o the GT folder: derained PNGs would replace the clean references
        gt = tmp_path / "gt"
        rainy_folder(gt)
        out, extra = gt, ["--gt", gt]
    code, text, err = run_derain(capsys, "-i", inp, "-w", weights, "-o", out, *extra)
    assert code == 2 and "derained" not in text
    assert err.startswith("error: output would overwrite the") and err.count("\n") == 1
    assert snapshot(inp) == before


def test_derain_refuses_inputs_with_the_same_output_name(tmp_path, capsys, weights):
    inp = rainy_folder(tmp_path / "rain", ("a.jpg", "a.png", "b.png"))
    out = tmp_path / "out"
    code, text, err = run_derain(capsys, "-i", inp, "-w", weights, "-o", out)
    assert code == 2 and "a.jpg and a.png -> a.png" in err and err.count("\n") == 1
    assert not out.exists()  # stopped before anything was written
    # Without an output folder nothing can clash: all three are derained.
    assert run_derain(capsys, "-i", inp, "-w", weights)[0] == 0


def test_derain_names_a_rain_generator_checkpoint_in_one_line(tmp_path, capsys):
    gen = tmp_path / "net_t_latest.pth"
    torch.save({"params": CSUDRainGenerator(num_feat=8, num_block=1).state_dict()}, gen)
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(yaml.safe_dump({"network_g": TINY_NAFNET}))
    inp = rainy_folder(tmp_path / "rain")
    code, _, err = run_derain(capsys, "-i", inp, "-w", gen, "--opt", recipe)
    assert code == 2 and err.count("\n") == 1 and len(err) < 600, err
    assert f"{gen} does not match the derainer architecture CSUDNAFNet" in err
    assert "missing keys (e.g. " in err and "unexpected keys (e.g. " in err and "net_g_*.pth" in err
    code, _, err = run_derain(capsys, "-i", inp, "-w", gen)  # shape read from the keys
    assert code == 2 and "not a NAFNet checkpoint" in err and "net_g_*.pth" in err


def test_derain_names_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello, not a checkpoint\n")
    code, _, err = run_derain(capsys, "-i", rainy_folder(tmp_path / "rain"), "-w", text_file)
    assert code == 2 and err.count("\n") == 1
    assert str(text_file) in err and "cannot be read as a weights-only torch checkpoint" in err


@pytest.mark.parametrize(
    "options,message",
    [
        (["--tile", "-1"], "--tile must be >= 0"),
        (["--overlap", "-4"], "--overlap must be >= 0"),
        (["--tile", "16", "--overlap", "16"], "must be smaller than --tile"),
    ],
)
def test_derain_rejects_negative_or_unfit_tiling(tmp_path, capsys, weights, options, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        derain.main(["-i", rainy_folder(tmp_path / "rain"), "-w", weights, "-o", str(out), *options])
    assert exc.value.code == 2 and message in capsys.readouterr().err and not out.exists()


def test_derain_help_gives_the_tile_default(capsys):
    with pytest.raises(SystemExit):
        derain.main(["-h"])
    assert "(default: 1024)" in " ".join(capsys.readouterr().out.split())


def test_derain_keeps_bit_depth_alpha_and_gray(tmp_path, capsys, weights):
    rgb = photo("coffee")[:30, :40, ::-1]
    alpha = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))
    images = {
        "rgb16.png": rgb.astype(np.uint16) * 257,
        "rgba8.png": np.dstack([rgb, alpha]),
        "rgba16.png": np.dstack([rgb, alpha]).astype(np.uint16) * 257,
        "gray8.png": cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY),
        "gray16.png": cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257,
    }
    inp, gt, out = tmp_path / "rain", tmp_path / "gt", tmp_path / "out"
    inp.mkdir(), gt.mkdir()
    for name, img in images.items():
        cv2.imwrite(str(inp / name), img)
        cv2.imwrite(str(gt / name), rgb)  # 8-bit RGB references: scored on 8-bit RGB
    code, text, _ = run_derain(capsys, "-i", inp, "-w", weights, "-o", out, "--gt", gt)
    assert code == 0 and "derained 5 of 5" in text and "scored 5" in text
    for name, img in images.items():
        res = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert res.dtype == img.dtype and res.shape == img.shape, name
        if img.ndim == 3 and img.shape[2] == 4:
            np.testing.assert_array_equal(res[..., 3], img[..., 3])  # alpha copied unchanged
    # 16-bit output uses the full range, not 8-bit values in a 16-bit file.
    assert cv2.imread(str(out / "rgb16.png"), cv2.IMREAD_UNCHANGED).max() > 255
    # 8-bit RGB: unchanged behaviour (uint8 BGR in, uint8 BGR out).
    assert derain.derain_image(derain.load_derainer(weights), rgb).dtype == np.uint8


# -- make_synthetic_rain.py --------------------------------------------------------------------------------
SMALL = ["--size", "96", "--test-size", "64", "--per-photo", "1"]


def run_make(capsys, *args) -> tuple[int, str, str]:
    code = run_cli(load_script("make_synthetic_rain").main, [str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_make_synthetic_rain_refuses_old_files_unless_overwrite(tmp_path, capsys):
    root = tmp_path / "data"
    code, text, _ = run_make(capsys, "--root", root, *SMALL)
    assert code == 0
    first = {s: sorted(os.listdir(root / s)) for s in ("train/rain", "train/clean", "test/rain", "test/clean")}
    (root / "train" / "rain" / "stale_999.png").write_bytes(b"old")
    (root / "notes.txt").write_text("mine")
    code, _, err = run_make(capsys, "--root", root, *SMALL)
    assert code == 2 and "not empty" in err and "--overwrite" in err and err.count("\n") == 1
    code, text, _ = run_make(
        capsys, "--root", root, "--size", "64", "--test-size", "64", "--per-photo", "1", "--overwrite"
    )
    assert code == 0 and not (root / "train" / "rain" / "stale_999.png").exists()
    assert (root / "notes.txt").read_text() == "mine"  # only the split folders are emptied
    for split in first:
        n = len(os.listdir(root / split))
        assert f"{split} {n}" in text  # counts of files written, equal to what is on disk now
    assert sorted(os.listdir(root / "test/rain")) == first["test/rain"]


@pytest.mark.parametrize("clean_from,sizes", [("other_halves", "872x500"), ("other_photos", "512x512")])
def test_make_synthetic_rain_crop_larger_than_the_photos(tmp_path, capsys, clean_from, sizes):
    root = tmp_path / "data"
    code, text, err = run_make(capsys, "--root", root, "--size", "5000", "--clean-from", clean_from)
    assert code == 2 and "--size 5000 is larger than every" in err and sizes in err and err.count("\n") == 1
    assert not root.exists()  # checked before anything was written
    code, _, err = run_make(capsys, "--root", root, "--size", "64", "--test-size", "5000")
    assert code == 2 and "--test-size 5000" in err and "1411x1411" in err


@pytest.mark.parametrize(
    "options,message",
    [
        (["--size", "0"], "--size must be >= 1"),
        (["--test-size", "-3"], "--test-size must be >= 1"),
        (["--per-photo", "-1"], "--per-photo must be >= 1"),
        (["--density", "2", "1"], "--density takes MIN MAX"),
        (["--strength", "-0.5", "0.5"], "--strength takes MIN MAX"),
    ],
)
def test_make_synthetic_rain_rejects_invalid_options(tmp_path, capsys, options, message):
    with pytest.raises(SystemExit) as exc:
        load_script("make_synthetic_rain").main(["--root", str(tmp_path / "data"), *options])
    assert exc.value.code == 2 and message in capsys.readouterr().err and not (tmp_path / "data").exists()


def test_make_synthetic_rain_help_describes_the_clean_source(capsys):
    with pytest.raises(SystemExit):
        load_script("make_synthetic_rain").main(["-h"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(crops of other photos)" not in text
    assert "other half of each training photo" in text and "--overwrite" in text
