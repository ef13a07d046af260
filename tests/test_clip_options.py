"""FrozenCLIP / SFDDiscriminator options: truncated text tower (exact), frozen-weight dtype, dropped
text tower, CLIP input size (shapes, gradients, checkpoint record, SFD-IQA)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from basicsr.models import build_model
from conftest import TINY_CLIPS, lr_hr_batch, photo_tensor, sfd_opt

from sfd_arch.clip_backbone import FrozenCLIP, resolve_clip_dtype
from sfd_arch.sfd_discriminator_arch import SFDDiscriminator, decode_config
from sfd_arch.text_discriminator_arch import LearnablePromptPair
from sfd_metric.sfd_iqa import SFDIQA, build_discriminator, load_sfd_checkpoint


def make_disc(clip_file, name="tiny-rn", seed=0, **kw):
    torch.manual_seed(seed)  # same heads and contexts for the same seed
    kw = {"n_ctx": 4, "feat_mid_channels": 16, **kw}
    return SFDDiscriminator(name, clip_file, **kw)


def transformer_lengths(backbone):
    """Sequence lengths the text transformer runs on, recorded by a hook."""
    seen = []
    backbone.clip.transformer.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[1]))
    return seen


# -- truncated text tower -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", TINY_CLIPS)
@pytest.mark.parametrize("ctx_init", [None, "a sharp photo of"])
def test_truncated_text_tower_is_exact_with_learnable_context(name, ctx_init, tiny_clip_files):
    m = FrozenCLIP(name, tiny_clip_files[name])
    torch.manual_seed(1)
    pair = LearnablePromptPair(m, n_ctx=16, ctx_init=ctx_init)
    with torch.no_grad():
        pair.ctx.normal_(0, 0.5)  # far from the init, so the contexts matter
    weight = torch.randn(2, m.embed_dim)
    lengths = transformer_lengths(m)
    out, grads = {}, {}
    for truncate in (True, False):
        m.truncate_text = truncate
        pair.ctx.grad = None
        out[truncate] = pair(m)
        (out[truncate] * weight).sum().backward()
        grads[truncate] = pair.ctx.grad.clone()
    eot = int(pair.tokens.argmax(dim=-1).max())
    assert lengths == [eot + 1, m.context_length]  # really shorter (22 of 77 with 16 contexts)
    if ctx_init is None:
        assert eot + 1 == 22
    assert torch.allclose(out[True], out[False], atol=1e-6, rtol=0)
    assert grads[True].abs().max() > 0
    assert torch.allclose(grads[True], grads[False], atol=1e-6 * grads[False].abs().max(), rtol=1e-5)


@pytest.mark.parametrize("name", TINY_CLIPS)
def test_truncated_text_matches_open_clip_for_prompts_of_different_lengths(name):
    m = FrozenCLIP(name, None)
    texts = ["a", "a photo of a cat sitting on a very long wooden bench in the sun", "blurry"]
    tokens = m.tokenize(texts)
    lengths = transformer_lengths(m)
    ours = m.encode_text(texts)
    assert lengths == [int(tokens.argmax(dim=-1).max()) + 1]
    assert torch.allclose(ours, m.clip.encode_text(tokens, normalize=True), atol=1e-6)


# -- frozen weights in the compute dtype ----------------------------------------------------------------
def test_resolve_clip_dtype():
    assert resolve_clip_dtype("auto", torch.bfloat16, "cuda") is torch.bfloat16
    assert resolve_clip_dtype("auto", torch.float16, "cuda") is torch.float16
    assert resolve_clip_dtype("auto", torch.bfloat16, "cpu") is torch.float32  # CPU path unchanged
    assert resolve_clip_dtype("auto", None, "cuda") is torch.float32
    assert resolve_clip_dtype(None, None, "cpu") is torch.float32
    assert resolve_clip_dtype("bf16", None, "cpu") is torch.bfloat16
    assert resolve_clip_dtype("fp16", torch.bfloat16, "cuda") is torch.float16
    with pytest.raises(ValueError, match="clip_dtype"):
        resolve_clip_dtype("float16", None, "cpu")
    with pytest.raises(ValueError, match="clip_dtype"):
        make_disc(None, clip_dtype="half")


def test_bf16_frozen_weights_fp32_heads_close_outputs(tiny_clip_files):
    full = make_disc(tiny_clip_files["tiny-rn"]).train()
    half = make_disc(tiny_clip_files["tiny-rn"], clip_dtype="bf16").train()
    assert full.backbone.weight_dtype is torch.float32 and half.backbone.weight_dtype is torch.bfloat16
    assert all(t.dtype is torch.bfloat16 for t in half.backbone.clip.parameters())
    assert all(p.dtype is torch.float32 for p in half.parameters())  # heads and contexts stay float32
    assert half.prompt_pair.token_prefix.dtype is torch.float32
    info_full, info_half = full.backbone.frozen_weight_info(), half.backbone.frozen_weight_info()
    assert (info_full["dtype"], info_half["dtype"]) == ("float32", "bfloat16")
    assert info_half["numel"] == info_full["numel"]
    assert 0.49 < info_half["bytes"] / info_full["bytes"] < 0.51  # int64 BN counters stay as they are
    half.to("cpu")  # moving the owner keeps the weights' dtype
    assert half.backbone.weight_dtype is torch.bfloat16
    assert half.backbone.logit_scale == full.backbone.logit_scale  # read before the cast, not rounded

    x = photo_tensor("coffee", 64, batch=2)
    fa, fb = full.extract(x), half.extract(x.clone().requires_grad_(True))
    assert fb.embedding.dtype is torch.float32 and all(m.dtype is torch.float32 for m in fb.middle)
    assert F.cosine_similarity(fa.embedding, fb.embedding).min() > 0.999
    for a, b in zip(fa.middle, fb.middle):
        assert (a - b).norm() / a.norm() < 2e-2
    ta, tb = full.text_features(), half.text_features()
    assert tb.dtype is torch.float32 and F.cosine_similarity(ta, tb).min() > 0.999
    with torch.no_grad():
        za, zb = full(x), half(x)  # (B, 6, h, w): 3 Feat-D maps, then the TG-D logit broadcast
    assert (za[:, :3] - zb[:, :3]).norm() / za[:, :3].norm() < 5e-2  # bf16: 8 significant bits
    # TG-D logit = tau * (cos+ - cos-): bf16 moves the cosine difference by ~1e-2 here (D = 32)
    assert (za[:, 3:] - zb[:, 3:]).abs().max() < 0.03 * full.backbone.logit_scale

    img = x.clone().requires_grad_(True)
    half(img).sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0 and img.grad.dtype is torch.float32
    assert all(p.grad is not None and p.grad.dtype is torch.float32 for p in half.parameters())
    assert all(t.grad is None for t in half.backbone.clip.parameters())


def test_sfd_model_passes_amp_dtype(tiny_clip_files, tmp_path):
    # CPU: 'auto' keeps float32 even with amp bf16 (bf16 convolutions are slow on CPU)
    opt = sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path / "a"), amp="bf16")
    model = build_model(opt)
    disc = model.get_bare_model(model.net_d)
    assert disc.clip_dtype == "auto" and disc.backbone.weight_dtype is torch.float32
    assert disc.apply_clip_dtype(model.amp_dtype, "cuda") is torch.bfloat16  # what a CUDA run gets
    assert disc.backbone.weight_dtype is torch.bfloat16
    # an explicit choice holds on CPU too, and the model trains with it
    opt = sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path / "b"))
    opt["network_d"]["clip_dtype"] = "bf16"
    model = build_model(opt)
    disc = model.get_bare_model(model.net_d)
    assert disc.backbone.weight_dtype is torch.bfloat16
    heads0 = {k: v.detach().clone() for k, v in disc.named_parameters()}
    model.feed_data(lr_hr_batch())
    model.optimize_parameters(1)
    assert all(math.isfinite(v) for v in model.log_dict.values())
    assert all(not torch.equal(heads0[k], v) for k, v in disc.named_parameters())
    assert all(p.dtype is torch.float32 for p in disc.parameters())


def test_text_tower_dropped_without_tg_d(tiny_clip_files):
    with_text = make_disc(tiny_clip_files["tiny-rn"])
    no_text = make_disc(tiny_clip_files["tiny-rn"], use_text=False)
    b = no_text.backbone
    assert not hasattr(b.clip, "transformer") and not hasattr(b.clip, "token_embedding")
    assert b.frozen_weight_info()["text_tower"] is False
    assert b.frozen_weight_info()["bytes"] < 0.5 * with_text.backbone.frozen_weight_info()["bytes"]
    assert b.embed_dim == with_text.backbone.embed_dim and b.logit_scale == with_text.backbone.logit_scale
    x = photo_tensor(batch=2)
    assert no_text(x).shape == (2, 3, 16, 16)  # Feat-D still works
    for call in (lambda: b.tokenize(["x"]), lambda: b.encode_text(["x"]), lambda: LearnablePromptPair(b)):
        with pytest.raises(RuntimeError, match="text tower was dropped.*use_text: false"):
            call()
    # the image side is the same network
    a = with_text.backbone(x)
    c = b(x)
    assert torch.equal(a.embedding, c.embedding) and all(torch.equal(u, v) for u, v in zip(a.middle, c.middle))


# -- CLIP input size -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TINY_CLIPS)
def test_input_size_resizes_before_the_one_forward(name, tiny_clip_files):
    plain = FrozenCLIP(name, tiny_clip_files[name])
    sized = FrozenCLIP(name, tiny_clip_files[name], input_size=64)
    x = photo_tensor("astronaut", 128, batch=2).requires_grad_(True)
    out = sized(x)
    ref = plain(F.interpolate(x.detach(), size=(64, 64), mode="bicubic", antialias=True))
    for fmap, r, s in zip(out.middle, ref.middle, sized.feat_strides):
        assert fmap.shape[-2:] == (64 // s, 64 // s)
        assert torch.allclose(fmap, r, atol=1e-5)
    assert torch.allclose(out.embedding, ref.embedding, atol=1e-5)
    (sum(m.sum() for m in out.middle) + out.embedding.sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable resize
    assert sized.num_image_forwards == 1
    assert sized.input_shape(48, 80) == (64, 107) and sized.input_shape(100, 50) == (128, 64)
    assert plain.input_shape(48, 80) == (48, 80)
    small = sized(photo_tensor("astronaut", 40, batch=1))  # smaller than the stride: resized up first
    assert small.middle[0].shape[-2:] == (64 // sized.feat_strides[0],) * 2


@pytest.mark.parametrize("bad", [0, 16, "224", True, 64.0])
def test_input_size_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="clip_input_size"):
        make_disc(None, clip_input_size=bad)


def test_input_size_recorded_in_checkpoint_and_used_by_sfd_iqa(tiny_clip_files, tmp_path):
    d = make_disc(tiny_clip_files["tiny-rn"], clip_input_size=64)
    assert d.config["clip_input_size"] == 64
    path = tmp_path / "net_d.pth"
    torch.save({"params": d.state_dict()}, path)
    config, state = load_sfd_checkpoint(str(path))
    assert config["clip_input_size"] == 64
    rebuilt = build_discriminator(config, state)
    assert rebuilt.backbone.input_size == 64

    # SFD-IQA scores a crop as the resized crop would be scored by the same heads at the size given
    plain = make_disc(tiny_clip_files["tiny-rn"])  # same seed: same heads and contexts, size as given
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), rebuilt.parameters()))
    crops = photo_tensor("chelsea", 40, batch=2)
    q_sized = SFDIQA(rebuilt, tile=40, device="cpu").score_crops(crops)
    q_plain = SFDIQA(plain.eval(), tile=64, device="cpu").score_crops(
        F.interpolate(crops, size=(64, 64), mode="bicubic", antialias=True)
    )
    for a, b in zip(q_sized, q_plain):
        assert torch.allclose(a, b, atol=1e-5)


def test_checkpoint_without_input_size_still_loads(tiny_clip_files, tmp_path):
    d = make_disc(tiny_clip_files["tiny-rn"])
    sd = d.state_dict()
    meta = decode_config(sd["_extra_state"])
    del meta["clip_input_size"]  # as written before the option existed
    sd["_extra_state"] = torch.tensor(list(json.dumps(meta).encode("utf-8")), dtype=torch.uint8)
    path = tmp_path / "old_net_d.pth"
    torch.save({"params": sd}, path)
    config, state = load_sfd_checkpoint(str(path))
    assert "clip_input_size" not in config
    assert build_discriminator(config, state).backbone.input_size is None
    d2 = make_disc(tiny_clip_files["tiny-rn"])
    d2.load_state_dict(torch.load(path, weights_only=True)["params"])
    assert d2.config["clip_input_size"] is None
    # a network with another input size loads it too (heads are size-independent), with a warning
    make_disc(tiny_clip_files["tiny-rn"], clip_input_size=64).load_state_dict(sd)
