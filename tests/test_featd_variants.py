"""The Feat-D design options of the design study (issue 30 item 7): head depth and kernel (receptive
field), the per-channel feature normalisation, the heads' activations, the feature-matching generator
term, and their checkpoint metadata (older files without the new keys load as what they were)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from basicsr.models import build_model
from bite_reference import feat_stats, normalised
from conftest import lr_hr_batch, photo_tensor, sfd_opt

from sfd_arch.feat_discriminator_arch import FeatDiscriminator, FeatDiscriminatorHead
from sfd_arch.sfd_discriminator_arch import SFDDiscriminator, decode_config
from sfd_loss.sfd_loss import SFDGANLoss


# -- head depth and kernel ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("depth", "kernel", "reach"), [(0, 3, 0), (2, 1, 0), (1, 5, 2), (2, 3, 2), (4, 3, 4)])
def test_head_receptive_field_is_one_plus_depth_times_kernel_minus_one(depth, kernel, reach):
    torch.manual_seed(0)
    head = FeatDiscriminatorHead(6, 8, depth, kernel)
    assert len(head.convs()) == depth + 2
    x = torch.randn(1, 6, 15, 15, requires_grad=True)
    out = head(x)
    assert out.shape == (1, 1, 15, 15)
    out[0, 0, 7, 7].backward()
    touched = (x.grad.abs().sum(1)[0] > 0).nonzero()
    assert touched.min(0).values.tolist() == [7 - reach] * 2 and touched.max(0).values.tolist() == [7 + reach] * 2


def test_default_head_keeps_its_state_dict_keys():
    """Checkpoints written before the options existed hold body.0/2/4/6: the default builds the same."""
    keys = {k.split(".parametrizations")[0].rsplit(".bias", 1)[0] for k in FeatDiscriminatorHead(4, 8).state_dict()}
    assert keys == {"body.0", "body.2", "body.4", "body.6"}


def test_heads_of_any_depth_take_gradients_and_graph_weights():
    """Per-head weights computed once (the eval and graphed paths) give the eager logits at any depth."""
    torch.manual_seed(0)
    d = FeatDiscriminator([4, 8], 8, head_depth=3, head_kernel=5)
    feats = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]
    out = d(feats)
    assert [o.shape for o in out] == [(2, 1, 8, 8), (2, 1, 4, 4)]
    sum(o.mean() for o in out).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())
    d.eval()
    with torch.no_grad():
        stats = feat_stats(d)
        eager = [h.body(normalised(stats, m, f)) for m, (h, f) in enumerate(zip(d.heads, feats))]
        frozen = d(feats)  # the cached normalised weights, split per head by its own conv count
    for a, b in zip(frozen, eager):
        torch.testing.assert_close(a, b)


# -- feat_norm: channel ---------------------------------------------------------------------------------------
def test_channel_norm_standardises_each_channel_and_moves_only_in_the_discriminator_step():
    d = FeatDiscriminator([3, 5], 8, feat_norm="channel")
    assert {"feat_mean", "feat_std", "feat_stats_initialised"} <= set(d.state_dict())
    assert "feat_rms" not in d.state_dict()
    scale = torch.tensor([0.5, 1.0, 30.0]).view(1, 3, 1, 1)
    feats = [torch.randn(4, 3, 6, 6) * scale + 5.0, torch.rand(4, 5, 3, 3)]
    d.requires_grad_(False)
    d(feats)  # generator step: heads take no gradient
    with torch.no_grad():
        d.requires_grad_(True)
        d(feats)  # validation / scoring
    assert not bool(d.feat_stats_initialised) and torch.equal(d.feat_std, torch.ones(8))
    d(feats)  # discriminator step: the first sets the statistics
    means = torch.cat([f.mean((0, 2, 3)) for f in feats])
    stds = torch.cat([f.std((0, 2, 3), correction=0) for f in feats])
    torch.testing.assert_close(d.feat_mean, means)
    torch.testing.assert_close(d.feat_std, stds)
    normed = d.normalise(feats)
    for n in normed:  # what the heads see: zero mean, unit deviation per channel
        torch.testing.assert_close(n.mean((0, 2, 3)), torch.zeros(n.shape[1]), atol=1e-5, rtol=0)
        torch.testing.assert_close(n.std((0, 2, 3), correction=0), torch.ones(n.shape[1]), atol=1e-4, rtol=0)
    d([f * 2 for f in feats])  # then a moving average
    torch.testing.assert_close(d.feat_std, stds * (1 + d.momentum))
    torch.testing.assert_close(d.feat_mean, means * (1 + d.momentum))


def test_channel_norm_passes_gradients_to_the_features_and_floors_dead_channels():
    d = FeatDiscriminator([4], 8, feat_norm="channel")
    f = torch.rand(2, 4, 5, 5)
    f[:, 2] = 0.0  # a dead ReLU channel
    d([f])
    assert d.feat_std[2] > 0 and torch.isfinite(d.feat_mean).all()
    d.requires_grad_(False)
    x = f.clone().requires_grad_(True)
    d([x])[0].mean().backward()  # the generator's gradient goes through the normalisation
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_bad_head_arguments_are_refused():
    with pytest.raises(ValueError, match="feat_norm must be one of rms, channel, none"):
        FeatDiscriminator([4], feat_norm="batch")
    with pytest.raises(ValueError, match="head_kernel odd"):
        FeatDiscriminator([4], head_kernel=2)


# -- the heads' activations and feature matching ------------------------------------------------------------
def test_logits_can_return_the_heads_activations(tiny_clip_files):
    torch.manual_seed(0)
    disc = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=8, feat_head_depth=1)
    disc(photo_tensor("coffee", 64, batch=2))  # a training forward sets the running statistics
    disc.eval()  # and now no power iteration: the heads' weights stay put between the calls below
    feats = disc.extract(photo_tensor("astronaut", 64, batch=2))
    plain = disc.logits(feats)
    assert plain.feat_hidden is None
    out = disc.logits(feats, hidden=True)
    assert len(out.feat_hidden) == 3 * 2  # three layers, two LeakyReLUs per head at depth 1
    for m, head in enumerate(disc.feat_disc.heads):
        x = normalised(feat_stats(disc.feat_disc), m, feats.middle[m])
        for k, act in enumerate(out.feat_hidden[2 * m : 2 * m + 2]):
            x = head.body[2 * k + 1](head.body[2 * k](x))
            torch.testing.assert_close(act, x)
        torch.testing.assert_close(out.feat[m], head.body[-1](x))
    text_only = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, use_feat=False)
    assert text_only.logits(text_only.extract(photo_tensor("astronaut", 64)), hidden=True).feat_hidden is None


def test_feature_matching_value_by_hand_and_gradient_only_to_fake():
    loss = SFDGANLoss("vanilla", loss_weight=0.5, feature_matching=True)
    fake = [torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([[0.0, 4.0, -1.0]], requires_grad=True)]
    real = [torch.tensor([0.0, 4.0], requires_grad=True), torch.tensor([[1.0, 1.0, 1.0]], requires_grad=True)]
    # mean over tensors of mean |fake - real|: (1 + 2) / 2 = 1.5 and (1 + 3 + 2) / 3 = 2 -> 1.75, times 0.5
    value = loss(real, fake, is_disc=False)
    assert value.item() == pytest.approx(0.875)
    value.backward()
    assert real[0].grad is None and real[1].grad is None
    torch.testing.assert_close(fake[0].grad, torch.tensor([0.5, -0.5]) * 0.5 / 2)
    # the discriminator term stays the GAN loss on logits: BCE(2, real) + BCE(-1, fake) = softplus(-2) + softplus(-1)
    d = loss(torch.tensor([2.0]), torch.tensor([-1.0]), is_disc=True)
    assert d.item() == pytest.approx(F.softplus(torch.tensor(-2.0)).item() + F.softplus(torch.tensor(-1.0)).item())
    with pytest.raises(ValueError, match="1 real vs 2 fake"):
        loss(real[:1], fake, is_disc=False)
    with pytest.raises(ValueError, match="choose one"):
        SFDGANLoss(relativistic=True, feature_matching=True)


def test_sfd_model_feature_matching_step(tiny_clip_files, tmp_path):
    """SFDModel's G term with feature matching: the heads' activations of SR against those of its HR
    (by hand, from snapshots), gradients to G only; TG-D cannot match features."""
    w = 0.3
    feat_opt = {"type": "SFDGANLoss", "loss_weight": w, "feature_matching": True}
    text_opt = {"type": "SFDGANLoss", "loss_weight": w}
    torch.manual_seed(0)
    opt = sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path), feat_gan_opt=feat_opt, text_gan_opt=text_opt)
    model = build_model(opt)
    disc = model.get_bare_model(model.net_d)
    for head in disc.feat_disc.heads:
        head.eval()  # no power iteration per call: the snapshot's weights are the model's
    model.feed_data(lr_hr_batch(2, name="coffee"))
    model.optimize_parameters(1)  # a D step first, so the running RMS is set
    batch = lr_hr_batch(2, name="astronaut")
    snap_g, snap_d = copy.deepcopy(model.net_g), copy.deepcopy(disc)
    with torch.no_grad():
        sr = snap_g(batch["lq"])
        real = snap_d.logits(snap_d.extract(batch["gt"]), hidden=True).feat_hidden
        fake = snap_d.logits(snap_d.extract(sr), hidden=True).feat_hidden
    want = w * sum((f - r).abs().mean() for f, r in zip(fake, real)) / len(real)
    d_params = {n: p.detach().clone() for n, p in disc.named_parameters()}
    model.feed_data(batch)
    model.optimize_parameters(2)
    assert model.log_dict["l_g_feat"] == pytest.approx(float(want), rel=1e-4)
    assert any(not torch.equal(p, d_params[n]) for n, p in disc.named_parameters())  # its D step still ran
    bad = {"type": "SFDGANLoss", "loss_weight": w, "feature_matching": True}
    with pytest.raises(ValueError, match=r"^train\.text_gan_opt\.feature_matching: TG-D has one logit"):
        build_model(sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path / "b"), feat_gan_opt=text_opt, text_gan_opt=bad))


# -- checkpoint metadata ---------------------------------------------------------------------------------------
def test_new_options_round_trip_through_the_checkpoint(tiny_clip_files, tmp_path):
    from sfd_metric.sfd_iqa import build_discriminator, load_sfd_checkpoint
    from sfd_utils.checkpoint import CheckpointError

    clip = tiny_clip_files["tiny-rn"]
    kw = {"n_ctx": 4, "feat_mid_channels": 8}
    disc = SFDDiscriminator("tiny-rn", clip, feat_norm="channel", feat_head_depth=1, feat_head_kernel=5, **kw)
    disc(photo_tensor("astronaut", 64, batch=2))  # training mode: the channel statistics move
    path = tmp_path / "net_d.pth"
    torch.save({"params": disc.state_dict()}, path)
    state = torch.load(path, weights_only=True)["params"]
    meta = decode_config(state["_extra_state"])
    assert (meta["feat_norm"], meta["feat_head_depth"], meta["feat_head_kernel"]) == ("channel", 1, 5)
    same = SFDDiscriminator("tiny-rn", clip, feat_norm="channel", feat_head_depth=1, feat_head_kernel=5, **kw)
    same.load_state_dict(state)
    torch.testing.assert_close(same.feat_disc.feat_std, disc.feat_disc.feat_std)
    with pytest.raises(CheckpointError, match=r"feat_norm: checkpoint 'channel' vs network 'rms'.*feat_head_depth"):
        SFDDiscriminator("tiny-rn", clip, feat_norm="rms", **kw).load_state_dict(state)
    config, loaded = load_sfd_checkpoint(str(path))  # SFD-IQA rebuilds the network from what the file records
    rebuilt = build_discriminator(config, loaded)
    assert (rebuilt.config["feat_norm"], rebuilt.config["feat_head_depth"]) == ("channel", 1)
    torch.testing.assert_close(rebuilt.feat_disc.feat_mean, disc.feat_disc.feat_mean)


def test_older_checkpoints_without_the_new_keys_load_as_what_they_were(tiny_clip_files, tmp_path):
    """A file written before feat_head_depth / feat_head_kernel existed was trained with depth 2, kernel 3."""
    import json

    from sfd_metric.sfd_iqa import build_discriminator, load_sfd_checkpoint

    clip = tiny_clip_files["tiny-rn"]
    old = SFDDiscriminator("tiny-rn", clip, n_ctx=4, feat_mid_channels=8)
    state = old.state_dict()
    config = {k: v for k, v in old.config.items() if k not in ("feat_head_depth", "feat_head_kernel")}
    state["_extra_state"] = torch.tensor(list(json.dumps(config).encode("utf-8")), dtype=torch.uint8)
    assert decode_config(state["_extra_state"])["feat_head_depth"] == 2
    SFDDiscriminator("tiny-rn", clip, n_ctx=4, feat_mid_channels=8).load_state_dict(state)
    torch.save({"params": state}, tmp_path / "old.pth")
    rebuilt = build_discriminator(*load_sfd_checkpoint(str(tmp_path / "old.pth")))
    assert (rebuilt.config["feat_head_depth"], rebuilt.config["feat_head_kernel"]) == (2, 3)
