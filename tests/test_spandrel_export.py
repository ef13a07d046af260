"""Export: every generator our recipes train loads in spandrel (as saved and as exported), the
safetensors file loads back into the identical network, and ONNX on onnxruntime (CPU) matches torch."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import onnxruntime as ort
import pytest
import spandrel
import torch
import yaml
from conftest import ROOT

from sfd_tools.sr.export import (
    ExportError,
    export_checkpoint,
    export_onnx,
    load_safetensors,
    load_training_checkpoint,
    onnx_max_error,
    photo_crop,
    spandrel_limits,
)
from sfd_tools.sr.inference import build_generator
from sfd_utils.checkpoint import basicsr_to_old_esrgan

# Tiny sizes spandrel still detects: its ESRGAN assumes num_grow_ch 32; its NAFNet needs >= 1
# middle, first-encoder and first-decoder block; its SwinIR reads img_range 255 for window 7.
TINY = {
    "train_SFD_RRDB_x4.yml": {"num_feat": 8, "num_block": 1, "num_grow_ch": 32},
    "train_SFD_RRDB_x2.yml": {"num_feat": 8, "num_block": 1, "num_grow_ch": 32},
    "train_SFD_SwinIR_x4.yml": {"img_size": 16, "depths": [2], "embed_dim": 12, "num_heads": [2]},
    "train_CSUD_NAFNet.yml": {"width": 8, "middle_blk_num": 1, "enc_blk_nums": [1, 1], "dec_blk_nums": [1, 1]},
}
OFFICIAL_X2 = {"type": "SFDRRDBNetOfficialX2", "num_feat": 8, "num_block": 1, "num_grow_ch": 32}
# case -> (spandrel architecture id, scale)
EXPECTED = {
    "rrdb_x4": ("ESRGAN", 4),
    "rrdb_x2": ("ESRGAN", 2),
    "official_x4": ("ESRGAN", 4),
    "official_x2": ("ESRGAN", 2),
    "swinir_x4": ("SwinIR", 4),
    "nafnet": ("NAFNet", 1),
}
CASES = list(EXPECTED)


def perturbed(net_opt: dict, seed: int) -> torch.nn.Module:
    """The network with every parameter moved off its initial value (NAFNet starts as the identity)."""
    torch.manual_seed(seed)
    net = build_generator(net_opt)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


class Saved:
    """A tiny generator saved like our training (or the official release) saves it."""

    def __init__(self, folder, case: str) -> None:
        self.case, self.recipe = case, None
        folder = folder / case
        folder.mkdir()
        if case in ("rrdb_x4", "rrdb_x2", "swinir_x4", "nafnet"):
            name = {
                "rrdb_x4": "train_SFD_RRDB_x4.yml",
                "rrdb_x2": "train_SFD_RRDB_x2.yml",
                "swinir_x4": "train_SFD_SwinIR_x4.yml",
                "nafnet": "train_CSUD_NAFNet.yml",
            }[case]
            with open(os.path.join(ROOT, "options", name)) as f:
                net_opt = {**yaml.safe_load(f)["network_g"], **TINY[name]}
            self.recipe = str(folder / f"{case}.yml")  # the real recipe's network_g, tiny sizes
            with open(self.recipe, "w") as f:
                yaml.safe_dump({"network_g": net_opt}, f)
        elif case == "official_x4":
            net_opt = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "scale": 4, **TINY["train_SFD_RRDB_x4.yml"]}
        else:
            net_opt = OFFICIAL_X2
        self.net_opt = net_opt
        self.net = perturbed(net_opt, seed=1)  # params
        self.ema = perturbed(net_opt, seed=2)  # params_ema (BasicSR saves both when ema_decay > 0)
        self.path = str(folder / ("net_g_1000.pth" if self.recipe else f"{case}_official.pth"))
        if case == "official_x4":  # the release: a raw state dict in the old ESRGAN names
            self.ema = self.net
            torch.save(basicsr_to_old_esrgan(self.net.state_dict()), self.path)
        elif case == "official_x2":
            self.ema = self.net
            torch.save(self.net.state_dict(), self.path)
        elif case == "nafnet":  # CSUD trains with ema_decay 0: params only
            self.ema = self.net
            torch.save({"params": self.net.state_dict()}, self.path)
        else:
            torch.save({"params": self.net.state_dict(), "params_ema": self.ema.state_dict()}, self.path)

    def load(self, param_key: str | None = None):
        return load_training_checkpoint(self.path, opt_file=self.recipe, param_key=param_key)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Saved]:
    folder = tmp_path_factory.mktemp("generators")
    return {case: Saved(folder, case) for case in CASES}


def crop(height: int = 24, width: int = 32, batch: int = 1) -> torch.Tensor:
    """Real-photo input: (batch, 3, height, width) crops of the held-out photo, each shifted."""
    big = photo_crop(3, height + 8 * batch, width + 8 * batch)
    return torch.cat([big[..., 8 * i : 8 * i + height, 8 * i : 8 * i + width] for i in range(batch)])


def outputs_equal(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor, atol: float = 1e-5) -> float:
    with torch.no_grad():
        ya, yb = a.eval()(x), b.eval()(x)
    assert ya.shape == yb.shape
    err = float((ya - yb).abs().max())
    assert err <= atol, err
    return err


# -- spandrel ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_spandrel_loads_checkpoint_as_saved(saved, case):
    s = saved[case]
    model = spandrel.ModelLoader().load_from_file(s.path)
    arch_id, scale = EXPECTED[case]
    assert model.architecture.id == arch_id
    assert model.scale == scale
    assert not spandrel_limits(s.net_opt)
    outputs_equal(model.model, s.ema, crop())  # spandrel, like us, prefers params_ema


@pytest.mark.parametrize("case", CASES)
def test_spandrel_loads_exported_safetensors(saved, case, tmp_path):
    s = saved[case]
    gen = s.load(param_key="params")  # the non-EMA weights: the export must carry exactly these
    report = export_checkpoint(s.path, str(tmp_path), opt_file=s.recipe, param_key="params", formats=["safetensors"])
    path = report["files"][0]
    assert path.endswith(f"{os.path.splitext(os.path.basename(s.path))[0]}.safetensors")
    model = spandrel.ModelLoader().load_from_file(path)
    assert (model.architecture.id, model.scale) == EXPECTED[case]
    assert report["metadata"]["spandrel_architecture"] == EXPECTED[case][0]
    outputs_equal(model.model, s.net, crop())
    outputs_equal(gen.net, s.net, crop(), atol=0)
    if s.ema is not s.net:  # the two weight sets differ, so the check above tells them apart
        with torch.no_grad():
            assert float((s.net(crop()) - s.ema(crop())).abs().max()) > 1e-3


def test_spandrel_limits_named(tmp_path):
    # the CPU demo recipe's RRDBNet (num_grow_ch 16): spandrel builds 32 growth channels and fails
    demo = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 16}
    assert spandrel_limits(demo) == ["spandrel's ESRGAN assumes num_grow_ch 32, this network has 16"]
    torch.save({"params": build_generator(demo).state_dict()}, tmp_path / "demo.pth")
    with pytest.raises(RuntimeError, match="size mismatch"):
        spandrel.ModelLoader().load_from_file(str(tmp_path / "demo.pth"))
    assert spandrel_limits({"type": "SwinIR", "window_size": 7, "img_range": 1.0})
    assert spandrel_limits({"type": "CSUDNAFNet", "dw_expand": 1})
    assert spandrel_limits({"type": "SRVGGNetCompact"})
    assert not spandrel_limits({"type": "SwinIR", "window_size": 8, "img_range": 1.0})


# -- safetensors round trip ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_safetensors_round_trip(saved, case, tmp_path):
    s = saved[case]
    report = export_checkpoint(s.path, str(tmp_path), opt_file=s.recipe, formats=["safetensors"], name="g")
    net, meta = load_safetensors(str(tmp_path / "g.safetensors"))
    assert type(net) is type(s.ema)
    outputs_equal(net, s.ema, crop(), atol=0)
    with open(s.path, "rb") as f:
        assert meta["source_sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert meta["source_checkpoint"] == os.path.basename(s.path)
    assert meta["architecture"] == s.net_opt["type"] if case != "official_x4" else meta["architecture"] == "RRDBNet"
    assert int(meta["scale"]) == EXPECTED[case][1]
    assert meta["param_key"] == {"official_x4": "", "official_x2": "", "nafnet": "params"}.get(case, "params_ema")
    opts = json.loads(meta["network_options"])
    assert {k: v for k, v in s.net_opt.items() if k != "type"}.items() <= opts.items()
    assert meta == report["metadata"]


# -- ONNX ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_onnx_matches_torch_on_other_sizes(saved, case, tmp_path):
    """Exported from a 24x(24+m) dummy; run at 37x53 (odd: padded inside for SwinIR / x2 RRDBNet)
    and on a batch of 2 at 16x40."""
    gen = saved[case].load()
    path = str(tmp_path / "g.onnx")
    export_onnx(gen, path, metadata={"architecture": gen.net_opt["type"]})
    for x in (photo_crop(3, 37, 53), crop(16, 40, batch=2)):
        assert onnx_max_error(path, gen, x) < 1e-4
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    dims = session.get_inputs()[0].shape
    assert isinstance(dims[0], str) and isinstance(dims[2], str) and isinstance(dims[3], str) and dims[1] == 3
    assert session.get_modelmeta().custom_metadata_map["architecture"] == gen.net_opt["type"]
    if gen.multiple == 1:  # no padding wrapper: the graph is the bare network
        x = crop(24, 32)
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            assert np.abs(got - gen.net(x).numpy()).max() < 1e-4


def test_onnx_fp16(saved, tmp_path):
    gen = saved["rrdb_x4"].load()
    path = str(tmp_path / "g_fp16.onnx")
    export_onnx(gen, path, fp16=True)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float16)"
    assert onnx_max_error(path, gen, photo_crop(3, 21, 30)) < 1e-2


# -- the command line ----------------------------------------------------------------------------------------
def run_script(argv: list[str]) -> int:
    import importlib.util

    from sfd_utils.cli import run_cli

    spec = importlib.util.spec_from_file_location("export_script", os.path.join(ROOT, "scripts", "export.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return run_cli(module.main, argv)


def test_cli_writes_both_files_and_checks(saved, tmp_path, capsys):
    s = saved["official_x2"]  # architecture read from the keys, no recipe
    assert run_script(["--model", s.path, "-o", str(tmp_path), "--name", "x2"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "x2.safetensors").is_file() and (tmp_path / "x2.onnx").is_file()
    assert "SFDRRDBNetOfficialX2 x2" in out and "max abs error" in out and "spandrel loads it as ESRGAN" in out
    # a second run refuses to overwrite
    assert run_script(["--model", s.path, "-o", str(tmp_path), "--name", "x2"]) == 2
    assert "x2.safetensors exists" in capsys.readouterr().err


def test_cli_help_imports_no_torch():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", os.path.join(ROOT, "scripts", "export.py"), "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert proc.returncode == 0 and "--param-key" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "argparse" in imported and "torch" not in imported


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_cli_errors(saved, tmp_path, capsys):
    missing = str(tmp_path / "nope.pth")
    assert run_script(["--model", missing, "-o", str(tmp_path)]) == 2
    assert "nope.pth" in one_error_line(capsys)
    assert run_script(["--model", saved["rrdb_x4"].path, "-o", str(tmp_path), "--arch", "NoSuchNet"]) == 2
    assert "unknown architecture 'NoSuchNet'" in one_error_line(capsys)


def test_discriminator_checkpoints_refused(saved, tmp_path):
    from sfd_arch.csud_discriminator_arch import CSUDPatchDiscriminator
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator

    sfd_d = tmp_path / "net_d_1000.pth"
    torch.save({"params": SFDDiscriminator("tiny-rn", None, n_ctx=4, feat_mid_channels=8).state_dict()}, sfd_d)
    with pytest.raises(ExportError, match="SFD discriminator checkpoint"):
        load_training_checkpoint(str(sfd_d), opt_file=saved["rrdb_x4"].recipe)
    with pytest.raises(ExportError, match="SFD discriminator checkpoint"):
        load_training_checkpoint(str(sfd_d))
    csud_d = tmp_path / "csud" / "net_d_1000.pth"
    csud_d.parent.mkdir()
    torch.save({"params": CSUDPatchDiscriminator(ndf=8, n_layers=2).state_dict()}, csud_d)
    with pytest.raises(ExportError, match=r"net_d_1000.pth is a discriminator; export net_g_\*.pth"):
        load_training_checkpoint(str(csud_d), opt_file=saved["nafnet"].recipe)
    with pytest.raises(ExportError, match="cannot infer the architecture"):
        load_training_checkpoint(str(csud_d))
