"""Shared fixtures: tiny open_clip configs, real photos shipped by scikit-image, temp weights."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from sfd_utils.compat import install  # noqa: E402

install()  # before anything imports basicsr
# Tests never reach the internet: weights the plugin would download on first use are an offline
# error here (tests/test_downloads.py runs the download code against a loopback server instead).
os.environ["SFD_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

CLIP_CONFIGS = os.path.join(ROOT, "sfd_arch", "clip_configs")  # tiny open_clip configs (package data)
TINY_CLIPS = ("tiny-rn", "tiny-vit")


def register_tiny_clips() -> None:
    import open_clip

    open_clip.add_model_config(CLIP_CONFIGS)


register_tiny_clips()
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def photo(name: str = "astronaut") -> np.ndarray:
    """A colour photo shipped by scikit-image as (H, W, 3) uint8 RGB."""
    from sfd_utils.photos import load_photo

    return load_photo(name)


def photo_tensor(name: str = "astronaut", size: int | None = 64, batch: int = 1) -> torch.Tensor:
    """(B, 3, size, size) float in [0, 1] crops of a scikit-image photo (different crop per item)."""
    img = torch.from_numpy(photo(name)).permute(2, 0, 1).float() / 255.0
    if size is None:
        return img[None].repeat(batch, 1, 1, 1)
    crops = []
    for i in range(batch):
        top = (i * 37) % (img.shape[1] - size)
        left = (i * 53) % (img.shape[2] - size)
        crops.append(img[:, top : top + size, left : left + size])
    return torch.stack(crops)


@pytest.fixture(scope="session")
def tiny_clip_files(tmp_path_factory) -> dict[str, str]:
    """Random weights of each tiny CLIP saved to a file, to load through the real path code."""
    import open_clip

    from sfd_arch.clip_backbone import calibrate_random_clip

    folder = tmp_path_factory.mktemp("clip_weights")
    files = {}
    for name in TINY_CLIPS:
        torch.manual_seed(0)
        model = open_clip.create_model(name, pretrained=None)
        calibrate_random_clip(model, photo_tensor("astronaut", 64, batch=8))
        path = folder / f"{name}.pt"
        torch.save(model.state_dict(), path)
        files[name] = str(path)
    return files


def sfd_opt(clip_file: str | None, tmp_dir: str, model_type: str = "SFDModel", **train_overrides) -> dict:
    """Options for SFDModel with a tiny RRDBNet and the tiny CLIP (RN) loaded from ``clip_file``."""
    from sfd_utils.presets import sfd_options

    train = {
        "optim_g": {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99]},
        "optim_d": {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99]},
        **train_overrides,
    }
    network_d = {"clip_model": "tiny-rn", "clip_pretrained": clip_file, "n_ctx": 4, "feat_mid_channels": 16}
    return sfd_options(tmp_dir, network_d, train=train, model_type=model_type)


def lr_hr_batch(batch: int = 2, size: int = 64, name: str = "astronaut") -> dict:
    """{'lq', 'gt'}: HR crops of a photo and their bicubic x4 downscaling."""
    import torch.nn.functional as F

    gt = photo_tensor(name, size, batch)
    return {"lq": F.interpolate(gt, scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1), "gt": gt}


@pytest.fixture(scope="session")
def quality_clip_file() -> str:
    """Weights of the quality-aware tiny CLIP (``quality-tiny-rn``, sfd_lab.checks.quality_clip default settings):
    the file scripts/train_quality_clip.py wrote, or trained once (a few CPU minutes) into experiments/cache/
    (outside git) and reused."""
    from sfd_lab.checks.quality_clip import cached_quality_clip

    return cached_quality_clip()


@pytest.fixture(scope="module")
def trainner_root() -> str:
    """The traiNNer-redux source root, installed from the peer archive if needed (skips without it)."""
    from trainner_peer import PeerUnavailable, ensure_trainner

    try:
        return ensure_trainner()
    except PeerUnavailable as err:
        pytest.skip(f"traiNNer-redux unavailable: {err}")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> str:
    """This checkout's wheel, built once per test session (``wheel_host.build_wheel``, about 15 s)."""
    from wheel_host import build_wheel

    return build_wheel(str(tmp_path_factory.mktemp("wheel_build")))
