"""A parameter-free bicubic upsampler as network_g: trains the SFD discriminator alone.

With it, SFDModel runs discriminator-only (no generator optimizer): Feat-D and TG-D learn to tell
HR crops from bicubic-upsampled LR crops. Used by the learning check and to pre-train a
discriminator for SFD-IQA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


@ARCH_REGISTRY.register()
class SFDBicubicUpsampler(nn.Module):
    """(B, C, h, w) in [0, 1] -> (B, C, h*scale, w*scale) bicubic, clamped to [0, 1].

    Args:
        scale (int): upsampling factor. Default: 4.
    """

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp(0, 1)
