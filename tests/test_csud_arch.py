"""CSUD networks: odd sizes, the constant blur buffer, NAFNet's public key layout (strict loading)."""

from __future__ import annotations

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from conftest import photo_tensor

from sfd_arch.csud_discriminator_arch import CSUDPatchDiscriminator, gaussian_kernel, patch_logit_size
from sfd_arch.csud_generator_arch import CSUDRainGenerator
from sfd_arch.nafnet_arch import CSUDNAFNet, nafnet_options_from_state_dict
from sfd_tools.csud.derain import load_derainer


def test_registered_under_prefixed_names():
    for name in ("CSUDNAFNet", "CSUDRainGenerator", "CSUDPatchDiscriminator"):
        assert ARCH_REGISTRY.get(name) is not None


@pytest.mark.parametrize("size", [(37, 41), (64, 33), (17, 16)])
def test_nafnet_and_generator_keep_odd_sizes(size):
    torch.manual_seed(0)
    x = torch.rand(2, 3, *size)
    net = CSUDNAFNet(width=8, middle_blk_num=1, enc_blk_nums=[1, 1, 1], dec_blk_nums=[1, 1, 1])
    assert net(x).shape == x.shape
    gen = CSUDRainGenerator(num_feat=8, num_block=1)
    out = gen(x, torch.rand_like(x))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_generator_uses_the_rain_reference_and_rejects_mismatched_sizes():
    torch.manual_seed(0)
    gen = CSUDRainGenerator(num_feat=8, num_block=1).eval()
    content = photo_tensor("astronaut", 40)
    assert not torch.allclose(gen(content, photo_tensor("coffee", 40)), gen(content, content))
    with pytest.raises(ValueError, match="same shape"):
        gen(content, photo_tensor("coffee", 48))


def test_nafnet_blocks_start_as_identity_and_pad_with_zeros_like_the_public_code():
    net = CSUDNAFNet(width=8, middle_blk_num=1, enc_blk_nums=[1], dec_blk_nums=[1])
    x = torch.rand(1, 8, 10, 10)
    assert torch.equal(net.encoders[0][0](x), x)  # beta = gamma = 0 at init
    x = torch.rand(1, 3, 15, 15)
    torch.testing.assert_close(net(x), net(torch.nn.functional.pad(x, (0, 1, 0, 1)))[..., :15, :15])
    reflect = torch.nn.functional.pad(x, (0, 1, 0, 1), mode="reflect")
    assert not torch.allclose(net(x), net(reflect)[..., :15, :15])


def test_discriminator_blur_kernel_is_a_constant_unsaved_buffer():
    d = CSUDPatchDiscriminator(ndf=8)
    names = dict(d.named_parameters())
    assert "blur_kernel" not in names and "blur_kernel" not in d.state_dict()
    assert d.blur_kernel.shape == (3, 1, 15, 15)
    torch.testing.assert_close(d.blur_kernel.sum(dim=(1, 2, 3)), torch.ones(3))
    k = gaussian_kernel(15, 9.0)
    assert k[7, 7] == k.max() and torch.allclose(k, k.T)
    flat = torch.full((1, 3, 40, 40), 0.3)
    torch.testing.assert_close(d.blur(flat), flat)  # replicate padding: no border darkening
    x = photo_tensor("astronaut", 48, batch=2).requires_grad_()
    d(x).mean().backward()
    assert x.grad is not None and d.blur_kernel.grad is None
    d64 = d.to(torch.float64)
    assert d64.blur_kernel.dtype == torch.float64


@pytest.mark.parametrize("size", [(37, 41), (64, 64), (33, 50)])
def test_discriminator_patch_map_for_odd_sizes(size):
    d = CSUDPatchDiscriminator(ndf=8)
    out = d(torch.rand(2, 3, *size))
    assert out.shape == (2, 1, patch_logit_size(size[0]), patch_logit_size(size[1]))
    with pytest.raises(ValueError, match="smaller than 32"):
        d(torch.rand(1, 3, 20, 40))


