"""CSUD losses (docs/method.md, CSUD): channel consistency, self-reconstruction, and the derainer's SSIM term.

The L1, perceptual (SFDPerceptualLoss / BasicSR PerceptualLoss) and LSGAN (BasicSR GANLoss) terms
are BasicSR's own losses, configured in the recipe; these are the pieces BasicSR does not have.
Every class takes ``loss_weight`` like BasicSR's losses and returns a scalar tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.losses.basic_loss import l1_loss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from sfd_arch.csud_discriminator_arch import gaussian_kernel


def channel_consistency(clean: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
    """Channel Consistency Prior: rain changes R, G and B alike, so ``d = clean - rainy`` must be
    achromatic. Returns ``mean|dr - dg| + mean|dg - db| + mean|db - dr|`` (scalar, >= 0); zero
    exactly when the difference is the same in every channel. Inputs (B, 3, H, W)."""
    if clean.shape != rainy.shape or clean.shape[1] != 3:
        raise ValueError(f"channel consistency needs two (B, 3, H, W) tensors, got {clean.shape}, {rainy.shape}")
    d = clean - rainy
    dr, dg, db = d[:, 0], d[:, 1], d[:, 2]
    return (dr - dg).abs().mean() + (dg - db).abs().mean() + (db - dr).abs().mean()


@LOSS_REGISTRY.register()
class CSUDChannelConsistencyLoss(nn.Module):
    """CCLoss, ``loss_weight * channel_consistency(clean, pseudo_rainy)``. Authors' weight: 10.

    ``forward(pseudo_rainy, clean)``: (B, 3, H, W) each.
    """

    def __init__(self, loss_weight: float = 10.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pseudo_rainy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * channel_consistency(clean, pseudo_rainy)


@LOSS_REGISTRY.register()
class CSUDSelfReconstructionLoss(nn.Module):
    """Self-reconstruction: re-rained images whose rain reference is rain-free must give back the
    clean image. ``loss_weight * sum_i L1(recon_i, clean)`` (BasicSR's l1_loss, mean over pixels).

    Authors' weights: 5 for the generator's pair (S1, S2), 0.5 for the derainer's pair (S3, S2).
    ``forward(recons, clean)``: a sequence of (B, C, H, W) tensors and one (B, C, H, W) target.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, recons: Sequence[torch.Tensor], clean: torch.Tensor) -> torch.Tensor:
        if not recons:
            raise ValueError("CSUDSelfReconstructionLoss: no reconstruction given")
        return self.loss_weight * torch.stack([l1_loss(r, clean, reduction="mean") for r in recons]).sum()


def ssim(img: torch.Tensor, img2: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Differentiable SSIM of (B, C, H, W) images in [0, 1], Gaussian window (1, 1, k, k), 'valid'
    filtering; per-image mean over channels and positions, (B,). Same formula and constants as
    BasicSR's ``calculate_ssim_pt`` (float32 instead of float64)."""
    c1, c2 = 0.01**2, 0.03**2
    ch = img.shape[1]
    w = window.to(img.dtype).expand(ch, 1, -1, -1)

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, groups=ch)

    mu1, mu2 = filt(img), filt(img2)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = filt(img * img) - mu1_sq
    s2 = filt(img2 * img2) - mu2_sq
    s12 = filt(img * img2) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return ssim_map.mean(dim=(1, 2, 3))


@LOSS_REGISTRY.register()
class CSUDSSIMLoss(nn.Module):
    """SSIM loss for the derainer: ``loss_weight * -log10(mean SSIM)`` (authors' form, weight 1), or
    ``loss_weight * (1 - mean SSIM)`` with ``form: one_minus``.

    Args:
        loss_weight (float): Default: 1.0.
        form (str): 'neg_log10' (default) or 'one_minus'.
        window_size (int), sigma (float): Gaussian window. Default: 11, 1.5 (as BasicSR's metric).

    ``forward(pred, target)``: (B, C, H, W) in [0, 1], H, W >= window_size.
    """

    def __init__(self, loss_weight: float = 1.0, form: str = "neg_log10", window_size: int = 11, sigma=1.5) -> None:
        super().__init__()
        if form not in ("neg_log10", "one_minus"):
            raise ValueError(f"CSUDSSIMLoss: form must be 'neg_log10' or 'one_minus', got {form!r}")
        self.loss_weight = loss_weight
        self.form = form
        self.register_buffer("window", gaussian_kernel(window_size, sigma)[None, None], persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = ssim(pred, target, self.window).mean()
        if self.form == "one_minus":
            return self.loss_weight * (1 - value)
        # SSIM can dip to <= 0 for unrelated images; the floor keeps the log finite.
        return self.loss_weight * -torch.log10(value.clamp(min=1e-4))
