"""Synthetic streak rain on the photos scikit-image ships, for the CSUD demo and tests (no download).

Rain model ``O = clip(B + tint * R)``: R is a layer of anti-aliased line streaks (one main angle per
image with a small jitter, random length, thickness and strength, slightly blurred); ``tint`` is a
near-achromatic colour (each channel within a few percent of 1), matching the Channel Consistency
Prior. The training photos give an unpaired rainy set and a clean set (by default the other half of
each photo, so the two never share a pixel; or a disjoint group of other photos), and held-out
photos a paired test set.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass

import cv2
import numpy as np

from sfd_tools.csud.cli import CLEAN_FROM, DEFAULT_DENSITY, DEFAULT_STRENGTH
from sfd_utils.files import output_dir
from sfd_utils.images import write_image
from sfd_utils.photos import load_photo, tiles

RAIN_PHOTOS = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "camera", "brick")
CLEAN_PHOTOS = ("coffee", "ihc", "hubble_deep_field", "grass", "gravel", "moon")
TEST_PHOTOS = ("chelsea", "coins", "retina")
TRAIN_PHOTOS = RAIN_PHOTOS + CLEAN_PHOTOS
SPLITS = ("train/rain", "train/clean", "test/rain", "test/clean")


class OutputNotEmptyError(FileExistsError, ValueError):
    """An output split folder already holds files (and overwriting was not asked for)."""


@dataclass
class RainStyle:
    """Ranges a rain layer is drawn from (uniform). Density is streaks per 1000 pixels.

    The defaults give heavy rain (held-out input about 20.8 dB PSNR): the CPU demo learns to
    derain it in a few hundred iterations; lighter rain (density 0.4-1.2, strength 0.35-0.8,
    about 26 dB) did not improve over the input in that budget.
    """

    density: tuple[float, float] = DEFAULT_DENSITY
    length: tuple[float, float] = (10.0, 30.0)
    angle: tuple[float, float] = (-30.0, 30.0)  # degrees from vertical, one per image
    angle_jitter: float = 4.0
    strength: tuple[float, float] = DEFAULT_STRENGTH
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
    write_image(os.path.join(folder, name), cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR))


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


def check_style(style: RainStyle) -> None:
    """ValueError for ranges a rain layer cannot be drawn from (negative, or min > max)."""
    for name in ("density", "length", "strength"):
        lo, hi = getattr(style, name)
        if lo < 0 or lo > hi:
            raise ValueError(f"{name} must be a range 0 <= min <= max, got {lo} {hi}")


def _largest_crop(photos, halves: bool) -> tuple[int, str]:
    """The largest square crop any of ``photos`` (or of their halves) holds, and which photo."""
    sizes = []
    for name in photos:
        h, w = load_photo(name).shape[:2]
        sizes.append((min(h, w // 2 if halves else w), f"{name} {h}x{w // 2 if halves else w}"))
    return max(sizes)


def _need_crops(crops: list, photos, size: int, option: str, what: str, halves: bool = False) -> None:
    if not crops:
        largest, which = _largest_crop(photos, halves)
        raise ValueError(
            f"{option} {size} is larger than every {what} (the largest is {which}): no crop fits; "
            f"use {option} {largest} or less"
        )


def _prepare_folders(folders: dict[str, str], overwrite: bool) -> None:
    """Create the split folders; refuse non-empty ones unless ``overwrite`` (then they are emptied)."""
    used = [f for f in folders.values() if os.path.isdir(f) and os.listdir(f)]
    if used and not overwrite:
        raise OutputNotEmptyError(
            f"output folder(s) not empty: {', '.join(used)}; old and new crops would mix. Give --overwrite "
            "(overwrite=True) to empty them first, or another --root"
        )
    for folder in folders.values():
        if overwrite and os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder, exist_ok=True)


def make_synthetic_rain(
    root: str = "datasets/csud_synthetic",
    train_size: int = 128,
    test_size: int = 128,
    max_per_photo: int = 16,
    max_test_per_photo: int = 8,
    seed: int = 0,
    style: RainStyle | None = None,
    clean_from: str = "other_halves",
    overwrite: bool = False,
) -> dict:
    """Write the CSUD demo data set (RGB PNGs) and return the number of images written per folder::

        root/train/rain   rainy crops                           (unpaired: other halves of
        root/train/clean  clean crops                            TRAIN_PHOTOS, or other photos)
        root/test/rain    rainy crops of TEST_PHOTOS            (held out, paired by file name
        root/test/clean   the same crops without rain            with test/clean)

    Deterministic for a given ``seed``. Everything is checked before anything is written: sizes and
    counts must be positive, the crops must fit in the photos, and the four split folders must be
    empty or absent; ``overwrite=True`` empties them first (nothing else under ``root`` is touched).
    """
    if clean_from not in CLEAN_FROM:
        raise ValueError(f"clean_from must be one of {CLEAN_FROM}, got {clean_from!r}")
    counts_and_sizes = {
        "train_size": train_size,
        "test_size": test_size,
        "max_per_photo": max_per_photo,
        "max_test_per_photo": max_test_per_photo,
    }
    for name, value in counts_and_sizes.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    check_style(style or RainStyle())
    rng = np.random.default_rng(seed)
    if clean_from == "other_halves":
        rain_crops = half_crops(TRAIN_PHOTOS, train_size, max_per_photo, rain=True)
        clean_crops = half_crops(TRAIN_PHOTOS, train_size, max_per_photo, rain=False)
        _need_crops(rain_crops and clean_crops, TRAIN_PHOTOS, train_size, "--size", "training photo half", True)
    else:
        rain_crops = _crops(RAIN_PHOTOS, train_size, max_per_photo)
        clean_crops = _crops(CLEAN_PHOTOS, train_size, max_per_photo)
        _need_crops(rain_crops, RAIN_PHOTOS, train_size, "--size", "rainy training photo")
        _need_crops(clean_crops, CLEAN_PHOTOS, train_size, "--size", "clean training photo")
    test_crops = _crops(TEST_PHOTOS, test_size, max_test_per_photo)
    _need_crops(test_crops, TEST_PHOTOS, test_size, "--test-size", "test photo")

    output_dir(root, "--root")
    folders = {k: os.path.join(root, *k.split("/")) for k in SPLITS}
    _prepare_folders(folders, overwrite)
    counts = dict.fromkeys(SPLITS, 0)
    for name, crop in rain_crops:
        _write(folders["train/rain"], name, add_rain(crop, rng, style))
        counts["train/rain"] += 1
    for name, crop in clean_crops:
        _write(folders["train/clean"], name, crop)
        counts["train/clean"] += 1
    for name, crop in test_crops:
        _write(folders["test/clean"], name, crop)
        _write(folders["test/rain"], name, add_rain(crop, rng, style))
        counts["test/clean"] += 1
        counts["test/rain"] += 1
    return counts


def run_synthetic_rain(args) -> int:
    """``scripts/make_synthetic_rain.py``: the namespace of :func:`sfd_tools.csud.cli.synthetic_rain_parser`."""
    style = RainStyle(density=tuple(args.density), strength=tuple(args.strength))
    counts = make_synthetic_rain(
        args.root,
        args.size,
        args.test_size,
        args.per_photo,
        seed=args.seed,
        style=style,
        clean_from=args.clean_from,
        overwrite=args.overwrite,
    )
    written = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"wrote {sum(counts.values())} image(s) under {args.root}: {written}")
    return 0
