"""Synthetic streak rain on the photos scikit-image ships, for the CSUD demo and tests (no download).

Rain model ``O = clip(B + tint * R)``: R is a layer of anti-aliased line streaks (one main angle per
image with a small jitter, random length, thickness and strength, slightly blurred); ``tint`` is a
near-achromatic colour (each channel within a few percent of 1), matching the Channel Consistency
Prior. Three disjoint photo groups give an unpaired rainy set, a clean set of *other* photos and a
held-out paired test set.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from sfd_data.demo_data import load_photo, tiles

RAIN_PHOTOS = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "camera", "brick")
CLEAN_PHOTOS = ("coffee", "ihc", "hubble_deep_field", "grass", "gravel", "moon")
TEST_PHOTOS = ("chelsea", "coins", "retina")
TRAIN_PHOTOS = RAIN_PHOTOS + CLEAN_PHOTOS
CLEAN_FROM = ("other_halves", "other_photos")


@dataclass
class RainStyle:
    """Ranges a rain layer is drawn from (uniform). Density is streaks per 1000 pixels.

    The defaults give heavy rain (held-out input about 20.8 dB PSNR): the CPU demo learns to
    derain it in a few hundred iterations; lighter rain (density 0.4-1.2, strength 0.35-0.8,
    about 26 dB) did not improve over the input in that budget.
    """

    density: tuple[float, float] = (1.0, 2.0)
    length: tuple[float, float] = (10.0, 30.0)
    angle: tuple[float, float] = (-30.0, 30.0)  # degrees from vertical, one per image
    angle_jitter: float = 4.0
    strength: tuple[float, float] = (0.5, 0.9)
    thick_prob: float = 0.2  # share of 2-px streaks
    chroma: float = 0.03  # per-channel deviation of the tint from grey


def rain_layer(height: int, width: int, rng: np.random.Generator, style: RainStyle | None = None) -> np.ndarray:
    """(H, W) float32 streak layer in [0, 1]; ``style`` default: RainStyle()."""
    style = style or RainStyle()
    canvas = np.zeros((height, width), np.float32)
    n = int(round(rng.uniform(*style.density) * height * width / 1000))
    main = rng.uniform(*style.angle)
    for _ in range(n):
        theta = math.radians(main + rng.normal(0, style.angle_jitter))
        half = rng.uniform(*style.length) / 2
        cx, cy = rng.uniform(-half, width + half), rng.uniform(-half, height + half)
        dx, dy = half * math.sin(theta), half * math.cos(theta)
        p0 = (int(round((cx - dx) * 16)), int(round((cy - dy) * 16)))
        p1 = (int(round((cx + dx) * 16)), int(round((cy + dy) * 16)))
        thickness = 2 if rng.random() < style.thick_prob else 1
        value = float(rng.uniform(*style.strength))
        # 4 fractional bits: sub-pixel endpoints keep thin streaks smooth.
        cv2.line(canvas, p0, p1, value, thickness, lineType=cv2.LINE_AA, shift=4)
    canvas = cv2.GaussianBlur(canvas, (3, 3), 0.6)
    return np.clip(canvas, 0, 1)


def add_rain(img: np.ndarray, rng: np.random.Generator, style: RainStyle | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the same image with streak rain, uint8 RGB."""
    style = style or RainStyle()
    h, w = img.shape[:2]
    tint = 1 + rng.uniform(-style.chroma, style.chroma, size=3)
    rain = rain_layer(h, w, rng, style)[..., None] * tint[None, None].astype(np.float32)
    out = img.astype(np.float32) / 255.0 + rain
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _write(folder: str, name: str, img_rgb: np.ndarray) -> None:
    cv2.imwrite(os.path.join(folder, name), cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR))


def _crops(photos, size: int, max_per_photo: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for name in photos:
        crops = tiles(load_photo(name), size, size)
        keep = np.linspace(0, len(crops) - 1, min(len(crops), max_per_photo)).round().astype(int)
        out += [(f"{name}_{int(i):03d}.png", crops[i]) for i in sorted(set(keep.tolist()))]
    return out


def half_crops(photos, size: int, max_per_photo: int, rain: bool) -> list[tuple[str, np.ndarray]]:
    """Crops of one half of each photo: the rainy set takes the left half of even-numbered photos and
    the right half of odd ones, the clean set the other half (so the two never share a pixel)."""
    out = []
    for i, name in enumerate(photos):
        img = load_photo(name)
        half = img.shape[1] // 2
        left = (i % 2 == 0) == rain
        part = img[:, :half] if left else img[:, half:]
        crops = tiles(part, size, size)
        if not crops:
            continue
        keep = np.linspace(0, len(crops) - 1, min(len(crops), max_per_photo)).round().astype(int)
        out += [(f"{name}_{'l' if left else 'r'}{int(j):03d}.png", crops[j]) for j in sorted(set(keep.tolist()))]
    return out


def make_synthetic_rain(
    root: str = "datasets/csud_synthetic",
    train_size: int = 128,
    test_size: int = 128,
    max_per_photo: int = 16,
    max_test_per_photo: int = 8,
    seed: int = 0,
    style: RainStyle | None = None,
    clean_from: str = "other_halves",
) -> dict:
    """Write the CSUD demo data set (RGB PNGs) and return the image count per folder::

        root/train/rain   rainy crops                           (unpaired: other halves of
        root/train/clean  clean crops                            TRAIN_PHOTOS, or other photos)
        root/test/rain    rainy crops of TEST_PHOTOS            (held out, paired by file name
        root/test/clean   the same crops without rain            with test/clean)

    Deterministic for a given ``seed``; existing files of the same name are overwritten.
    """
    if clean_from not in CLEAN_FROM:
        raise ValueError(f"clean_from must be one of {CLEAN_FROM}, got {clean_from!r}")
    rng = np.random.default_rng(seed)
    folders = {k: os.path.join(root, *k.split("/")) for k in ("train/rain", "train/clean", "test/rain", "test/clean")}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    if clean_from == "other_halves":
        rain_crops = half_crops(TRAIN_PHOTOS, train_size, max_per_photo, rain=True)
        clean_crops = half_crops(TRAIN_PHOTOS, train_size, max_per_photo, rain=False)
    else:
        rain_crops = _crops(RAIN_PHOTOS, train_size, max_per_photo)
        clean_crops = _crops(CLEAN_PHOTOS, train_size, max_per_photo)
    for name, crop in rain_crops:
        _write(folders["train/rain"], name, add_rain(crop, rng, style))
    for name, crop in clean_crops:
        _write(folders["train/clean"], name, crop)
    for name, crop in _crops(TEST_PHOTOS, test_size, max_test_per_photo):
        _write(folders["test/clean"], name, crop)
        _write(folders["test/rain"], name, add_rain(crop, rng, style))
    return {k: len(os.listdir(v)) for k, v in folders.items()}
