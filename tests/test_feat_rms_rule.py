"""Feat-D's running statistics (the RMS of each layer with ``feat_norm: rms``; each channel's mean and
standard deviation with ``channel``, the default) move only in the discriminator step (SPEC), in
SFDModel and in BasicSR's stock GAN models: they update only when the heads' parameters take gradients."""

from __future__ import annotations

import pytest
import torch
from basicsr.models import build_model
from bite_reference import flat_stats, stats_initialised
from conftest import lr_hr_batch, photo_tensor, sfd_opt

from sfd_arch.feat_discriminator_arch import FeatDiscriminator


def test_rule_in_isolation():
    d = FeatDiscriminator([4, 8], mid_channels=8, feat_norm="rms")
    feats = [torch.randn(2, 4, 8, 8) * 3, torch.randn(2, 8, 4, 4) * 0.1]
    d.requires_grad_(False)
    d(feats)  # training mode but the heads take no gradient: generator step
    assert not bool(d.feat_rms_initialised) and torch.equal(d.feat_rms, torch.ones(2))
    d.requires_grad_(True)
    with torch.no_grad():
        d(feats)  # no autograd: validation, scoring
    d.eval()
    d(feats)  # eval mode
    assert not bool(d.feat_rms_initialised)
    d.train()
    d(feats)  # discriminator step: first call sets it
    expected = torch.stack([f.pow(2).mean().sqrt() for f in feats])
    assert torch.allclose(d.feat_rms, expected)
    d([f * 2 for f in feats])  # then an exponential moving average
    assert torch.allclose(d.feat_rms, expected * (1 + d.momentum))


def test_channel_rule_in_isolation():
    d = FeatDiscriminator([4, 8], mid_channels=8)
    assert d.feat_norm == "channel"  # the default since the Feat-D design study of 2026-12-07
    feats = [torch.randn(2, 4, 8, 8) * 3 + 1, torch.randn(2, 8, 4, 4) * 0.1]
    start = flat_stats(d)
    d.requires_grad_(False)
    d(feats)  # generator step
    d.requires_grad_(True)
    with torch.no_grad():
        d(feats)  # validation, scoring
    d.eval()
    d(feats)
    assert not stats_initialised(d) and torch.equal(flat_stats(d), start)
    d.train()
    d(feats)  # discriminator step: first call sets them
    mean = torch.cat([f.mean(dim=(0, 2, 3)) for f in feats])
    std = torch.cat([f.var(dim=(0, 2, 3), unbiased=False).sqrt() for f in feats])
    assert stats_initialised(d) and torch.allclose(d.feat_mean, mean, atol=1e-6)
    assert torch.allclose(d.feat_std, std, rtol=1e-5)
    d([f * 2 for f in feats])  # then an exponential moving average
    assert torch.allclose(d.feat_mean, mean * (1 + d.momentum), atol=1e-6)


def record_rms_events(model):
    """Event list: ('generator' or 'discriminator', moved) for every Feat-D forward (the phase read from
    whether the heads take gradients, as in BasicSR's models), 'g_step' / 'd_step' at each optimizer step
    (SFDModel applies the generator's step after the discriminator's forward: one skip decision for both)."""
    disc = model.get_bare_model(model.net_d)
    events, before = [], []

    def phase(m) -> str:
        return "discriminator" if any(p.requires_grad for p in m.parameters()) else "generator"

    disc.feat_disc.register_forward_pre_hook(lambda m, _a: before.append(flat_stats(m)))
    disc.feat_disc.register_forward_hook(
        lambda m, _a, _o: events.append((phase(m), not torch.equal(before.pop(), flat_stats(m))))
    )
    for name in ("g", "d"):
        opt = getattr(model, f"optimizer_{name}")
        step = opt.step

        def marked(*a, _step=step, _name=name, **k):
            events.append(f"{_name}_step")
            return _step(*a, **k)

        opt.step = marked
    return events


@pytest.mark.parametrize(
    "model_type,d_passes",
    [
        ("SFDModel", 1),  # G: fake; D: real+fake in one batch
        ("SRGANModel", 2),  # G: fake; D: real, then fake
        ("ESRGANModel", 3),  # G: real (detached) and fake; D: fake (detached), real, fake
    ],
)
def test_rms_moves_only_in_the_discriminator_step(model_type, d_passes, tiny_clip_files, tmp_path):
    opt = sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path), model_type=model_type)
    if model_type != "SFDModel":
        opt["train"].pop("feat_gan_opt"), opt["train"].pop("text_gan_opt")
        opt["train"]["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 5e-3}
    model = build_model(opt)
    events = record_rms_events(model)
    for it in (1, 2):
        events.clear()
        model.feed_data(lr_hr_batch(name="coffee" if it == 2 else "astronaut"))
        model.optimize_parameters(it)
        assert events.count("g_step") == 1 and events.count("d_step") == 1
        passes = [e for e in events if isinstance(e, tuple)]
        g_passes = [moved for who, moved in passes if who == "generator"]
        assert g_passes and not any(g_passes)  # generator step: unchanged
        assert [moved for who, moved in passes if who == "discriminator"] == [True] * d_passes  # each D pass moves it
        assert events.index("d_step") > max(i for i, e in enumerate(events) if e == ("discriminator", True))


def test_discriminator_only_iterations_and_iqa_scoring_leave_it_alone(tiny_clip_files, tmp_path):
    model = build_model(sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path), net_d_init_iters=5))
    disc = model.get_bare_model(model.net_d)
    model.feed_data(lr_hr_batch())
    model.optimize_parameters(1)  # no generator step: the D step sets it
    before = flat_stats(disc.feat_disc)
    assert stats_initialised(disc.feat_disc)
    with torch.no_grad():  # e.g. SFD-IQA on the live discriminator, still in training mode
        disc(photo_tensor("chelsea", 64, batch=2))
    assert torch.equal(flat_stats(disc.feat_disc), before)


@pytest.mark.parametrize("strict", [True, False])
def test_other_normalisation_is_refused_by_name(strict):
    """Heads trained on RMS-scaled maps must not silently meet standardised ones (or the reverse): a
    non-strict load would keep the heads and start the statistics afresh."""
    rms, channel = FeatDiscriminator([4, 8], 8, feat_norm="rms"), FeatDiscriminator([4, 8], 8)
    with pytest.raises(ValueError, match="trained with feat_norm: rms .* uses feat_norm: channel"):
        channel.load_state_dict(rms.state_dict(), strict=strict)
    with pytest.raises(ValueError, match="trained with feat_norm: channel .* uses feat_norm: rms"):
        rms.load_state_dict(channel.state_dict(), strict=strict)
    host = torch.nn.Sequential(FeatDiscriminator([4, 8], 8))  # inside a network: the message names where
    with pytest.raises(ValueError, match=r"^Feat-D \(0\): the checkpoint was trained with feat_norm: rms"):
        host.load_state_dict(torch.nn.Sequential(rms).state_dict(), strict=strict)
    FeatDiscriminator([4, 8], 8, feat_norm="none").load_state_dict(rms.state_dict())  # the same buffers
    channel.load_state_dict(FeatDiscriminator([4, 8], 8).state_dict(), strict=strict)
