"""RRDBNet that predicts a residual over bicubic upsampling (the CPU demo's generator).

``out = bicubic(x) + RRDBNet(x)`` with RRDBNet's last convolution zero-initialised, so an untrained
network *is* bicubic upsampling and every step of L1 training can only add detail to it. That lets a
tiny generator beat bicubic after a minute or two of CPU training, which a plain RRDBNet from
scratch does not (it first has to learn to reproduce the image). The full-size recipes keep
BasicSR's RRDBNet (fine-tuned from a PSNR-oriented checkpoint), as the paper's release does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


@ARCH_REGISTRY.register()
class SFDBicubicSkipRRDBNet(RRDBNet):
    """(B, 3, h, w) in [0, 1] -> (B, 3, h*scale, w*scale): bicubic upsampling plus an RRDBNet residual.

    Args: those of BasicSR's ``RRDBNet`` (num_in_ch, num_out_ch, scale=4, num_feat=64, num_block=23,
    num_grow_ch=32). ``num_in_ch`` must equal ``num_out_ch`` (the skip adds the input's channels).
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32) -> None:
        if num_in_ch != num_out_ch:
            raise ValueError(f"network_g: num_in_ch ({num_in_ch}) must equal num_out_ch ({num_out_ch}) for the skip")
        super().__init__(num_in_ch, num_out_ch, scale, num_feat, num_block, num_grow_ch)
        nn.init.zeros_(self.conv_last.weight)
        nn.init.zeros_(self.conv_last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return skip + super().forward(x)
