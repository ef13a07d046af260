"""SFD maths checked by value against an independent re-computation (tests/bite_reference.py).

SFDGANLoss (plain and relativistic) against softplus written out; the TG-D logit z and the Feat-D
maps against open_clip's own forward; one SFDModel iteration's logged losses and the running-RMS
buffer against the same maths by hand.
"""

from __future__ import annotations

import copy

import pytest
import torch
from basicsr.models import build_model
from bite_reference import (
    bce_fake,
    bce_real,
    clip_image,
    clip_prompt_features,
    feat_stats,
    normalised,
    set_feat_stats,
    stats_after_d_step,
    stats_initialised,
    text_logit,
)
from conftest import lr_hr_batch, photo_tensor, sfd_opt

from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
from sfd_loss.sfd_loss import SFDGANLoss


def logit_maps(seed: int, scale: float = 2.0) -> list[torch.Tensor]:
    """Three per-position logit maps of different sizes (as Feat-D's layers), batch 2."""
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(2, 1, s, s, generator=g) + 0.5 * k for k, s in enumerate((8, 4, 2))]


# -- SFDGANLoss ----------------------------------------------------------------------------------
def test_sfd_gan_loss_vanilla_by_hand():
    """L_D = mean_m [mean BCE(r_m, 1) + mean BCE(f_m, 0)] (unweighted), L_G = w mean_m mean BCE(f_m, 1)."""
    real, fake = logit_maps(0), logit_maps(1)
    w = 0.3
    loss = SFDGANLoss("vanilla", loss_weight=w)
    want_d = sum(bce_real(r).mean() + bce_fake(f).mean() for r, f in zip(real, fake)) / 3
    want_g = w * sum(bce_real(f).mean() for f in fake) / 3
    assert loss(real, fake, is_disc=True).item() == pytest.approx(want_d.item(), rel=1e-6)
    assert loss(None, fake, is_disc=False).item() == pytest.approx(want_g.item(), rel=1e-6)
    # One tensor (TG-D's (B,) logit) is a list of one.
    z_real, z_fake = torch.tensor([1.5, -0.5]), torch.tensor([0.25, -2.0])
    want = bce_real(z_real).mean() + bce_fake(z_fake).mean()
    assert loss(z_real, z_fake, is_disc=True).item() == pytest.approx(want.item(), rel=1e-6)


def test_sfd_gan_loss_lsgan_by_hand():
    real, fake = logit_maps(2), logit_maps(3)
    loss = SFDGANLoss("lsgan", loss_weight=0.5)
    want_d = sum((r - 1).pow(2).mean() + f.pow(2).mean() for r, f in zip(real, fake)) / 3
    want_g = 0.5 * sum((f - 1).pow(2).mean() for f in fake) / 3
    assert loss(real, fake, is_disc=True).item() == pytest.approx(want_d.item(), rel=1e-6)
    assert loss(None, fake, is_disc=False).item() == pytest.approx(want_g.item(), rel=1e-6)


def relativistic_by_hand(real, fake, w, is_disc):
    """ESRGAN's relativistic average GAN per tensor, averaged over the tensors (layers)."""
    terms = []
    for r, f in zip(real, fake):
        if is_disc:
            terms.append((bce_real(r - f.mean()).mean() + bce_fake(f - r.mean()).mean()) / 2)
        else:
            terms.append(w * (bce_fake(r - f.mean()).mean() + bce_real(f - r.mean()).mean()) / 2)
    return sum(terms) / len(terms)


