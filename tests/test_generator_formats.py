"""Generators in every format the project and traiNNer-redux write load in ``inference_sr.py`` and
``derain.py``: ``scripts/export.py``'s ``.safetensors`` (network from its metadata) gives the same
images as the ``.pth`` it came from, and traiNNer-redux's ``net_g`` files (flat state dicts of spandrel
architectures, written as its ``save_network`` writes them) load with no recipe. Tiny networks."""

from __future__ import annotations

import json
from collections import OrderedDict

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import photo
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN
from test_sr_inference import load_script

from sfd_tools.csud.derain import derain_tensor, load_derainer
from sfd_tools.sr.export import export_checkpoint
from sfd_tools.sr.inference import Upscaler, build_generator, load_upscaler
from sfd_utils.checkpoint import CheckpointError, read_checkpoint

TINY_RRDB = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}
TINY_NAFNET = {"type": "CSUDNAFNet", "width": 8, "middle_blk_num": 1, "enc_blk_nums": [1, 1], "dec_blk_nums": [1, 1]}


def perturb(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter moved off its initial value (NAFNet starts as the identity)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def lr_folder(tmp_path, size=(20, 28)) -> str:
    folder = tmp_path / "lr"
    folder.mkdir()
    cv2.imwrite(str(folder / "cat.png"), np.ascontiguousarray(photo("chelsea")[: size[0], : size[1], ::-1]))
    return str(folder)


def infer(tmp_path, out: str, *args: str) -> np.ndarray:
    """``scripts/inference_sr.py`` on the LR folder; the written image."""
    code = load_script("inference_sr").main(["-i", str(tmp_path / "lr"), "-o", str(tmp_path / out), "--quiet", *args])
    assert code == 0
    return cv2.imread(str(tmp_path / out / "cat_out.png"), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("scale", [4, 2])
def test_exported_safetensors_infers_like_the_pth_it_came_from(tmp_path, scale):
    net_opt = {**TINY_RRDB, "scale": scale}
    net = perturb(build_generator(net_opt))
    pth = tmp_path / "net_g_100.pth"
    torch.save({"params": net.state_dict(), "params_ema": net.state_dict()}, pth)
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(yaml.safe_dump({"network_g": net_opt}))
    report = export_checkpoint(str(pth), str(tmp_path / "export"), opt_file=str(recipe), formats=("safetensors",))
    exported = report["files"][0]
    lr_folder(tmp_path)
    from_pth = infer(tmp_path, "pth", "--model", str(pth), "--opt", str(recipe))
    from_st = infer(tmp_path, "st", "--model", exported)  # no recipe: the metadata names the network
    assert from_st.shape == (20 * scale, 28 * scale, 3)
    assert np.array_equal(from_pth, from_st)
    up = load_upscaler(exported, device="cpu")
    assert type(up.net).__name__ == "RRDBNet" and up.scale == scale
    assert up.multiple == (2 if scale == 2 else 1)  # pixel-unshuffle needs even sides at x2


def trainner_save(net: torch.nn.Module, path: str) -> None:
    """What traiNNer-redux's ``BaseModel.save_network`` writes with ``save_checkpoint_format:
    safetensors``: the flat state dict (``module.`` stripped, contiguous CPU tensors) and, for a
    network with ``hyperparameters`` (spandrel's architectures), ``{"metadata": json}``."""
    state = OrderedDict((k.removeprefix("module."), v.cpu().contiguous()) for k, v in net.state_dict().items())
    meta = {"metadata": json.dumps(net.hyperparameters)} if hasattr(net, "hyperparameters") else None
    save_file(state, path, metadata=meta)


@pytest.mark.parametrize(
    ("make", "scale"),
    [
        (lambda: ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4), 4),  # traiNNer's `esrgan`
        (lambda: Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2), 2),  # its `compact`
    ],
    ids=["esrgan_x4", "compact_x2"],
)
def test_trainner_net_g_files_load_without_a_recipe(tmp_path, make, scale):
    net = perturb(make())
    st = str(tmp_path / "net_g_ema_1000.safetensors")
    trainner_save(net, st)
    pth = tmp_path / "net_g_1000.pth"  # traiNNer's `save_checkpoint_format: pth` with metadata
    torch.save({"metadata": net.hyperparameters, "params": read_checkpoint(st)}, pth)
    lr = lr_folder(tmp_path)
    expect = Upscaler(net, scale=scale, device="cpu").enhance(cv2.imread(f"{lr}/cat.png"))[0]
    for name, path in (("st", st), ("pth", str(pth))):
        got = infer(tmp_path, name, "--model", path)
        assert np.array_equal(got, expect), name
    up = load_upscaler(st, device="cpu", tile=12, tile_pad=4)
    assert up.scale == scale and up.in_channels == 3 and not up.net.training
    with pytest.raises(ValueError, match="disagrees"):
        load_upscaler(st, scale=3)
    with pytest.raises(ValueError, match="--arch-opt needs --arch"):
        load_upscaler(st, arch_opt={"num_feat": 8})


def test_unknown_and_damaged_files_are_one_line_errors(tmp_path, capsys):
    lr_folder(tmp_path)
    cli = load_script("inference_sr")
    odd = tmp_path / "odd.safetensors"
    save_file({"weight_of_nothing_known": torch.zeros(3, 3)}, str(odd))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(odd.read_bytes()[:40])
    for path, why in ((odd, "cannot infer the architecture"), (broken, "unreadable safetensors file")):
        assert cli.main(["-i", str(tmp_path / "lr"), "-o", str(tmp_path / "x"), "--model", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0] and str(path) in err[0], err
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        read_checkpoint(str(broken))


def test_derainer_from_exported_safetensors_equals_the_pth(tmp_path):
    net = perturb(build_generator(TINY_NAFNET))
    pth = tmp_path / "net_g_40.pth"
    torch.save({"params": net.state_dict()}, pth)
    report = export_checkpoint(str(pth), str(tmp_path / "export"), formats=("safetensors",))
    exported = report["files"][0]
    x = torch.from_numpy(photo("rocket")[:32, :48].transpose(2, 0, 1).copy()).float()[None] / 255
    a = derain_tensor(load_derainer(str(pth)), x)
    b = derain_tensor(load_derainer(exported), x)
    assert torch.equal(a, b) and not torch.allclose(a, x, atol=1e-3)
    rainy = tmp_path / "rain"
    rainy.mkdir()
    cv2.imwrite(str(rainy / "r.png"), np.ascontiguousarray(photo("rocket")[:32, :48, ::-1]))
    code = load_script("derain").main(["-i", str(rainy), "-w", exported, "-o", str(tmp_path / "out")])
    assert code == 0 and cv2.imread(str(tmp_path / "out" / "r.png")).shape == (32, 48, 3)
