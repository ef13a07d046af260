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
    packages=[
        "sfd_arch",
        "sfd_model",
        "sfd_loss",
        "sfd_data",
        "sfd_metric",
        "sfd_utils",
        "sfd_tools",
        "sfd_iqa_tools",
        "csud_tools",
        "sfd_bench",
        "sfd_checks",
        "sfd_trainner",
        "sfd_gpu_check",
    ],
    package_data={"sfd_arch": ["clip_configs/*.json"]},
    install_requires=[
        "basicsr>=1.4.2",
        "torch>=2.0",
        "torchvision>=0.15",
        "open_clip_torch>=2.24",
        "opencv-python>=4.5",
        "pyyaml>=5.4",
        "numpy>=1.21",
        "scipy>=1.7",
        "scikit-image>=0.19",
        "tqdm>=4.60",
        "matplotlib>=3.5",
        "tb-nightly",
    ],
    extras_require={
        # scripts/export.py: safetensors + ONNX files, checked with onnxruntime
        "export": ["safetensors>=0.4", "onnx>=1.15", "onnxruntime>=1.17"],
        # the tests also load exported files with spandrel (the loader of chaiNNer and traiNNer-redux)
        "test": ["pytest>=7", "ruff>=0.4", "safetensors>=0.4", "onnx>=1.15", "onnxruntime>=1.17", "spandrel>=0.4"],
    },
    entry_points={"console_scripts": ["sfd-train=sfd_utils.train:main"]},
    cmdclass=cmdclass,
)