def test_sfd_gan_loss_relativistic_by_hand():
    real, fake = logit_maps(4), logit_maps(5)
    w = 0.7
    loss = SFDGANLoss("vanilla", loss_weight=w, relativistic=True)
    d = loss(real, fake, is_disc=True)
    assert d.item() == pytest.approx(relativistic_by_hand(real, fake, w, True).item(), rel=1e-6)
    fake_g = [f.clone().requires_grad_(True) for f in fake]
    real_g = [r.clone().requires_grad_(True) for r in real]
    g = loss(real_g, fake_g, is_disc=False)
    assert g.item() == pytest.approx(relativistic_by_hand(real, fake, w, False).item(), rel=1e-6)
    g.backward()
    assert all(r.grad is None for r in real_g)  # the real logits are a constant in the G step
    ref = [f.clone().requires_grad_(True) for f in fake]
    relativistic_by_hand(real, ref, w, False).backward()
    for got, want in zip(fake_g, ref):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-8)


# -- TG-D logit and Feat-D maps against open_clip ------------------------------------------------------
@pytest.fixture(scope="module")
def disc(tiny_clip_files):
    torch.manual_seed(3)
    d = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=16)
    with torch.no_grad():
        d.prompt_pair.ctx.normal_(0, 0.5)  # far from the init: positive and negative prompts differ
    set_feat_stats(d.feat_disc, [0.7, 1.9, 3.1])
    return d.eval()


def test_prompt_features_are_open_clip_text_features(tiny_clip_files):
    """An init phrase makes the prompt a plain sentence: t+ = open_clip's encode_text of it."""
    import open_clip

    d = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=8, ctx_init="a photo of")
    clip = d.backbone.clip
    sentences = ["a photo of high quality photo.", "a photo of low quality photo."]
    want = clip.encode_text(open_clip.tokenize(sentences), normalize=True)
    torch.testing.assert_close(d.text_features().detach(), want, rtol=1e-5, atol=1e-6)


def test_text_logit_by_hand(disc):
    """z = tau (<e, t+> - <e, t->), e = normalised CLIP embedding, tau = exp(CLIP's logit_scale)."""
    clip = disc.backbone.clip
    img = photo_tensor("coffee", 64, batch=4)
    _, emb = clip_image(clip, img)
    text = clip_prompt_features(clip, disc.prompt_pair.ctx.detach(), "high quality photo.", "low quality photo.")
    with torch.no_grad():
        torch.testing.assert_close(disc.text_features(), text, rtol=1e-5, atol=1e-6)
        z = disc.text_logit(disc.extract(img).embedding)
    want = text_logit(clip, emb, text)
    assert want.std() > 0.05  # the images are told apart: a wrong formula cannot hide in a constant
    torch.testing.assert_close(z, want, rtol=1e-4, atol=1e-5)


def test_feat_logits_by_hand(disc):
    """Feat-D map m = head_m(N(E_m)), E_m = CLIP ResNet stage m output (m = 1, 2, 3), N the default
    normalisation: per channel (E_m - running mean) / running std."""
    clip = disc.backbone.clip
    img = photo_tensor("rocket", 64, batch=2)
    maps, _ = clip_image(clip, img)
    with torch.no_grad():
        got = disc.logits(disc.extract(img)).feat
        stats = feat_stats(disc.feat_disc)
        want = [disc.feat_disc.heads[m](normalised(stats, m, x)) for m, x in enumerate(maps)]
    assert stats[0] == "channel"
    assert [g.shape[-1] for g in got] == [16, 8, 4]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


