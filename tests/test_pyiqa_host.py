"""pyiqa as a host: ``pip install 'sfd-basicsr[pyiqa]'`` then ``pyiqa.create_metric('sfd_iqa', ...)``.

The environment is built once per test session: a fresh venv that sees the wheel's base requirements
from this test environment (``wheel_host.dependency_view``: torch, open_clip, ... are not downloaded
again) and gets ``<wheel>[pyiqa]`` installed by pip *from the package index*, so pyiqa and the rest of
its requirements (transformers, datasets, accelerate, bitsandbytes, facexlib, openai-clip, ...) come
as a user gets them. The first build downloads a few hundred MB and takes minutes (pip's cache makes
later ones faster); the tests skip, saying so, only when the index cannot be reached.

A tiny SFD discriminator checkpoint (tiny-rn CLIP with random weights saved to a file) is scored on
the same PNG files by pyiqa in that venv and by ``scripts/sfd_iqa_eval.py`` here: equal within 1e-5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import cv2
import pytest
import torch
from conftest import ROOT, photo
from wheel_host import (
    IndexInstallError,
    clean_env,
    dependency_closure,
    dependency_view,
    fresh_venv,
    index_reachable,
    wheel_requirements,
)

from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
from sfd_utils.compat import PYIQA, _HostFinder

PYIQA_REQUIREMENT = "pyiqa>=0.1.16"


@pytest.fixture(scope="session")
def pyiqa_venv(wheel, tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("pyiqa_host")
    assert f'{PYIQA_REQUIREMENT}; extra == "pyiqa"' in wheel_requirements(wheel)
    base = [r for r in wheel_requirements(wheel) if "extra ==" not in r]
    view = dependency_view(str(tmp / "deps"), dependency_closure(base) - {"sfd-basicsr"})
    try:
        return fresh_venv(str(tmp / "venv"), wheel, [view], extras=("pyiqa",), from_index=True)
    except IndexInstallError:
        unreachable = index_reachable("pyiqa")
        if unreachable is not None:
            pytest.skip(f"the package index is unreachable, pyiqa cannot be installed: {unreachable}")
        raise


def run_in(python: str, code: str, *args: str, cwd: str) -> dict:
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(code), *args], cwd=cwd, env=clean_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def checkpoint_and_images(tmp_path_factory, tiny_clip_files) -> tuple[str, str]:
    """An SFD discriminator checkpoint as SFDModel saves it ({'params': ...}) and three PNG files:
    a multi-tile RGB crop, one smaller than a tile (enlarged first) and a grayscale one."""
    tmp = tmp_path_factory.mktemp("pyiqa_inputs")
    torch.manual_seed(0)
    disc = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=8)
    ckpt = str(tmp / "net_d_10.pth")
    torch.save({"params": disc.state_dict()}, ckpt)
    images = tmp / "images"
    images.mkdir()
    cv2.imwrite(str(images / "astronaut.png"), photo("astronaut")[:288, :320, ::-1])
    cv2.imwrite(str(images / "small_cat.png"), photo("chelsea")[:96, :128, ::-1])
    cv2.imwrite(str(images / "gray_coffee.png"), cv2.cvtColor(photo("coffee")[:256, :300], cv2.COLOR_RGB2GRAY))
    return ckpt, str(images)


def test_pyiqa_absent_means_no_side_effects():
    """Here pyiqa is not installed: the hook answers nothing for it and imports none of our glue."""
    code = """
        import importlib.util, json, sys
        try:
            import pyiqa
            imported = True
        except ModuleNotFoundError:
            imported = False
        print(json.dumps({"imported": imported, "glue": sorted(m for m in sys.modules if m.startswith("sfd_pyiqa")),
                          "torch": "torch" in sys.modules}))
    """
    out = run_in(sys.executable, code, cwd="/")
    assert out == {"imported": False, "glue": [], "torch": False}
    assert _HostFinder().find_spec(PYIQA) is None


def test_sfd_iqa_arch_scores_like_the_scorer_without_pyiqa(checkpoint_and_images):
    """The network pyiqa builds, used directly (no pyiqa needed): per image the SFDIQA score of the
    checkpoint, gray batches as RGB, one line for a missing path or a wrong component or shape."""
    from sfd_metric.sfd_iqa import SFDIQA
    from sfd_pyiqa.sfd_iqa_arch import SFDIQAArch

    ckpt, _ = checkpoint_and_images
    net = SFDIQAArch(ckpt, component="q_feat")
    scorer = SFDIQA.from_checkpoint(ckpt, device="cpu")
    torch.manual_seed(1)
    batch = torch.rand(2, 3, 64, 80)
    with pytest.warns(UserWarning, match="smaller than the 256-pixel tile"):
        got = net(batch)
        want = [scorer.score(img).q_feat for img in batch]
        gray = net(batch[:, :1])
        gray_want = scorer.score(batch[0, :1].expand(3, -1, -1)).q_feat
    assert got.shape == (2, 1) and got[:, 0].tolist() == pytest.approx(want, abs=1e-6)
    assert float(gray[0]) == pytest.approx(gray_want, abs=1e-6)
    with pytest.raises(ValueError, match="pretrained_model_path"):
        SFDIQAArch()
    with pytest.raises(ValueError, match="component"):
        SFDIQAArch(ckpt, component="z")
    with pytest.raises(ValueError, match="batch"):
        net(batch[0])
    with pytest.raises(ValueError, match="loss"):
        net(batch.requires_grad_())


def test_pyiqa_create_metric_scores_like_sfd_iqa_eval(pyiqa_venv, checkpoint_and_images, tmp_path):
    ckpt, images = checkpoint_and_images
    names = sorted(os.listdir(images))
    code = """
        import importlib.metadata as md, json, os, sys
        at_start = {"pyiqa": "pyiqa" in sys.modules, "glue": "sfd_pyiqa.registration" in sys.modules}
        import pyiqa
        metric = pyiqa.create_metric("sfd_iqa", pretrained_model_path=sys.argv[1], device="cpu")
        folder = sys.argv[2]
        scores = {name: float(metric(os.path.join(folder, name))) for name in sorted(os.listdir(folder))}
        print(json.dumps({**at_start, "scores": scores, "lower_better": metric.lower_better,
                          "metric_mode": metric.metric_mode, "score_range": metric.score_range,
                          "listed": "sfd_iqa" in pyiqa.list_models(metric_mode="NR"),
                          "arch": type(metric.net).__module__, "pyiqa_version": pyiqa.__version__,
                          "entry_point": [ep.value for ep in md.entry_points(group="pyiqa.archs")]}))
    """
    got = run_in(pyiqa_venv, code, ckpt, images, cwd=str(tmp_path))
    assert not got["pyiqa"] and not got["glue"]  # the start-up hook imports neither at interpreter start
    assert got["listed"] and got["metric_mode"] == "NR" and got["lower_better"] is False
    assert got["score_range"] == "0, 1"
    assert got["arch"] == "sfd_pyiqa.sfd_iqa_arch"
    assert got["entry_point"] == ["sfd_pyiqa.registration:register_arch"]
    out = tmp_path / "eval"
    args = [images, "-c", ckpt, "-o", str(out), "--device", "cpu", "--quiet", "--no-plot"]
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "sfd_iqa_eval.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = {row["name"]: row["q"] for row in json.loads((out / "scores.json").read_text())["images"]}
    assert sorted(reference) == sorted(got["scores"]) == names
    for name in names:
        assert 0.0 <= got["scores"][name] <= 1.0
        assert got["scores"][name] == pytest.approx(reference[name], abs=1e-5), name


def test_pyiqa_metric_errors_are_one_line(pyiqa_venv, checkpoint_and_images, tmp_path):
    ckpt, _ = checkpoint_and_images
    code = """
        import json, sys, torch, pyiqa
        errors = {}
        for label, kwargs in {"no_path": {}, "missing": {"pretrained_model_path": "nope.pth"},
                              "component": {"pretrained_model_path": sys.argv[1], "component": "z"}}.items():
            try:
                pyiqa.create_metric("sfd_iqa", device="cpu", **kwargs)
            except Exception as err:
                errors[label] = f"{type(err).__name__}: {err}"
        metric = pyiqa.create_metric("sfd_iqa", pretrained_model_path=sys.argv[1], device="cpu",
                                     component="q_text")
        batch = torch.rand(2, 3, 64, 64)
        scores = metric(batch)
        print(json.dumps({**errors, "shape": list(scores.shape),
                          "single": [float(metric(batch[i:i + 1])) for i in range(2)],
                          "batch": scores[:, 0].tolist()}))
    """
    got = run_in(pyiqa_venv, code, ckpt, cwd=str(tmp_path))
    assert "pretrained_model_path" in got["no_path"] and "\n" not in got["no_path"]
    assert got["missing"].startswith("FileNotFoundError") and "nope.pth" in got["missing"]
    assert "component" in got["component"]
    assert got["shape"] == [2, 1]
    assert got["batch"] == pytest.approx(got["single"], abs=1e-6)  # a batch scores as its images one by one
