"""Feat-D: pixel-wise discriminator heads on CLIP's middle feature maps (SFD, CVPR 2025)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class FeatDiscriminatorHead(nn.Module):
    """One Feat-D head: spectral-normalised 1x1 (C -> mid), two 3x3, 1x1 (mid -> 1).

    Args:
        in_channels (int): channels of the CLIP middle map it judges.
        mid_channels (int): width of the head. Default: 256.

    Input (B, C, h, w) CLIP map -> output (B, 1, h, w) per-position real/fake logits.
    """

    def __init__(self, in_channels: int, mid_channels: int = 256) -> None:
        super().__init__()
        self.body = nn.Sequential(
            spectral_norm(nn.Conv2d(in_channels, mid_channels, 1)),
            nn.LeakyReLU(0.2, inplace=True),
            spectral_norm(nn.Conv2d(mid_channels, mid_channels, 3, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            spectral_norm(nn.Conv2d(mid_channels, mid_channels, 3, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            spectral_norm(nn.Conv2d(mid_channels, 1, 1)),
        )

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.body(feat)


class FeatDiscriminator(nn.Module):
    """Feat-D: one :class:`FeatDiscriminatorHead` per configured CLIP middle layer.

    Args:
        in_channels (list[int]): channels of each middle map (``FrozenCLIP.feat_channels``).
        mid_channels (int): head width. Default: 256.

    Input: list of M maps (B, C_m, h_m, w_m) -> list of M logit maps (B, 1, h_m, w_m).
    """

    def __init__(self, in_channels: list[int], mid_channels: int = 256) -> None:
        super().__init__()
        self.heads = nn.ModuleList(FeatDiscriminatorHead(c, mid_channels) for c in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.heads):
            raise ValueError(f"Feat-D has {len(self.heads)} heads but got {len(feats)} feature maps")
        return [head(f) for head, f in zip(self.heads, feats)]