# -- one SFDModel iteration by hand --------------------------------------------------------------------
def expected_iteration(snap_g, snap_d, text_g, batch, w, relativistic):
    """Logged losses and Feat-D's running statistics after one SFDModel iteration, from the networks at
    its start.

    snap_g / snap_d: generator and discriminator as they were when the iteration began; text_g: the
    prompt features the G step must use (those of the previous D step).
    """
    clip = snap_d.backbone.clip
    feat = snap_d.feat_disc
    y = batch["gt"]
    with torch.no_grad():
        y_hat = snap_g(batch["lq"])
    real_maps, e_real = clip_image(clip, y)
    fake_maps, e_fake = clip_image(clip, y_hat)
    stats_g = feat_stats(feat)  # G step: the running statistics must not move
    # D step: statistics of the real+fake batch, set on the first step, then a running average.
    both = [torch.cat([r, f]) for r, f in zip(real_maps, fake_maps)]
    stats_d = stats_after_d_step(stats_g, stats_initialised(feat), both, feat.momentum)
    text_d = clip_prompt_features(clip, snap_d.prompt_pair.ctx.detach(), "high quality photo.", "low quality photo.")
    with torch.no_grad():
        heads = feat.heads
        fake_g = [heads[m](normalised(stats_g, m, x)) for m, x in enumerate(fake_maps)]
        real_g = [heads[m](normalised(stats_g, m, x)) for m, x in enumerate(real_maps)]
        real_d = [heads[m](normalised(stats_d, m, x)) for m, x in enumerate(real_maps)]
        fake_d = [heads[m](normalised(stats_d, m, x)) for m, x in enumerate(fake_maps)]
    zg_fake, zg_real = text_logit(clip, e_fake, text_g), text_logit(clip, e_real, text_g)
    zd_real, zd_fake = text_logit(clip, e_real, text_d), text_logit(clip, e_fake, text_d)
    out = {"l_g_pix": 1e-2 * (y_hat - y).abs().mean()}
    if relativistic:
        out["l_g_feat"] = relativistic_by_hand(real_g, fake_g, w, False)
        out["l_g_text"] = relativistic_by_hand([zg_real], [zg_fake], w, False)
        out["l_d_feat"] = relativistic_by_hand(real_d, fake_d, w, True)
        out["l_d_text"] = relativistic_by_hand([zd_real], [zd_fake], w, True)
    else:
        out["l_g_feat"] = w * sum(bce_real(f).mean() for f in fake_g) / 3
        out["l_g_text"] = w * bce_real(zg_fake).mean()
        out["l_d_feat"] = sum(bce_real(r).mean() + bce_fake(f).mean() for r, f in zip(real_d, fake_d)) / 3
        out["l_d_text"] = bce_real(zd_real).mean() + bce_fake(zd_fake).mean()
    return {k: float(v) for k, v in out.items()}, stats_d, text_d


@pytest.mark.parametrize("relativistic,feat_norm", [(False, "channel"), (True, "channel"), (False, "rms")])
def test_sfd_model_iterations_by_hand(tiny_clip_files, tmp_path, relativistic, feat_norm):
    """Four SFDModel iterations: every logged G and D loss equals SPEC's formula computed by hand, the
    G step uses the previous D step's prompt features, and Feat-D's running statistics move only in
    the D step."""
    w = 0.25
    gan = {"type": "SFDGANLoss", "loss_weight": w, "relativistic": relativistic}
    torch.manual_seed(0)
    opt = sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path), feat_gan_opt=gan, text_gan_opt=dict(gan))
    opt["network_d"]["feat_norm"] = feat_norm
    model = build_model(opt)
    disc = model.get_bare_model(model.net_d)
    for head in disc.feat_disc.heads:
        head.eval()  # no spectral-norm power iteration per call: the snapshot's weights are the model's
    names = ("astronaut", "coffee", "rocket", "hubble_deep_field")
    text_g = None
    for it, name in enumerate(names, start=1):  # D learns, so its logits grow away from 0
        batch = lr_hr_batch(2, name=name)
        snap_g, snap_d = copy.deepcopy(model.net_g), copy.deepcopy(disc)
        if text_g is None:  # no D step yet: the G step computes the prompt features itself
            text_g = clip_prompt_features(
                snap_d.backbone.clip, snap_d.prompt_pair.ctx.detach(), "high quality photo.", "low quality photo."
            )
        want, stats_d, text_d = expected_iteration(snap_g, snap_d, text_g, batch, w, relativistic)
        model.feed_data(batch)
        model.optimize_parameters(it)
        for key, value in want.items():
            assert model.log_dict[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (it, key)
        kind, got = feat_stats(disc.feat_disc)
        assert kind == feat_norm
        torch.testing.assert_close(got, stats_d[1], rtol=1e-5, atol=1e-6)
        text_g = text_d  # the next G step must use this D step's prompt features
