"""SR inference: tiling, odd sizes, gray/RGBA/16-bit modes, precision, folders with bad files, the CLI."""

from __future__ import annotations

import importlib.util
import os

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.srvgg_arch import SRVGGNetCompact
from conftest import ROOT, photo, photo_tensor
from torch import nn

from sfd_tools.sr.inference import Upscaler, list_images, load_upscaler, output_name, upscale_paths

TINY_RRDB = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def tiny_rrdb(scale: int = 4) -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(3, 3, scale=scale, **TINY_RRDB)


def raw_skimage(name: str) -> np.ndarray:
    """A scikit-image file as OpenCV reads it for inference (gray stays 2-D, RGBA stays 4-channel)."""
    return cv2.imread(os.path.join(skimage.data.data_dir, name), cv2.IMREAD_UNCHANGED)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CountCalls(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


class DropRed(nn.Module):
    """x4 nearest upsampling with the red channel set to 0: shows whether RGB/BGR order is right."""

    def forward(self, x):
        y = nn.functional.interpolate(x, scale_factor=4, mode="nearest")
        return torch.cat([torch.zeros_like(y[:, :1]), y[:, 1:]], dim=1)


@pytest.mark.parametrize(
    "net, scale, multiple",
    [
        (tiny_rrdb(4), 4, 1),
        (tiny_rrdb(2), 2, 2),  # pixel-unshuffle: odd sides are padded to even
        (SRVGGNetCompact(3, 3, num_feat=8, num_conv=2, upscale=4), 4, 1),
    ],
)
def test_tiling_equals_untiled_on_odd_sizes(net, scale, multiple):
    x = photo_tensor("chelsea", None)[:, :, 100:129, 150:187]  # 29 x 37: odd, not a tile multiple
    counted = CountCalls(net)
    up = Upscaler(counted, scale=scale, multiple=multiple, device="cpu")
    whole = up.upscale_tensor(x)
    assert whole.shape[-2:] == (29 * scale, 37 * scale) and counted.calls == 1
    up.tile, up.tile_pad = 16, 20 * multiple  # overlap wider than the tiny networks' receptive field
    tiled = up.upscale_tensor(x)
    assert counted.calls == 1 + 2 * 3  # ceil(29/16) x ceil(37/16) tiles
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_modes_are_kept_and_channels_not_swapped():
    up = Upscaler(DropRed(), scale=4, device="cpu")
    rgb = photo("chelsea")[:21, :31]
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    out, mode = up.enhance(bgr)
    assert mode == "RGB" and out.shape == (84, 124, 3) and out.dtype == np.uint8
    assert not out[:, :, 2].any() and out[:, :, 0].any()  # red (OpenCV channel 2) dropped, blue kept
    np.testing.assert_array_equal(out[::4, ::4, :2], bgr[:, :, :2])

    up = Upscaler(tiny_rrdb(4), scale=4, device="cpu")
    gray = raw_skimage("camera.png")[:19, :23]
    out, mode = up.enhance(gray)
    assert mode == "L" and out.shape == (76, 92) and out.dtype == np.uint8

    rgba = raw_skimage("logo.png")[:20, :24]
    assert rgba.shape[2] == 4
    out, mode = up.enhance(rgba)
    assert mode == "RGBA" and out.shape == (80, 96, 4)
    bilinear = Upscaler(tiny_rrdb(4), scale=4, device="cpu", alpha_upsampler="bilinear")
    out_b, _ = bilinear.enhance(rgba)
    expect = cv2.resize(rgba[:, :, 3].astype(np.float32) / 255, (96, 80), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out_b[:, :, 3], np.round(expect * 255).astype(np.uint8))
    np.testing.assert_array_equal(out_b[:, :, :3], out[:, :, :3])  # colour does not depend on the alpha path


def test_16bit_keeps_depth_and_matches_8bit():
    up = Upscaler(tiny_rrdb(4), scale=4, device="cpu")
    img8 = cv2.cvtColor(photo("coffee")[:17, :25], cv2.COLOR_RGB2BGR)
    img16 = img8.astype(np.uint16) * 257  # the same picture at 16 bits (a dark one: max <= 255*257)
    out16, mode = up.enhance(img16 // 256)  # dark 16-bit data is still 16-bit (Real-ESRGAN would say 8-bit)
    assert mode == "RGB-16" and out16.dtype == np.uint16
    out16, _ = up.enhance(img16)
    out8, _ = up.enhance(img8)
    assert out16.shape == out8.shape == (68, 100, 3)
    assert np.abs(out16.astype(np.int64) / 257 - out8).max() <= 1  # 8-bit rounding only
    gray16, mode = up.enhance(img16[:, :, 0])
    assert mode == "L-16" and gray16.shape == (68, 100) and gray16.dtype == np.uint16


def test_precision_and_scale_checks():
    x = photo_tensor("astronaut", 16)
    ref = Upscaler(tiny_rrdb(4), scale=4, device="cpu").upscale_tensor(x)
    bf16 = Upscaler(tiny_rrdb(4), scale=4, device="cpu", precision="bf16")
    assert (bf16.upscale_tensor(x) - ref).abs().max() < 0.05
    fp16 = Upscaler(tiny_rrdb(4), scale=4, device="cpu", precision="fp16")
    assert fp16.precision == "fp32" and "fp16" in fp16.notes[0]
    with pytest.raises(ValueError, match="not x2"):
        Upscaler(tiny_rrdb(4), scale=2, device="cpu").upscale_tensor(x)


def write(path, img) -> str:
    assert cv2.imwrite(str(path), img)
    return str(path)


def test_folder_run_skips_bad_files_and_keeps_modes(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write(src / "a_rgb.png", cv2.cvtColor(photo("chelsea")[:16, :20], cv2.COLOR_RGB2BGR))
    write(src / "b_gray.png", raw_skimage("camera.png")[:16, :20])
    write(src / "c_rgba.png", raw_skimage("logo.png")[:16, :20])
    write(src / "d_16bit.png", (cv2.cvtColor(photo("coffee")[:16, :20], cv2.COLOR_RGB2BGR).astype(np.uint16) * 257))
    write(src / "e_jpeg.jpg", cv2.cvtColor(photo("rocket")[:16, :20], cv2.COLOR_RGB2BGR))
    (src / "f_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (src / "g_empty.jpg").write_bytes(b"")
    (src / "notes.txt").write_text("not an image")
    paths = list_images(str(src))
    assert [os.path.basename(p) for p in paths][-2:] == ["f_corrupt.png", "g_empty.jpg"] and len(paths) == 7

    up = Upscaler(tiny_rrdb(4), scale=4, device="cpu", tile=16, tile_pad=4)
    summary = upscale_paths(paths, str(tmp_path / "out"), up, suffix="sr", ext="jpg", progress=False)
    assert sorted(os.path.basename(p) for p, _ in summary.failed) == ["f_corrupt.png", "g_empty.jpg"]
    reasons = dict((os.path.basename(p), reason) for p, reason in summary.failed)
    assert "corrupt PNG" in reasons["f_corrupt.png"] and "empty file" in reasons["g_empty.jpg"]
    names = sorted(os.path.basename(p) for p in summary.written)
    # RGBA and 16-bit cannot be JPEG: written as PNG, with a note
    assert names == ["a_rgb_sr.jpg", "b_gray_sr.jpg", "c_rgba_sr.png", "d_16bit_sr.png", "e_jpeg_sr.jpg"]
    assert len(summary.notes) == 2
    back = {n: cv2.imread(str(tmp_path / "out" / n), cv2.IMREAD_UNCHANGED) for n in names}
    assert back["b_gray_sr.jpg"].shape == (64, 80)
    assert back["c_rgba_sr.png"].shape == (64, 80, 4)
    assert back["d_16bit_sr.png"].dtype == np.uint16 and back["d_16bit_sr.png"].shape == (64, 80, 3)
    assert back["a_rgb_sr.jpg"].shape == (64, 80, 3)


def test_output_names_and_overwrite_guard(tmp_path):
    assert output_name("x/baby.png", "out", "auto", "RGB") == ("baby_out.png", None)
    assert output_name("x/baby.JPG", "", "png", "RGB") == ("baby.png", None)
    name, note = output_name("x/logo.jpg", "out", "auto", "RGBA")
    assert name == "logo_out.png" and "RGBA" in note
    img = write(tmp_path / "p.png", cv2.cvtColor(photo("chelsea")[:8, :8], cv2.COLOR_RGB2BGR))
    up = Upscaler(tiny_rrdb(4), scale=4, device="cpu")
    summary = upscale_paths([img], str(tmp_path), up, suffix="", ext="auto", progress=False)
    assert not summary.written and "overwrite the input" in summary.failed[0][1]
    assert cv2.imread(img).shape == (8, 8, 3)
    jpg = write(tmp_path / "p.jpg", cv2.cvtColor(photo("coffee")[:8, :8], cv2.COLOR_RGB2BGR))
    out = tmp_path / "clash"
    summary = upscale_paths([img, jpg], str(out), up, ext="png", progress=False)  # both -> p_out.png
    assert len(summary.written) == 1 and "already written for p.png" in summary.failed[0][1]
    assert summary.failed[0][0] == jpg and os.listdir(out) == ["p_out.png"]
    with pytest.raises(ValueError, match="--ext xyz"):
        upscale_paths([img], str(out), up, ext="xyz", progress=False)
    with pytest.raises(ValueError, match="outscale must be > 0"):
        Upscaler(tiny_rrdb(4), scale=4, device="cpu", outscale=0)


def test_cli_with_checkpoints_of_each_kind(tmp_path, capsys):
    from test_official_weights import official_file

    src = tmp_path / "lr"
    src.mkdir()
    write(src / "baby.png", cv2.cvtColor(photo("astronaut")[:12, :14], cv2.COLOR_RGB2BGR))
    (src / "broken.png").write_bytes(b"broken")
    net = tiny_rrdb(4)
    torch.save({"params": net.state_dict(), "params_ema": net.state_dict()}, tmp_path / "net_g_latest.pth")
    cli = load_script("inference_sr")
    args = ["-i", str(src), "--model", str(tmp_path / "net_g_latest.pth"), "--quiet", "--device", "cpu"]
    arch = ["--arch", "RRDBNet", "--arch-opt", "num_in_ch=3", "num_out_ch=3", "num_feat=8", "num_block=1"]
    code = cli.main([*args, "-o", str(tmp_path / "a"), *arch, "num_grow_ch=4", "--tile", "8"])
    assert code == 1  # one file skipped
    out = capsys.readouterr().out
    assert "wrote 1 image(s)" in out and "skipped 1" in out and "broken.png" in out
    expect = Upscaler(net, scale=4, device="cpu").enhance(cv2.imread(str(src / "baby.png")))[0]
    got = cv2.imread(str(tmp_path / "a" / "baby_out.png"))
    assert np.abs(got.astype(int) - expect).max() <= 1

    # the official x2 release: architecture inferred from the checkpoint, no --arch needed
    ref, path = official_file(tmp_path, 2)
    up = load_upscaler(path, device="cpu")
    assert type(up.net).__name__ == "SFDRRDBNetOfficialX2" and up.scale == 2
    os.remove(src / "broken.png")
    code = cli.main(["-i", str(src), "--model", path, "-o", str(tmp_path / "b"), "--quiet", "--suffix", "x2"])
    assert code == 0 and cv2.imread(str(tmp_path / "b" / "baby_x2.png")).shape == (24, 28, 3)
    with pytest.raises(ValueError, match="disagrees"):
        load_upscaler(path, scale=4)


def test_cli_bicubic_baseline_and_start_up_errors(tmp_path, capsys):
    src = tmp_path / "lr"
    src.mkdir()
    lr = cv2.cvtColor(photo("astronaut")[:12, :14], cv2.COLOR_RGB2BGR)
    write(src / "baby.png", lr)
    cli = load_script("inference_sr")
    bicubic = ["--arch", "SFDBicubicUpsampler", "--arch-opt", "scale=4", "--quiet"]
    assert cli.main(["-i", str(src), "-o", str(tmp_path / "bic"), *bicubic]) == 0  # no checkpoint needed
    out = cv2.imread(str(tmp_path / "bic" / "baby_out.png"))
    assert out.shape == (48, 56, 3) and np.abs(out[1::4, 1::4].astype(int) - lr).mean() < 12
    assert cli.main(["-i", str(src), "-o", str(tmp_path / "x"), "--arch", "RRDBNet"]) == 2
    assert "missing 2 required positional arguments" in capsys.readouterr().err
    tiny = ["--arch-opt", "num_in_ch=3", "num_out_ch=3", "num_feat=8", "num_block=1", "num_grow_ch=4"]
    assert cli.main(["-i", str(src), "-o", str(tmp_path / "x"), "--arch", "RRDBNet", *tiny]) == 2
    assert "give the checkpoint (--model)" in capsys.readouterr().err
    assert cli.main(["-i", str(src), "--model", str(tmp_path / "none.pth"), "--arch", "RRDBNet"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert cli.main(["-i", str(src), "--arch", "NoSuchNet"]) == 2
    assert "unknown architecture 'NoSuchNet'" in capsys.readouterr().err
