"""sfd-basicsr: SFD (semantic feature discrimination), SFD-IQA and CSUD as a BasicSR plugin."""

import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sfd_utils.install_hook import HOOK_LINE, HOOK_NAME  # noqa: E402  (standard library only)


class BuildPyWithHook(build_py):
    """Regular installs: put the start-up hook at the root of the wheel (= site-packages)."""

    def run(self):
        super().run()
        with open(os.path.join(self.build_lib, HOOK_NAME), "w", encoding="utf-8") as f:
            f.write(HOOK_LINE)


cmdclass = {"build_py": BuildPyWithHook}
try:
    from setuptools.command.editable_wheel import editable_wheel

    class EditableWheelWithHook(editable_wheel):
        """Editable installs (PEP 660) skip build_py's extra files: add the hook to the wheel."""

        def _install_namespaces(self, installation_dir, pth_prefix):
            super()._install_namespaces(installation_dir, pth_prefix)
            with open(os.path.join(installation_dir, HOOK_NAME), "w", encoding="utf-8") as f:
                f.write(HOOK_LINE)

    cmdclass["editable_wheel"] = EditableWheelWithHook
except ImportError:  # old setuptools: `python -m sfd_utils.install_hook` does the same
    pass

BASICSR = ["basicsr>=1.4.2"]  # its own requirements bring tensorboard (tb-nightly), lmdb, addict, ...

with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="sfd-basicsr",
    version="0.1.0",
    description="SFD perceptual SR, SFD-IQA and CSUD deraining as a BasicSR plugin",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    # The product only: the registered components, the shared helpers, the programs and the host glue
    # (traiNNer-redux, pyiqa).
    # The lab (sfd_lab: benchmarks, learning checks, bake-off, GPU check) stays in the repository.
    packages=[
        "sfd_arch",
        "sfd_model",
        "sfd_loss",
        "sfd_data",
        "sfd_metric",
        "sfd_utils",
        "sfd_tools",
        "sfd_tools.sr",
        "sfd_tools.iqa",
        "sfd_tools.csud",
        "sfd_tools.demo",
        "sfd_trainner",
        "sfd_pyiqa",
    ],
    package_data={"sfd_arch": ["clip_configs/*.json"]},
    # Base install: what the plugin needs in any host. basicsr is an extra (`sfd-basicsr[basicsr]`): the
    # traiNNer-redux path, SFD-IQA scoring and inference of exported/traiNNer generators run without it.
    # Loose ranges here; the tested versions are pinned in constraints.txt.
    install_requires=[
        "torch>=2.0",
        "torchvision>=0.15",
        "open_clip_torch>=2.24",
        "safetensors>=0.4",
        "spandrel>=0.4",
        "opencv-python>=4.5",
        "pyyaml>=5.4",
        "numpy>=1.21",
        "scipy>=1.7",
        "scikit-image>=0.19",
        "tqdm>=4.60",
        "matplotlib>=3.5",
    ],
    extras_require={
        # BasicSR host: the registries, SFDModel/CSUDModel, `sfd-train`. basicsr 1.4.2 is a source
        # distribution whose setup.py imports torch: install torch first, then with --no-build-isolation.
        "basicsr": BASICSR,
        # scripts/export.py: safetensors + ONNX files, checked with onnxruntime
        "export": ["onnx>=1.15", "onnxruntime>=1.17"],
        # pyiqa host: `pyiqa.create_metric('sfd_iqa', pretrained_model_path=...)`. pyiqa is
        # PolyForm-Noncommercial (since 2026-04) and heavy (transformers, datasets, ...): optional only.
        "pyiqa": ["pyiqa>=0.1.16"],
        # the test suite: both hosts' code paths, exported files loaded with spandrel, the wheel built with `build`,
        # rich (traiNNer-redux's traceback printer, for the one-line option errors under it)
        "test": [*BASICSR, "pytest>=7", "ruff>=0.4", "onnx>=1.15", "onnxruntime>=1.17", "build>=1.0", "rich>=12.3"],
    },
    entry_points={
        "console_scripts": [
            "sfd-train=sfd_utils.launcher:main",
            "sfd-infer=sfd_tools.console:inference_main",
            "sfd-evaluate=sfd_tools.console:evaluate_main",
            "sfd-plot-pd=sfd_tools.console:plot_pd_main",
            "sfd-export=sfd_tools.console:export_main",
            "sfd-iqa=sfd_tools.console:sfd_iqa_eval_main",
            "sfd-derain=sfd_tools.console:derain_main",
        ],
        # pyiqa calls this when its network registry is first queried (sfd_pyiqa/registration.py)
        "pyiqa.archs": ["sfd_iqa=sfd_pyiqa.registration:register_arch"],
    },
    cmdclass=cmdclass,
)
