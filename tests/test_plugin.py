"""Plugin install: registry names, the basicsr 1.4.2 shim, the lazy start-up hook, packaging."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
from conftest import ROOT

from sfd_utils.install_hook import HOOK_LINE, HOOK_NAME


def run_py(code: str, cwd: str | None = None, env: dict | None = None) -> str:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTHONPATH", None)
    full_env.update(env or {})
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd or "/", env=full_env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_registered_names_are_ours_and_unique():
    assert MODEL_REGISTRY.get("SFDModel").__module__ == "sfd_model.sfd_model"
    assert MODEL_REGISTRY.get("SFDRealModel").__module__ == "sfd_model.sfd_real_model"
    assert ARCH_REGISTRY.get("SFDDiscriminator").__module__ == "sfd_arch.sfd_discriminator_arch"
    assert LOSS_REGISTRY.get("SFDGANLoss").__module__ == "sfd_loss.sfd_loss"
    for registry in (ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY):
        for name, obj in registry:
            if obj.__module__.startswith("sfd_"):
                assert name.startswith(("SFD", "CSUD", "calculate_sfd")), name


def test_hook_installed_and_lazy():
    """The .pth written by the (editable) install must not import torch or basicsr by itself."""
    assert os.path.isfile(os.path.join(sysconfig.get_paths()["purelib"], HOOK_NAME))
    out = run_py(
        "import sys; print(int('torch' in sys.modules), int('basicsr' in sys.modules), "
        "int(any(type(f).__name__ == '_Finder' for f in sys.meta_path)))"
    )
    assert out == "0 0 1"


def test_hook_makes_plain_basicsr_import_work_and_loads_plugin():
    code = (
        "import sys, basicsr; from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY; "
        "import torchvision.transforms.functional_tensor as ft; "
        "print(int('SFDDiscriminator' in ARCH_REGISTRY), int('SFDModel' in MODEL_REGISTRY), "
        "int(callable(ft.rgb_to_grayscale)))"
    )
    assert run_py(code) == "1 1 1"
    code = "import sys, basicsr; print(int('sfd_model' in sys.modules))"
    assert run_py(code, env={"SFD_BASICSR_NO_AUTOLOAD": "1"}) == "0"


def test_importing_plugin_package_first_works():
    code = (
        "import sfd_model; from basicsr.utils.registry import ARCH_REGISTRY; "
        "print(int('SFDDiscriminator' in ARCH_REGISTRY))"
    )
    assert run_py(code) == "1"


def test_coexists_with_realesrgan():
    pytest.importorskip("realesrgan")
    code = (
        "import basicsr, realesrgan, sfd_arch, sfd_model; from basicsr.utils.registry import MODEL_REGISTRY; "
        "print(int('RealESRGANModel' in MODEL_REGISTRY and 'SFDRealModel' in MODEL_REGISTRY))"
    )
    assert run_py(code) == "1"


def _build(tmp_path, hook: str) -> str:
    """Build a wheel with setuptools' PEP 517/660 hook (the route pip takes) and return its path."""
    out_dir = tmp_path / hook
    out_dir.mkdir()
    code = f"import setuptools.build_meta as b; print(b.{hook}({str(out_dir)!r}))"
    name = run_py(code, cwd=ROOT)
    return str(out_dir / name)


@pytest.mark.parametrize("hook", ["build_wheel", "build_editable"])
def test_wheels_carry_the_startup_hook(tmp_path, hook):
    with zipfile.ZipFile(_build(tmp_path, hook)) as wheel:
        assert HOOK_NAME in wheel.namelist()
        assert wheel.read(HOOK_NAME).decode() == HOOK_LINE
        if hook == "build_wheel":
            names = wheel.namelist()
            for pkg in ("sfd_arch", "sfd_model", "sfd_loss", "sfd_data", "sfd_metric", "sfd_utils"):
                assert f"{pkg}/__init__.py" in names


def test_install_hook_module_writes_and_removes(tmp_path):
    from sfd_utils.install_hook import main

    main(["--site", str(tmp_path)])
    assert (tmp_path / HOOK_NAME).read_text() == HOOK_LINE
    main(["--site", str(tmp_path), "--remove"])
    assert not (tmp_path / HOOK_NAME).exists()
