"""CSUD rain generator T(content, rain_ref): puts the rain of ``rain_ref`` onto ``content``.

Dong et al., "Channel Consistency Prior and Self-Reconstruction Strategy Based Unsupervised Image
Deraining", CVPR 2025 (docs/method.md, CSUD, "Networks").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class ResidualBlock(nn.Module):
    """conv3x3 - LReLU - conv3x3 - LReLU, plus identity. Shape-preserving."""

    def __init__(self, channels: int, negative_slope: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(negative_slope),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@ARCH_REGISTRY.register()
class CSUDRainGenerator(nn.Module):
    """Rain generator: shared 7x7 stem on both inputs; a spectral-norm rain branch on the reference
    (4x4 stride-2 down, bilinear up, 3x3, residual add, 3x3); concat with the content stem; residual
    blocks; output convs; a 7x7 fusion with the content stem; a final 7x7 conv to RGB. No image skip
    (unless ``content_skip``) and no clamp, as in the authors' network.

    Args:
        num_in_ch (int): image channels. Default: 3.
        num_out_ch (int): output channels. Default: 3.
        num_feat (int): stem channels F; the body runs at 2F. Default: 64 (CSUD).
        num_block (int): residual blocks in the body. Default: 6 (CSUD).
        negative_slope (float): LeakyReLU slope. Default: 0.2.
        content_skip (bool): [ours, not the authors'] return ``content + residual`` with the last
            conv zero-initialised, so T starts as the identity and only has to learn the rain.
            Used by the short CPU demo; the authors' recipes keep False. Default: False.

    ``forward(content, rain_ref)``: two (B, C, H, W) images in [0, 1] of the same size; any H, W
    (odd sizes included; the rain branch is resized back to the stem's exact size). Returns
    (B, num_out_ch, H, W), not clamped.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 6,
        negative_slope: float = 0.2,
        content_skip: bool = False,
    ) -> None:
        super().__init__()
        if content_skip and num_in_ch != num_out_ch:
            raise ValueError("network_t: content_skip needs num_in_ch == num_out_ch")
        f = num_feat
        self.content_skip = content_skip
        self.act = nn.LeakyReLU(negative_slope)
        self.stem = nn.Conv2d(num_in_ch, f, 7, padding=3)
        self.rain_down = spectral_norm(nn.Conv2d(f, 2 * f, 4, stride=2, padding=1))
        self.rain_up = spectral_norm(nn.Conv2d(2 * f, f, 3, padding=1))
        self.rain_out = spectral_norm(nn.Conv2d(f, f, 3, padding=1))
        self.body = nn.Sequential(*[ResidualBlock(2 * f, negative_slope) for _ in range(num_block)])
        self.conv_out = nn.Sequential(
            nn.Conv2d(2 * f, f, 3, padding=1),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(f, f, 3, padding=1),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(f, f, 3, padding=1),
            nn.LeakyReLU(negative_slope),
        )
        self.fusion = nn.Conv2d(2 * f, f, 7, padding=3)
        self.conv_last = nn.Conv2d(f, num_out_ch, 7, padding=3)
        if content_skip:
            nn.init.zeros_(self.conv_last.weight)
            nn.init.zeros_(self.conv_last.bias)

    def rain_features(self, ref_stem: torch.Tensor) -> torch.Tensor:
        """(B, F, H, W) stem features of the rain reference -> (B, F, H, W) rain features."""
        x = self.act(self.rain_down(ref_stem))
        x = F.interpolate(x, size=ref_stem.shape[-2:], mode="bilinear", align_corners=False)
        x = self.act(self.rain_up(x)) + ref_stem
        return self.act(self.rain_out(x))

    def forward(self, content: torch.Tensor, rain_ref: torch.Tensor) -> torch.Tensor:
        if content.shape != rain_ref.shape:
            raise ValueError(
                f"CSUDRainGenerator: content {tuple(content.shape)} and rain reference {tuple(rain_ref.shape)} "
                "must have the same shape (crop both domains to the same size)"
            )
        content_stem = self.act(self.stem(content))
        rain = self.rain_features(self.act(self.stem(rain_ref)))
        x = self.body(torch.cat([content_stem, rain], dim=1))
        x = self.conv_out(x)
        x = self.conv_last(self.act(self.fusion(torch.cat([x, content_stem], dim=1))))
        return content + x if self.content_skip else x
