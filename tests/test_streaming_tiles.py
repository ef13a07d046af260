"""Streaming tiles: SR and derain outputs quantised tile by tile equal the whole-float-image path bit
for bit (8/16-bit, gray, RGBA), tiles report progress, and a big image stays within the memory bound."""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from basicsr.archs.rrdbnet_arch import RRDBNet
from conftest import ROOT, photo

from sfd_arch.bicubic_arch import SFDBicubicUpsampler
from sfd_arch.nafnet_arch import CSUDNAFNet
from sfd_tools.csud.derain import derain_image, derain_tensor
from sfd_tools.sr.inference import Upscaler, tile_boxes


def tiny_rrdb(scale: int) -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(3, 3, scale=scale, num_feat=8, num_block=1, num_grow_ch=4)


def photo_bgr(name: str, top: int, left: int, h: int, w: int) -> np.ndarray:
    return np.ascontiguousarray(photo(name)[top : top + h, left : left + w, ::-1])


def to_16bit(img8: np.ndarray) -> np.ndarray:
    """The photo at 16 bits with real low-order detail (not just x257)."""
    rng = np.random.default_rng(0)
    return img8.astype(np.uint16) * 257 + rng.integers(0, 257, img8.shape, dtype=np.uint16)


def camera(top: int, left: int, h: int, w: int) -> np.ndarray:
    """A crop of scikit-image's 8-bit gray cameraman, as OpenCV reads it (2-D)."""
    return cv2.imread(os.path.join(skimage.data.data_dir, "camera.png"), cv2.IMREAD_UNCHANGED)[
        top : top + h, left : left + w
    ]


def rgba_photo(h: int, w: int) -> np.ndarray:
    """BGRA: a colour photo crop with a varying alpha (a cameraman crop)."""
    return np.dstack([photo_bgr("astronaut", 60, 100, h, w), camera(300, 200, h, w)])


def float_path_sr(up: Upscaler, img: np.ndarray) -> np.ndarray:
    """The pre-streaming image path: the whole result as float (``upscale_tensor``), then rounded."""
    max_value = 65535.0 if img.dtype == np.uint16 else 255.0
    data = img.astype(np.float32) / max_value
    gray = data.ndim == 2
    rgb = np.repeat(data[:, :, None], 3, axis=2) if gray else data[:, :, 2::-1]

    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        return up.upscale_tensor(t).clamp(0, 1)[0].numpy().transpose(1, 2, 0)

    out = run(rgb)
    out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY) if gray else out[:, :, ::-1]
    if not gray and data.shape[2] == 4:
        alpha = data[:, :, 3]
        if up.alpha_upsampler == "model":
            up_alpha = run(np.repeat(alpha[:, :, None], 3, axis=2)).mean(axis=2)
        else:
            h, w = alpha.shape
            up_alpha = cv2.resize(alpha, (w * up.scale, h * up.scale), interpolation=cv2.INTER_LINEAR)
        out = np.concatenate([out, up_alpha[:, :, None]], axis=2)
    return np.clip(np.round(out * max_value), 0, max_value).astype(img.dtype)


def test_tile_boxes_cover_the_image_once():
    boxes = tile_boxes(37, 50, 16, 5)
    seen = np.zeros((37, 50), int)
    for b in boxes:
        seen[b.y0 : b.y1, b.x0 : b.x1] += 1
        assert b.ya == max(b.y0 - 5, 0) and b.yb == min(b.y1 + 5, 37) and b.xb == min(b.x1 + 5, 50)
    assert (seen == 1).all() and len(boxes) == 3 * 4


@pytest.mark.parametrize("scale, multiple", [(4, 1), (2, 2)])
@pytest.mark.parametrize("depth", [8, 16])
def test_sr_streaming_equals_float_path_bit_for_bit(scale, multiple, depth):
    rgb = photo_bgr("chelsea", 90, 140, 37, 45)  # real photo crop, odd sides, not a tile multiple
    img = rgb if depth == 8 else to_16bit(rgb)
    for tile, pad in ((0, 0), (16, 6)):
        up = Upscaler(tiny_rrdb(scale), scale=scale, multiple=multiple, device="cpu", tile=tile, tile_pad=pad)
        out, mode = up.enhance(img)
        assert mode == ("RGB" if depth == 8 else "RGB-16") and out.dtype == img.dtype
        np.testing.assert_array_equal(out, float_path_sr(up, img))


@pytest.mark.parametrize("alpha_upsampler", ["model", "bilinear"])
def test_sr_streaming_gray_and_rgba_equal_float_path(alpha_upsampler):
    gray, rgba = camera(200, 210, 33, 41), rgba_photo(35, 41)
    assert gray.ndim == 2 and rgba.shape[2] == 4 and len(np.unique(rgba[:, :, 3])) > 50
    for img in (gray, rgba, to_16bit(rgba)):
        up = Upscaler(tiny_rrdb(4), scale=4, device="cpu", tile=16, tile_pad=4, alpha_upsampler=alpha_upsampler)
        out, _ = up.enhance(img)
        assert out.shape == (img.shape[0] * 4, img.shape[1] * 4, *img.shape[2:])
        np.testing.assert_array_equal(out, float_path_sr(up, img))


