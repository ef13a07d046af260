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
        feat_norm (str): 'rms' divides each layer's map by a running RMS of that layer's features
            (a buffer saved with the heads); 'none' feeds maps as they are. The RMS moves only in
            training mode while the heads are trainable, i.e. in the discriminator step (SFDModel
            and BasicSR's GAN models set requires_grad=False on net_d for the generator step); until
            the first discriminator step the RMS is 1 (maps unscaled). Spectral-normalised heads
            cannot amplify, so without it their logits scale with the backbone's feature
            magnitude, which differs by orders between CLIP models.
            Default: 'rms'.
        momentum (float): update rate of the running RMS. Default: 0.01.

    Input: list of M maps (B, C_m, h_m, w_m) -> list of M logit maps (B, 1, h_m, w_m).
    """

    def __init__(
        self, in_channels: list[int], mid_channels: int = 256, feat_norm: str = "rms", momentum: float = 0.01
    ) -> None:
        super().__init__()
        if feat_norm not in ("rms", "none"):
            raise ValueError(f"feat_norm must be 'rms' or 'none', got {feat_norm!r}")
        self.heads = nn.ModuleList(FeatDiscriminatorHead(c, mid_channels) for c in in_channels)
        self.feat_norm, self.momentum = feat_norm, momentum
        self.register_buffer("feat_rms", torch.ones(len(in_channels)))
        self.register_buffer("feat_rms_initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def _update_rms(self, feats: list[torch.Tensor]) -> None:
        current = torch.stack([f.detach().float().pow(2).mean().sqrt() for f in feats]).clamp_min(1e-12)
        if bool(self.feat_rms_initialised):
            self.feat_rms.lerp_(current.to(self.feat_rms.dtype), self.momentum)
        else:
            self.feat_rms.copy_(current)
            self.feat_rms_initialised.fill_(True)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.heads):
            raise ValueError(f"Feat-D has {len(self.heads)} heads but got {len(feats)} feature maps")
        if self.feat_norm == "rms":
            heads_trained = any(p.requires_grad for p in self.heads.parameters())
            if self.training and heads_trained:  # the discriminator step
                self._update_rms(feats)
            rms = self.feat_rms.clone()  # a copy: the buffer may be updated again before backward
            feats = [f / rms[i].to(f.dtype) for i, f in enumerate(feats)]
        return [head(f) for head, f in zip(self.heads, feats)]
