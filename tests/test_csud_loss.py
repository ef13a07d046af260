"""CSUD losses: channel consistency, self-reconstruction, SSIM (against BasicSR's SSIM metric)."""

from __future__ import annotations

import pytest
import torch
from basicsr.losses import build_loss
from basicsr.metrics.psnr_ssim import calculate_ssim_pt
from conftest import photo_tensor

from sfd_loss.csud_loss import CSUDChannelConsistencyLoss, CSUDSelfReconstructionLoss, CSUDSSIMLoss, ssim


def test_cc_loss_zero_for_achromatic_difference():
    clean = photo_tensor("coffee", 48, batch=2)
    grey_rain = torch.rand(2, 1, 48, 48) * 0.3  # the same change in R, G and B
    loss = build_loss({"type": "CSUDChannelConsistencyLoss", "loss_weight": 10.0})
    assert loss(clean + grey_rain, clean).item() == pytest.approx(0.0, abs=1e-6)


def test_cc_loss_positive_for_coloured_difference_and_weighted():
    clean = photo_tensor("coffee", 48, batch=2)
    tint = torch.tensor([0.1, 0.0, 0.0]).view(1, 3, 1, 1)  # red-only change
    # d = clean - rainy = (-0.1, 0, 0): |dr-dg| + |dg-db| + |db-dr| = 0.1 + 0 + 0.1
    assert CSUDChannelConsistencyLoss(1.0)(clean + tint, clean).item() == pytest.approx(0.2, rel=1e-5)
    assert CSUDChannelConsistencyLoss(10.0)(clean + tint, clean).item() == pytest.approx(2.0, rel=1e-5)
    coloured = clean + 0.2 * torch.rand(2, 3, 48, 48)
    assert CSUDChannelConsistencyLoss(1.0)(coloured, clean).item() > 0.05


def test_cc_loss_needs_rgb():
    with pytest.raises(ValueError, match="B, 3, H, W"):
        CSUDChannelConsistencyLoss()(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_self_reconstruction_sums_l1_terms():
    clean = photo_tensor("astronaut", 32)
    a, b = clean + 0.1, clean - 0.3
    loss = CSUDSelfReconstructionLoss(loss_weight=5.0)
    assert loss([a, b], clean).item() == pytest.approx(5.0 * (0.1 + 0.3), rel=1e-5)
    assert loss([clean], clean).item() == 0.0
    with pytest.raises(ValueError):
        loss([], clean)


def test_ssim_matches_basicsr_metric_and_loss_forms():
    x = photo_tensor("astronaut", 64, batch=2)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    ours = ssim(x, y, CSUDSSIMLoss().window)
    ref = calculate_ssim_pt(x, y, crop_border=0).float()
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)  # float32 vs float64
    loss = CSUDSSIMLoss()
    assert loss(x, y).item() == pytest.approx(-torch.log10(ref.mean()).item(), rel=1e-4)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert CSUDSSIMLoss(2.0, form="one_minus")(x, y).item() == pytest.approx(2 * (1 - ref.mean().item()), rel=1e-4)
    with pytest.raises(ValueError, match="form"):
        CSUDSSIMLoss(form="log")


def test_ssim_loss_has_gradient_and_stays_finite_for_unrelated_images():
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss = CSUDSSIMLoss()(x, 1 - x.detach())  # SSIM near or below zero
    loss.backward()
    assert torch.isfinite(loss) and x.grad is not None and torch.isfinite(x.grad).all()
