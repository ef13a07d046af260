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

import numpy as np  # noqa: E402
import torch  # noqa: E402

CLIP_CONFIGS = os.path.join(ROOT, "tests", "clip_configs")
TINY_CLIPS = ("tiny-rn", "tiny-vit")


def register_tiny_clips() -> None:
    import open_clip

    open_clip.add_model_config(CLIP_CONFIGS)


register_tiny_clips()
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def photo(name: str = "astronaut") -> np.ndarray:
    """A colour photo shipped by scikit-image as (H, W, 3) uint8 RGB."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


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

    folder = tmp_path_factory.mktemp("clip_weights")
    files = {}
    for name in TINY_CLIPS:
        torch.manual_seed(0)
        model = open_clip.create_model(name, pretrained=None)
        path = folder / f"{name}.pt"
        torch.save(model.state_dict(), path)
        files[name] = str(path)
    return files
