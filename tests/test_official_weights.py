"""Official SFD RRDBNet checkpoints (old ESRGAN names; x4 and the one-upconv x2) and the generic loader."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from basicsr.archs.rrdbnet_arch import ResidualDenseBlock, RRDBNet
from basicsr.models.base_model import BaseModel
from torch import nn

from sfd_arch.rrdbnet_official_arch import SFDRRDBNet, SFDRRDBNetOfficialX2
from sfd_utils.checkpoint import (
    CheckpointError,
    basicsr_load_network,
    detect_rrdb_layout,
    infer_rrdb_options,
    load_generator_weights,
)

TINY = {"num_feat": 8, "num_block": 2, "num_grow_ch": 4}


class _OldRRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = (ResidualDenseBlock(nf, gc) for _ in range(3))

    def forward(self, x):
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class OfficialRRDBNet(nn.Module):
    """The official SFD release's RRDBNet (rrdbnet_arch.py), written out as the reference."""

    def __init__(self, nf=8, nb=2, gc=4, sf=4):
        super().__init__()
        self.sf = sf
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*[_OldRRDB(nf, gc) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        if sf == 4:
            self.upconv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x):
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        fea = self.lrelu(self.upconv1(F.interpolate(fea, scale_factor=2, mode="nearest")))
        if self.sf == 4:
            fea = self.lrelu(self.upconv2(F.interpolate(fea, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.HRconv(fea)))


def official_file(tmp_path, sf: int, wrap=None) -> tuple[OfficialRRDBNet, str]:
    torch.manual_seed(sf)
    ref = OfficialRRDBNet(sf=sf).eval()
    for p in ref.parameters():  # non-trivial weights everywhere (biases too)
        p.data.normal_(0, 0.1)
    sd = ref.state_dict()
    path = str(tmp_path / f"official_x{sf}.pth")
    torch.save(wrap(sd) if wrap else sd, path)
    return ref, path


def lr():
    from conftest import photo_tensor

    return photo_tensor("astronaut", 12)


def test_layout_detection_and_inferred_options(tmp_path):
    ref4, _ = official_file(tmp_path, 4)
    ref2, _ = official_file(tmp_path, 2)
    assert detect_rrdb_layout(ref4.state_dict()) == "esrgan_old_x4"
    assert detect_rrdb_layout(ref2.state_dict()) == "esrgan_old_x2"
    assert detect_rrdb_layout(RRDBNet(3, 3, **TINY).state_dict()) == "basicsr_rrdbnet"
    assert detect_rrdb_layout({"weight": torch.zeros(1)}) is None
    opts = {"num_in_ch": 3, "num_out_ch": 3, **TINY}
    assert infer_rrdb_options(ref4.state_dict()) == {"type": "RRDBNet", **opts, "scale": 4}
    assert infer_rrdb_options(ref2.state_dict()) == {"type": "SFDRRDBNetOfficialX2", **opts, "scale": 2}
    assert infer_rrdb_options(RRDBNet(3, 3, scale=2, **TINY).state_dict()) == {"type": "RRDBNet", **opts, "scale": 2}


@pytest.mark.parametrize(
    "wrap", [None, lambda sd: {"params": sd}, lambda sd: {f"module.{k}": v for k, v in sd.items()}]
)
def test_official_x4_maps_into_basicsr_rrdbnet(tmp_path, wrap):
    ref, path = official_file(tmp_path, 4, wrap)
    net = RRDBNet(3, 3, scale=4, **TINY)
    info = load_generator_weights(net, path)
    assert info["layout"] == "esrgan_old_x4" and not info["missing"] and not info["unexpected"]
    x = lr()
    with torch.no_grad():
        assert torch.equal(net.eval()(x), ref(x))


def test_sfdrrdbnet_loads_official_x4_through_basicsr_load_network(tmp_path):
    """Recipe path: stock BaseModel.load_network with `param_key_g: ~` and network_g type SFDRRDBNet."""
    ref, path = official_file(tmp_path, 4)
    net = SFDRRDBNet(scale=4, **TINY)
    model = BaseModel.__new__(BaseModel)  # only load_network's helpers are used
    model.load_network(net, path, strict=True, param_key=None)
    x = lr()
    with torch.no_grad():
        assert torch.equal(net.eval()(x), ref(x))
    assert set(net.state_dict()) == set(RRDBNet(3, 3, **TINY).state_dict())  # saves in BasicSR names
    # our own training output ({'params', 'params_ema'}) through the same recipe setting
    torch.save({"params": net.state_dict(), "params_ema": net.state_dict()}, tmp_path / "ours.pth")
    other = SFDRRDBNet(scale=4, **TINY)
    model.load_network(other, str(tmp_path / "ours.pth"), strict=True, param_key=None)
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), net.state_dict().values()))


