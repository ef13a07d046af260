"""Whole-image measures of the bake-off, and the discriminators' capacity.

Per held-out photo (the whole image, no crop but BasicSR's 4-pixel border): PSNR and SSIM on Y
(BasicSR's ``calculate_psnr`` / ``calculate_ssim``, the SR papers' convention) and NIQE on Y
(BasicSR's, 96² blocks over the whole image: a 800×1280 photo gives 104 blocks per scale, where a
256² crop gave 4). HR is scored the same way (NIQE only). Capacity of a discriminator: trainable
and frozen parameters, and forward GFLOPs at the training crop (torch's FLOP counter: one
multiply-add = 2 FLOPs).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from sfd_lab.bakeoff.data import SCALE, Pair, to_tensor, to_uint8

MEASURES = {  # key -> (title, which way is better, full-reference?)
    "psnr": ("PSNR-Y (dB)", "higher", True),
    "ssim": ("SSIM-Y", "higher", True),
    "niqe": ("NIQE", "lower", False),
    "realism": ("realism-test accuracy", "lower", False),
}
PERCEPTUAL = ("niqe", "realism")  # the measures of realism; PSNR/SSIM measure distortion


@torch.no_grad()
def upscale(net: torch.nn.Module, lr: np.ndarray) -> np.ndarray:
    """A whole LR photo (h, w, 3) uint8 through the generator in one pass -> (4h, 4w, 3) uint8."""
    net.eval()
    return to_uint8(net(to_tensor(lr)[None].contiguous())[0])


def image_measures(sr: np.ndarray, hr: np.ndarray | None) -> dict:
    """PSNR/SSIM-Y against ``hr`` (when given) and NIQE-Y of ``sr``, all with a 4-pixel border crop.
    Images are (H, W, 3) uint8 RGB (BasicSR's functions take BGR: converted here)."""
    from basicsr.metrics import calculate_niqe, calculate_psnr, calculate_ssim

    sr_bgr = np.ascontiguousarray(sr[..., ::-1])
    out = {}
    if hr is not None:
        if hr.shape != sr.shape:
            raise ValueError(f"SR {sr.shape} and HR {hr.shape} differ in size")
        hr_bgr = np.ascontiguousarray(hr[..., ::-1])
        out["psnr"] = float(calculate_psnr(sr_bgr, hr_bgr, SCALE, "HWC", test_y_channel=True))
        out["ssim"] = float(calculate_ssim(sr_bgr, hr_bgr, SCALE, "HWC", test_y_channel=True))
    with warnings.catch_warnings():  # flat blocks (sky) have no negative MSCN values: BasicSR drops them
        warnings.simplefilter("ignore", RuntimeWarning)
        out["niqe"] = float(calculate_niqe(sr_bgr, SCALE, "HWC", convert_to="y"))
    return out


def measure_outputs(pairs: list[Pair], outputs: list[np.ndarray], reference: bool = True) -> dict:
    """{photo name: {"scene", "psnr", "ssim", "niqe"}} of one method's outputs (same order as ``pairs``)."""
    if len(outputs) != len(pairs):
        raise ValueError(f"{len(outputs)} outputs for {len(pairs)} photos")
    return {
        p.name: {"scene": p.scene, **image_measures(sr, p.hr if reference else None)} for p, sr in zip(pairs, outputs)
    }


def per_scene(per_image: dict, measure: str, scenes: list[str]) -> np.ndarray:
    """(n_scenes,) mean of ``measure`` over each scene's photos, in the order of ``scenes``."""
    sums = {s: [] for s in scenes}
    for row in per_image.values():
        sums[row["scene"]].append(row[measure])
    missing = [s for s, v in sums.items() if not v]
    if missing:
        raise ValueError(f"no {measure} for scene(s) {missing}")
    return np.array([np.mean(sums[s]) for s in scenes])


def capacity(net_d: torch.nn.Module, crop: int) -> dict:
    """Trainable and frozen parameters (buffers not counted; SFD's CLIP is frozen, stored as
    parameters or buffers) and forward GFLOPs of one (1, 3, crop, crop) image."""
    from torch.utils.flop_counter import FlopCounterMode

    trainable = sum(p.numel() for p in net_d.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in net_d.parameters() if not p.requires_grad)
    clip = getattr(getattr(net_d, "backbone", None), "clip", None)
    if clip is not None and isinstance(clip, torch.nn.Module):
        counted = {id(p) for p in net_d.parameters()}
        frozen += sum(p.numel() for p in clip.parameters() if id(p) not in counted)
    was_training = net_d.training
    net_d.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net_d(torch.rand(1, 3, crop, crop))
    net_d.train(was_training)
    return {"trainable": int(trainable), "frozen": int(frozen), "gflops": round(counter.get_total_flops() / 1e9, 3)}