def public_nafnet_state_dict(width, enc, middle, dec, dw=2, ffn=2) -> dict:
    """Random tensors under the public NAFNet names (megvii-research/NAFNet layout), written here
    without our module, with the shapes that code gives them."""
    g = torch.Generator().manual_seed(0)

    def t(*shape):
        return torch.randn(*shape, generator=g) * 0.1

    def block(prefix, c):
        d, f = c * dw, c * ffn
        return {
            f"{prefix}.conv1.weight": t(d, c, 1, 1),
            f"{prefix}.conv1.bias": t(d),
            f"{prefix}.conv2.weight": t(d, 1, 3, 3),
            f"{prefix}.conv2.bias": t(d),
            f"{prefix}.conv3.weight": t(c, d // 2, 1, 1),
            f"{prefix}.conv3.bias": t(c),
            f"{prefix}.sca.1.weight": t(d // 2, d // 2, 1, 1),
            f"{prefix}.sca.1.bias": t(d // 2),
            f"{prefix}.conv4.weight": t(f, c, 1, 1),
            f"{prefix}.conv4.bias": t(f),
            f"{prefix}.conv5.weight": t(c, f // 2, 1, 1),
            f"{prefix}.conv5.bias": t(c),
            f"{prefix}.norm1.weight": 1 + t(c),
            f"{prefix}.norm1.bias": t(c),
            f"{prefix}.norm2.weight": 1 + t(c),
            f"{prefix}.norm2.bias": t(c),
            f"{prefix}.beta": t(1, c, 1, 1),
            f"{prefix}.gamma": t(1, c, 1, 1),
        }

    sd = {"intro.weight": t(width, 3, 3, 3), "intro.bias": t(width)}
    sd.update({"ending.weight": t(3, width, 3, 3), "ending.bias": t(3)})
    c = width
    for i, n in enumerate(enc):
        for j in range(n):
            sd.update(block(f"encoders.{i}.{j}", c))
        sd.update({f"downs.{i}.weight": t(2 * c, c, 2, 2), f"downs.{i}.bias": t(2 * c)})
        c *= 2
    for j in range(middle):
        sd.update(block(f"middle_blks.{j}", c))
    for i, n in enumerate(dec):
        sd[f"ups.{i}.0.weight"] = t(2 * c, c, 1, 1)
        c //= 2
        for j in range(n):
            sd.update(block(f"decoders.{i}.{j}", c))
    return sd


def test_public_nafnet_checkpoint_loads_strictly(tmp_path):
    sd = public_nafnet_state_dict(width=8, enc=[1, 2, 0], middle=3, dec=[2, 1, 1])
    net = CSUDNAFNet(width=8, middle_blk_num=3, enc_blk_nums=[1, 2, 0], dec_blk_nums=[2, 1, 1])
    assert sorted(net.state_dict()) == sorted(sd)
    net.load_state_dict(sd, strict=True)
    opts = nafnet_options_from_state_dict(sd)
    assert opts == {
        "img_channel": 3,
        "width": 8,
        "middle_blk_num": 3,
        "enc_blk_nums": [1, 2, 0],
        "dec_blk_nums": [2, 1, 1],
        "dw_expand": 2,
        "ffn_expand": 2,
    }
    # As BasicSR/NAFNet save it ({'params': ...}, DDP prefix), loaded with the shape read from the keys.
    path = tmp_path / "NAFNet-official.pth"
    torch.save({"params": {f"module.{k}": v for k, v in sd.items()}}, path)
    loaded = load_derainer(str(path))
    x = torch.rand(1, 3, 35, 29)
    torch.testing.assert_close(loaded(x), net.eval()(x))


def test_authors_nafnet_width32_layout():
    sd = public_nafnet_state_dict(width=32, enc=[2, 2, 4, 8], middle=12, dec=[2, 2, 2, 2])
    net = CSUDNAFNet()  # defaults = the CSUD derainer
    net.load_state_dict(sd, strict=True)
    assert sum(p.numel() for p in net.parameters()) == sum(v.numel() for v in sd.values())


def test_nafnet_rejects_unequal_levels():
    with pytest.raises(ValueError, match="same length"):
        CSUDNAFNet(enc_blk_nums=[1, 1], dec_blk_nums=[1])
