"""The wheel a user installs: built from this checkout with ``python -m build``, installed with
``pip install`` (offline) into fresh virtual environments that see only the wheel's declared
dependencies (how, and why that is sound, is explained in ``wheel_host.py``):

- a BasicSR host (base requirements + the ``basicsr`` extra): the start-up hook is active, importing
  basicsr fills its registries, the packaged tiny CLIP configs load, and every console script answers
  (one runs a real upscale);
- a traiNNer-redux host (base requirements + traiNNer-redux's, basicsr absent): importing traiNNer
  registers the discriminator and the metric, and ``sfd-iqa`` scores with a discriminator file.

Building and the two environments take about half a minute; the traiNNer part skips, naming why,
where the traiNNer-redux source is not available (see ``trainner_peer.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import zipfile

import cv2
import pytest
import torch
from conftest import photo
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from safetensors.torch import save_file
from wheel_host import (
    PRODUCT,
    clean_env,
    dependency_closure,
    dependency_view,
    fresh_venv,
    wheel_requirements,
)

from sfd_arch.sfd_discriminator_arch import SFDDiscriminator

CONSOLE_SCRIPTS = ("sfd-train", "sfd-infer", "sfd-evaluate", "sfd-plot-pd", "sfd-export", "sfd-iqa", "sfd-derain")


def base_requirements(wheel_file: str) -> list[str]:
    return [r for r in wheel_requirements(wheel_file) if "extra ==" not in r]


@pytest.fixture(scope="module")
def basicsr_venv(wheel, tmp_path_factory) -> str:
    """Fresh venv: the wheel + its base requirements + the `basicsr` extra."""
    tmp = tmp_path_factory.mktemp("basicsr_host")
    names = dependency_closure(wheel_requirements(wheel), extras=("basicsr",))
    view = dependency_view(str(tmp / "deps"), names - {"sfd-basicsr"})
    return fresh_venv(str(tmp / "venv"), wheel, [view], extras=("basicsr",))


def run(python: str, code: str, *args: str, cwd: str, ok: bool = True, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(code), *args], cwd=cwd, env=clean_env(**env), capture_output=True, text=True
    )
    if ok:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_wheel_holds_the_hook_the_packages_and_basicsr_only_as_an_extra(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "sfd_basicsr_hook.pth" in names  # at the wheel's root = site-packages
    assert {n.split("/")[0] for n in names if n.endswith("/__init__.py")} == PRODUCT
    assert {"sfd_arch/clip_configs/tiny-rn.json", "sfd_arch/clip_configs/tiny-vit.json"} <= set(names)
    assert not any(n.startswith(("tests/", "scripts/", "basicsr/")) for n in names)
    base = base_requirements(wheel)
    assert not any(r.startswith(("basicsr", "tb-nightly")) for r in base), base
    names = {canonicalize_name(Requirement(r).name) for r in base}
    assert names >= {"torch", "open-clip-torch", "safetensors", "numpy", "opencv-python"}, names
    assert 'basicsr>=1.4.2; extra == "basicsr"' in wheel_requirements(wheel)
    assert all(f"{name} = " in entry_points for name in CONSOLE_SCRIPTS), entry_points


def test_wheel_in_a_fresh_venv_registers_with_basicsr(basicsr_venv, tmp_path):
    code = """
        import json, os, sys, sysconfig
        site = sysconfig.get_paths()["purelib"]
        start = {"torch": "torch" in sys.modules, "basicsr": "basicsr" in sys.modules,
                 "hook_active": any(type(f).__name__ == "_HostFinder" for f in sys.meta_path),
                 "hook_file": os.path.isfile(os.path.join(site, "sfd_basicsr_hook.pth"))}
        import sfd_arch, sfd_utils
        from_wheel = all(os.path.dirname(m.__file__).startswith(site) for m in (sfd_arch, sfd_utils))
        import basicsr  # needs the hook's torchvision shim (torchvision >= 0.17)
        from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY
        from basicsr.utils.registry import MODEL_REGISTRY
        import torch
        from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS
        disc = ARCH_REGISTRY.get("SFDDiscriminator")(clip_model="tiny-rn", clip_pretrained=None, n_ctx=4,
            feat_mid_channels=8, clip_config=os.path.join(TINY_CLIP_CONFIGS, "tiny-rn.json"))
        out = disc(torch.rand(1, 3, 64, 64))
        print(json.dumps({**start, "from_wheel": from_wheel, "configs_in_wheel": TINY_CLIP_CONFIGS.startswith(site),
            "registered": ["SFDDiscriminator" in ARCH_REGISTRY, "SFDModel" in MODEL_REGISTRY,
                           "CSUDModel" in MODEL_REGISTRY, "SFDGANLoss" in LOSS_REGISTRY,
                           "calculate_sfd_iqa" in METRIC_REGISTRY, "CSUDUnpairedRainDataset" in DATASET_REGISTRY],
            "out": list(out.shape)}))
    """
    out = json.loads(run(basicsr_venv, code, cwd=str(tmp_path)).stdout.strip().splitlines()[-1])
    assert out["hook_file"] and out["hook_active"]  # the wheel's start-up hook runs at interpreter start
    assert not out["torch"] and not out["basicsr"]  # ... and imports nothing heavy
    assert out["from_wheel"] and out["configs_in_wheel"]  # not this checkout
    assert out["registered"] == [True] * 6
    assert out["out"][0] == 1 and out["out"][1] == 6  # 3 Feat-D maps + 3 TG-D channels


def test_wheel_console_scripts_answer_and_upscale(basicsr_venv, tmp_path):
    bindir = os.path.dirname(basicsr_venv)
    for name in CONSOLE_SCRIPTS:
        proc = subprocess.run(
            [os.path.join(bindir, name), "--help"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True
        )
        assert proc.returncode == 0 and "usage:" in proc.stdout, (name, proc.stderr[-2000:])
    img = photo("chelsea")[:24, :32, ::-1]
    cv2.imwrite(str(tmp_path / "small.png"), img)
    args = ["-i", "small.png", "-o", "up", "--arch", "SFDBicubicUpsampler", "--arch-opt", "scale=2"]
    proc = subprocess.run(
        [os.path.join(bindir, "sfd-infer"), *args], cwd=tmp_path, env=clean_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert cv2.imread(str(tmp_path / "up" / "small_out.png")).shape == (48, 64, 3)


# -- a traiNNer-redux environment: no basicsr at all ------------------------------------------------------
@pytest.fixture(scope="module")
def trainner_venv(wheel, tmp_path_factory) -> str:
    from trainner_peer import PeerUnavailable, ensure_trainner

    try:
        trainner_root = ensure_trainner()
    except PeerUnavailable as err:
        pytest.skip(f"traiNNer-redux unavailable: {err}")
    tmp = tmp_path_factory.mktemp("trainner_host")
    names = dependency_closure([*base_requirements(wheel), "trainner-redux"])
    assert "basicsr" not in names
    view = dependency_view(str(tmp / "deps"), names - {"sfd-basicsr", "trainner-redux"})
    return fresh_venv(str(tmp / "venv"), wheel, [view, trainner_root])  # traiNNer runs from its source tree


def test_wheel_without_basicsr_registers_with_trainner_and_scores(trainner_venv, tmp_path, tiny_clip_files):
    torch.manual_seed(0)
    disc = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=8)
    ckpt = str(tmp_path / "net_d_5.safetensors")
    save_file({k: v.contiguous() for k, v in disc.state_dict().items()}, ckpt)  # as traiNNer saves net_d
    code = """
        import importlib.util, json, sys
        no_basicsr = importlib.util.find_spec("basicsr") is None
        import traiNNer
        from traiNNer.utils.registry import ARCH_REGISTRY, METRIC_REGISTRY
        cls = ARCH_REGISTRY.get("sfddiscriminator")
        print(json.dumps({"no_basicsr": no_basicsr, "arch": cls.__module__,
                          "file": sys.modules[cls.__module__].__file__,
                          "metric": METRIC_REGISTRY.get("calculate_sfd_iqa").__module__,
                          "basicsr_imported": "basicsr" in sys.modules}))
    """
    out = json.loads(run(trainner_venv, code, cwd=str(tmp_path)).stdout.strip().splitlines()[-1])
    assert out["no_basicsr"] and not out["basicsr_imported"]
    assert out["arch"] == "sfd_arch.sfd_discriminator_arch" and "site-packages" in out["file"]
    assert out["metric"] == "sfd_trainner.sfd_iqa_metric"
    cv2.imwrite(str(tmp_path / "cat.png"), photo("chelsea")[:64, :96, ::-1])
    sfd_iqa = os.path.join(os.path.dirname(trainner_venv), "sfd-iqa")
    args = ["cat.png", "-c", ckpt, "-o", "iqa", "--tile", "64", "--device", "cpu", "--quiet", "--no-plot"]
    proc = subprocess.run([sfd_iqa, *args], cwd=tmp_path, env=clean_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads((tmp_path / "iqa" / "scores.json").read_text())
    assert len(scores["images"]) == 1 and 0.0 <= scores["images"][0]["q"] <= 1.0, scores