def test_basicsr_srmodel_recipe_starts_from_official_x4(tmp_path):
    """A BasicSR model built from options only (what a recipe does) starts from the official file."""
    from basicsr.models.sr_model import SRModel

    ref, path = official_file(tmp_path, 4)
    opt = {
        "num_gpu": 0,
        "is_train": False,
        "dist": False,
        "network_g": {"type": "SFDRRDBNet", "num_in_ch": 3, "num_out_ch": 3, "scale": 4, **TINY},
        "path": {"pretrain_network_g": path, "param_key_g": None, "strict_load_g": True},
    }
    model = SRModel(opt)
    x = lr()
    with torch.no_grad():
        assert torch.allclose(model.net_g(x), ref(x), atol=1e-6)


def test_drop_in_load_network_accepts_raw_file_with_params_key(tmp_path):
    """With `basicsr_load_network`, `param_key_g: params` (the recipes' value) works for raw files too."""
    ref, path = official_file(tmp_path, 4)
    net = RRDBNet(3, 3, scale=4, **TINY)
    model = BaseModel.__new__(BaseModel)
    with pytest.raises(KeyError):  # what BasicSR itself does
        model.load_network(net, path, True, "params")
    basicsr_load_network(model, net, path, True, "params")
    x = lr()
    with torch.no_grad():
        assert torch.equal(net.eval()(x), ref(x))


def test_official_x2_layout(tmp_path):
    ref, path = official_file(tmp_path, 2)
    net = SFDRRDBNetOfficialX2(**TINY)
    model = BaseModel.__new__(BaseModel)
    model.load_network(net, path, strict=True, param_key=None)  # official names: BasicSR's loader as is
    x = lr()[..., :11, :9]  # odd size: no pixel-unshuffle constraint
    with torch.no_grad():
        out = net.eval()(x)
        assert out.shape[-2:] == (22, 18)
        assert torch.equal(out, ref(x))
    with pytest.raises(CheckpointError, match="SFDRRDBNetOfficialX2"):
        load_generator_weights(RRDBNet(3, 3, scale=2, **TINY), path)
    with pytest.raises(CheckpointError, match="SFDRRDBNetOfficialX2"):
        SFDRRDBNet(scale=2, **TINY).load_state_dict(torch.load(path, weights_only=True))
    with pytest.raises(CheckpointError, match="upconv2"):
        SFDRRDBNetOfficialX2(**TINY).load_state_dict(official_file(tmp_path, 4)[0].state_dict())
    with pytest.raises(ValueError, match="scale=4"):
        SFDRRDBNetOfficialX2(scale=4)


def test_loader_formats_and_errors(tmp_path):
    torch.manual_seed(0)
    src = RRDBNet(3, 3, **TINY)
    sd = src.state_dict()
    zero = {k: torch.zeros_like(v) for k, v in sd.items()}
    # Real-ESRGAN style params_ema; ours with both keys prefers params_ema unless asked
    torch.save({"params_ema": sd}, tmp_path / "esrgan.pth")
    torch.save({"params": zero, "params_ema": sd}, tmp_path / "ours.pth")
    net = RRDBNet(3, 3, **TINY)
    assert load_generator_weights(net, str(tmp_path / "esrgan.pth"))["param_key"] == "params_ema"
    assert load_generator_weights(net, str(tmp_path / "ours.pth"))["param_key"] == "params_ema"
    assert torch.equal(net.conv_last.weight, src.conv_last.weight)
    load_generator_weights(net, str(tmp_path / "ours.pth"), param_key="params")
    assert not net.conv_last.weight.any()

    missing = {k: v for k, v in sd.items() if not k.startswith("conv_hr")}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \(2\): conv_hr.bias, conv_hr.weight"):
        load_generator_weights(net, str(tmp_path / "missing.pth"))
    info = load_generator_weights(net, str(tmp_path / "missing.pth"), strict=False)
    assert info["missing"] == ["conv_hr.bias", "conv_hr.weight"]

    torch.save({**sd, "extra.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): extra.weight"):
        load_generator_weights(net, str(tmp_path / "extra.pth"))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_generator_weights(RRDBNet(3, 3, num_feat=16, num_block=2, num_grow_ch=4), str(tmp_path / "extra.pth"))
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_generator_weights(net, str(tmp_path / "nope.pth"))
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_generator_weights(net, str(tmp_path / "corrupt.pth"))
    torch.save({"params": sd, "opt": nn.Identity()}, tmp_path / "pickled.pth")  # code objects are refused
    with pytest.raises(CheckpointError, match="weights-only"):
        load_generator_weights(net, str(tmp_path / "pickled.pth"))
