"""CSUD discriminator: a pix2pix PatchGAN judging an image together with its high-frequency part.

docs/method.md, CSUD: the input is the 6-channel stack ``[x, x - GaussBlur_15,sigma9(x)]``. The blur kernel
is a constant, non-persistent buffer (the authors' code made it trainable: a defect we fix).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """(size, size) normalised 2-D Gaussian, float32."""
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    k = torch.outer(g, g)
    return (k / k.sum()).float()


@ARCH_REGISTRY.register()
class CSUDPatchDiscriminator(nn.Module):
    """pix2pix NLayerDiscriminator (InstanceNorm, LReLU 0.2) on ``[x, x - blur(x)]``.

    Args:
        num_in_ch (int): image channels C; the network sees 2C. Default: 3.
        ndf (int): channels of the first layer. Default: 64.
        n_layers (int): stride-2 layers. Default: 3.
        blur_kernel_size (int): Gaussian kernel size. Default: 15.
        blur_sigma (float): Gaussian sigma. Default: 9.
        use_high_pass (bool): append ``x - blur(x)``; False judges ``x`` alone (ablation). Default: True.

    ``forward(x)``: (B, C, H, W) in [0, 1], H and W >= 2 ** (n_layers + 2) (InstanceNorm needs more
    than one position per map) -> (B, 1, ~H/2**n_layers - 2, ~W/2**n_layers - 2) patch logits.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        blur_kernel_size: int = 15,
        blur_sigma: float = 9.0,
        use_high_pass: bool = True,
    ) -> None:
        super().__init__()
        self.use_high_pass = use_high_pass
        self.num_in_ch = num_in_ch
        kernel = gaussian_kernel(blur_kernel_size, blur_sigma)[None, None].repeat(num_in_ch, 1, 1, 1)
        # Constant: never trained, never saved, follows .to(device).
        self.register_buffer("blur_kernel", kernel, persistent=False)
        in_ch = 2 * num_in_ch if use_high_pass else num_in_ch
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1),
                nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.body = nn.Sequential(*layers)
        self.min_size = 2 ** (n_layers + 2)

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise Gaussian blur, replicate padding, same shape as ``x``."""
        pad = self.blur_kernel.shape[-1] // 2
        x_pad = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        return F.conv2d(x_pad, self.blur_kernel.to(x.dtype), groups=self.num_in_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"CSUDPatchDiscriminator: input {tuple(x.shape)} is smaller than {self.min_size} px")
        if self.use_high_pass:
            x = torch.cat([x, x - self.blur(x)], dim=1)
        return self.body(x)


def patch_logit_size(size: int, n_layers: int = 3) -> int:
    """Spatial size of the logit map for an input side ``size`` (for tests and docs)."""
    for _ in range(n_layers):
        size = math.floor((size + 2 - 4) / 2) + 1
    for _ in range(2):
        size = size + 2 - 4 + 1
    return size
