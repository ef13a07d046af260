"""FrozenCLIP: shapes, loading, freezing, device/dtype moves, gradients and bad input."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import TINY_CLIPS, photo_tensor
from torch import nn

from sfd_arch.clip_backbone import CLIPWeightsNotFound, FrozenCLIP, resolve_clip_weights


class Owner(nn.Module):
    """A module that owns a backbone and one trainable layer, like a discriminator does."""

    def __init__(self, name="tiny-rn", pretrained=None):
        super().__init__()
        self.backbone = FrozenCLIP(name, pretrained)
        self.head = nn.Linear(self.backbone.embed_dim, 1)

    def forward(self, x):
        return self.head(self.backbone(x).embedding)


@pytest.mark.parametrize("name", TINY_CLIPS)
@pytest.mark.parametrize("size", [(64, 64), (70, 97), (33, 160)])
def test_shapes_any_size(name, size):
    m = FrozenCLIP(name, None)
    x = photo_tensor("astronaut", size=None)[..., : size[0], : size[1]].repeat(2, 1, 1, 1)
    out = m(x)
    assert out.embedding.shape == (2, m.embed_dim)
    assert torch.allclose(out.embedding.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert len(out.middle) == len(m.feat_layers) == len(m.feat_channels)
    for fmap, c, s in zip(out.middle, m.feat_channels, m.feat_strides):
        assert fmap.shape[:2] == (2, c)
        assert fmap.shape[-2:] == (-(-size[0] // m.stride) * m.stride // s, -(-size[1] // m.stride) * m.stride // s)


@pytest.mark.parametrize("name", TINY_CLIPS)
def test_matches_open_clip_at_native_size(name):
    m = FrozenCLIP(name, None)
    x = photo_tensor("coffee", 64, batch=2)
    ref = m.clip.encode_image((x - m.mean) / m.std, normalize=True)
    assert torch.allclose(m(x).embedding, ref, atol=1e-5)
    tokens = m.tokenize(["a photo of a cat"])
    assert torch.allclose(m.encode_text(["a photo of a cat"]), m.clip.encode_text(tokens, normalize=True), atol=1e-6)


def test_embedding_only_when_asked():
    m = FrozenCLIP("tiny-rn", None, feat_layers=[2])
    out = m(photo_tensor(), embedding=False)
    assert out.embedding is None and len(out.middle) == 1


@pytest.mark.parametrize("name", TINY_CLIPS)
def test_loads_weights_from_file(name, tiny_clip_files):
    m = FrozenCLIP(name, tiny_clip_files[name])
    saved = torch.load(tiny_clip_files[name], weights_only=True)
    assert not m.random_weights
    for key, value in m.clip.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_missing_weights_fail_fast_with_instructions(tmp_path):
    start = time.monotonic()
    with pytest.raises(CLIPWeightsNotFound) as err:
        resolve_clip_weights("RN50", "openai", cache_dir=str(tmp_path))
    assert time.monotonic() - start < 20  # never a hub retry loop (~45 s)
    assert "clip_pretrained: /path/to/file" in str(err.value) and "RN50" in str(err.value)
    with pytest.raises(CLIPWeightsNotFound, match="does not exist"):
        FrozenCLIP("tiny-rn", str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="neither a file nor an open_clip tag"):
        FrozenCLIP("tiny-rn", "not-a-tag")
    with pytest.raises(ValueError, match="unknown open_clip model"):
        FrozenCLIP("RN5O", None)


def test_frozen_and_hidden_from_owner():
    owner = Owner()
    names = [n for n, _ in owner.named_parameters()]
    assert names == ["head.weight", "head.bias"]
    assert all(not k.startswith("backbone") for k in owner.state_dict())
    owner.requires_grad_(True)
    for p in owner.parameters():  # what BasicSR's GAN models do to net_d
        p.requires_grad = True
    assert not any(p.requires_grad for p in owner.backbone.clip.parameters())


def test_stays_in_eval_mode_and_statistics_do_not_drift():
    owner = Owner()
    owner.train()
    assert owner.training and owner.backbone.training
    assert not any(mod.training for mod in owner.backbone.clip.modules())
    bn = [b for b in owner.backbone.clip.modules() if isinstance(b, nn.BatchNorm2d)][0]
    stats = bn.running_mean.clone()
    owner(photo_tensor("rocket", 64, batch=2) * 0.5)
    assert torch.equal(bn.running_mean, stats)


def test_gradient_flows_to_input_not_to_clip():
    owner = Owner()
    x = photo_tensor("chelsea", 64, batch=2).requires_grad_(True)
    owner(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert owner.head.weight.grad is not None
    assert all(p.grad is None for p in owner.backbone.clip.parameters())


def test_moves_with_owner():
    owner = Owner().double()
    assert all(p.dtype == torch.float64 for p in owner.backbone.clip.parameters())
    assert owner.backbone.mean.dtype == torch.float64
    out = owner(photo_tensor(batch=1).double())
    assert out.dtype == torch.float64
    owner.float()
    assert next(owner.backbone.clip.parameters()).dtype == torch.float32


def test_bad_input_is_rejected_clearly():
    m = FrozenCLIP("tiny-rn", None)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(torch.rand(1, 1, 64, 64))
    with pytest.raises(TypeError, match="float"):
        m(torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty batch"):
        m(torch.rand(0, 3, 64, 64))
    with pytest.raises(ValueError, match="smaller than"):
        m(torch.rand(1, 3, 1, 1))
    with pytest.raises(ValueError, match="feat_layers"):
        FrozenCLIP("tiny-rn", None, feat_layers=[5])


@pytest.mark.parametrize("name,channels,embed", [("RN50", [256, 512, 1024], 1024), ("ViT-B-16", [768, 768], 512)])
def test_full_size_models_random_weights(name, channels, embed):
    m = FrozenCLIP(name, None)
    assert m.feat_channels == channels and m.embed_dim == embed
    with torch.no_grad():
        out = m(torch.rand(1, 3, 96, 128))
    assert [f.shape[1] for f in out.middle] == channels
    assert out.embedding.shape == (1, embed)
    assert m.encode_text(["high quality photo."]).shape == (1, embed)