@pytest.mark.parametrize("depth", [8, 16])
def test_sr_bicubic_tiled_equals_untiled(depth):
    """A network whose receptive field fits in tile_pad gives the same integers tiled and whole."""
    img = photo_bgr("coffee", 100, 200, 61, 83)
    img = img if depth == 8 else to_16bit(img)
    whole, _ = Upscaler(SFDBicubicUpsampler(4), scale=4, device="cpu").enhance(img)
    tiled, _ = Upscaler(SFDBicubicUpsampler(4), scale=4, device="cpu", tile=20, tile_pad=4).enhance(img)
    np.testing.assert_array_equal(tiled, whole)


def tiny_nafnet() -> CSUDNAFNet:
    torch.manual_seed(0)
    return CSUDNAFNet(width=8, enc_blk_nums=[1], middle_blk_num=1, dec_blk_nums=[1]).eval()


def float_path_derain(net, img: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """The pre-streaming derain path: the whole derained image as float, then rounded."""
    max_value = 65535.0 if img.dtype == np.uint16 else 255.0
    gray = img.ndim == 2
    bgr = np.repeat(img[..., None], 3, axis=2) if gray else img[..., :3]
    x = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1)[None].float() / max_value
    y = derain_tensor(net, x, tile, overlap)[0].permute(1, 2, 0).numpy()
    y = y.mean(axis=2) if gray else y[..., ::-1]
    out = np.round(y * max_value).astype(img.dtype)
    return np.concatenate([out, img[..., 3:]], axis=2) if not gray and img.shape[2] == 4 else out


@pytest.mark.parametrize("depth", [8, 16])
def test_derain_streaming_equals_float_path_bit_for_bit(depth):
    net = tiny_nafnet()
    img = photo_bgr("rocket", 150, 120, 53, 70)
    img = img if depth == 8 else to_16bit(img)
    gray, rgba = camera(100, 50, 40, 47), rgba_photo(40, 50)
    for case in (img, gray, rgba):
        for tile, overlap in ((0, 0), (24, 8), (32, 12)):
            out = derain_image(net, case, tile, overlap)
            assert out.shape == case.shape and out.dtype == case.dtype
            np.testing.assert_array_equal(out, float_path_derain(net, case, tile, overlap))


def test_derain_tensor_bands_match_a_direct_average():
    """The banded float average equals summing every tile into a full-size canvas."""
    net = tiny_nafnet()
    x = torch.rand(1, 3, 45, 61)
    got = derain_tensor(net, x, 24, 8)
    canvas, weight = torch.zeros_like(x), torch.zeros_like(x[:, :1])
    with torch.no_grad():
        for top in (0, 16, 21):
            for left in (0, 16, 32, 37):
                canvas[..., top : top + 24, left : left + 24] += net(x[..., top : top + 24, left : left + 24])
                weight[..., top : top + 24, left : left + 24] += 1
    assert torch.equal(got, (canvas / weight).clamp(0, 1))


def test_per_tile_progress(capsys):
    img = photo_bgr("chelsea", 0, 0, 40, 40)
    up = Upscaler(SFDBicubicUpsampler(4), scale=4, device="cpu", tile=16, tile_pad=2)
    up.enhance(img, progress=True)
    assert "/9 [" in capsys.readouterr().err  # a bar over 3 x 3 tiles
    up.enhance(img)
    derain_image(tiny_nafnet(), img, 24, 8, progress=True)
    err = capsys.readouterr().err
    assert "/4 [" in err and "/9 [" not in err  # 2 x 2 derain tiles; the SR call without progress is silent


def test_big_image_peak_rss_stays_within_bound(tmp_path):
    """1500x1000 at x4 (a 72 MB uint8 output) through scripts/inference_sr.py --tile 256 in a
    subprocess: peak RSS minus the baseline (the model run on one padded tile) stays under twice the
    output array."""
    sys.path.insert(0, ROOT)
    from sfd_lab.bench.big_image import run_case, write_photo

    image = write_photo(str(tmp_path / "big.png"), 1500, 1000)
    small = write_photo(str(tmp_path / "small.png"), 276, 276)  # one padded tile: the model at work
    row = run_case(ROOT, "bicubic", image, small, (1500, 1000), 4, 256, str(tmp_path), None)
    assert row["returncode"] == 0, row["stderr_tail"]
    assert row["output_array_bytes"] == 6000 * 4000 * 3
    assert row["peak_rss_bytes"] - row["baseline_rss_bytes"] < 2 * row["output_array_bytes"], row
