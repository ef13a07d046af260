"""The photos scikit-image ships (no download), split into training and held-out *scenes*.

Every demo, test, learning check and quality-CLIP fixture takes its images from here. A held-out
photo never shares a scene with a training photo: ``motorcycle_left`` and ``motorcycle_right`` are
one stereo pair (one scene), and ``cat`` is byte-identical to ``chelsea``. ``SCENE`` names the scene
of every photo we use; ``tests`` fail if the two lists ever share one.
"""

from __future__ import annotations

import os

import numpy as np

# photo name -> scene it shows (two names with one scene must stay on one side of the split)
SCENE = {
    "astronaut": "astronaut",
    "coffee": "coffee cup",
    "rocket": "rocket launch",
    "hubble_deep_field": "deep field",
    "retina": "retina",
    "ihc": "tissue stain",
    "chelsea": "cat",
    "cat": "cat",
    "motorcycle_left": "motorcycle",
    "motorcycle_right": "motorcycle",
    "camera": "cameraman",
    "brick": "brick wall",
    "grass": "grass",
    "gravel": "gravel",
    "moon": "moon surface",
    "coins": "coins",
}
TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina", "ihc")
# grayscale photos (replicated to 3 channels) that may join training data when more is needed
TRAIN_GRAY_PHOTOS = ("camera", "brick", "grass", "gravel", "moon", "coins")
HELDOUT_PHOTOS = ("chelsea", "motorcycle_right")


def scene_overlap(train: tuple[str, ...] | list[str], heldout: tuple[str, ...] | list[str]) -> set[str]:
    """Scenes present on both sides (empty when the split is clean). Unknown names raise KeyError."""
    return {SCENE[n] for n in train} & {SCENE[n] for n in heldout}


def load_photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB photo shipped in ``skimage/data`` (gray replicated, alpha dropped)."""
    import glob

    import skimage.data
    import skimage.io

    found = sorted(glob.glob(os.path.join(skimage.data.data_dir, f"{name}.*")))
    if not found:
        raise FileNotFoundError(f"scikit-image ships no photo named {name!r} in {skimage.data.data_dir}")
    img = skimage.io.imread(found[0])
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def bicubic_down(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style bicubic downscaling (BasicSR's imresize), uint8 in, uint8 out."""
    from basicsr.utils.matlab_functions import imresize

    out = imresize(img.astype(np.float32) / 255.0, 1 / scale)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def tiles(img: np.ndarray, size: int, stride: int) -> list[np.ndarray]:
    """Every ``size``² crop of ``img`` at ``stride`` (row-major), views into ``img``."""
    h, w = img.shape[:2]
    return [
        img[t : t + size, s : s + size] for t in range(0, h - size + 1, stride) for s in range(0, w - size + 1, stride)
    ]


def photo_crops(names, size: int, stride: int):
    """(N, 3, size, size) float [0, 1] torch crops of the named scikit-image photos."""
    import torch

    crops = [c for n in names for c in tiles(load_photo(n), size, stride)]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0


def bicubic_lr(hr, scale: int = 4):
    """Antialiased bicubic downscaling of a (B, 3, H, W) [0, 1] torch batch, clamped to [0, 1]."""
    import torch.nn.functional as F

    return F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", antialias=True).clamp(0, 1)
