"""Demo and test data from the photos scikit-image ships (no download): HR crops + bicubic LR.

Training photos and held-out photos are disjoint, so validation and the IQA ranking check are
run on images the discriminator never saw.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from sfd_utils.files import output_dir
from sfd_utils.images import write_image
from sfd_utils.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS, bicubic_down, load_photo, tiles

# The demo's layout: 128² training crops, 256² held-out crops (large enough for NIQE) every 128 px.
DEMO_SETTINGS = {"scale": 4, "train_size": 128, "val_size": 256, "val_stride": 128, "max_per_photo": 24}
SETTINGS_FILE = "settings.json"


def demo_data_ready(root: str, settings: dict | None = None) -> bool:
    """Whether ``root`` holds a demo data set written with ``settings`` (default: DEMO_SETTINGS)."""
    import json

    try:
        with open(os.path.join(root, SETTINGS_FILE), encoding="utf-8") as f:
            return json.load(f) == {**DEMO_SETTINGS, **(settings or {}), "photos": _photos()}
    except (OSError, ValueError):
        return False


def _photos() -> dict:
    return {"train": list(TRAIN_PHOTOS), "val": list(HELDOUT_PHOTOS)}


def prepare_demo_sr(
    root: str = "datasets/demo_sr",
    scale: int = 4,
    train_size: int = 128,
    val_size: int = 256,
    max_per_photo: int = 24,
    val_stride: int | None = None,
) -> dict:
    """Write ``root/{train,val}/{hr,lr_x<scale>}/*.png`` (RGB PNGs, BasicSR paired layout) from the
    training and held-out photos (no shared scene), and ``root/settings.json``.

    Training crops tile each photo without overlap; held-out crops are taken every ``val_stride``
    pixels (default: ``val_size``). Returns counts per split. Existing split folders are emptied
    first, so the data set is exactly what the settings describe.
    """
    import json
    import shutil

    output_dir(root, "--root")
    counts = {}
    for split, photos, size, stride in (
        ("train", TRAIN_PHOTOS, train_size, train_size),
        ("val", HELDOUT_PHOTOS, val_size, val_stride or val_size),
    ):
        hr_dir, lr_dir = os.path.join(root, split, "hr"), os.path.join(root, split, f"lr_x{scale}")
        for folder in (hr_dir, lr_dir):
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
        n = 0
        for name in photos:
            crops = tiles(load_photo(name), size, stride)
            keep = np.linspace(0, len(crops) - 1, min(len(crops), max_per_photo)).round().astype(int)
            for i in keep:  # evenly spaced, so no single large photo dominates
                crop = crops[i]
                fname = f"{name}_{int(i):03d}.png"
                write_image(os.path.join(hr_dir, fname), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                lr = bicubic_down(crop, scale)
                write_image(os.path.join(lr_dir, fname), cv2.cvtColor(lr, cv2.COLOR_RGB2BGR))
                n += 1
        counts[split] = n
    settings = {
        "scale": scale,
        "train_size": train_size,
        "val_size": val_size,
        "val_stride": val_stride or val_size,
        "max_per_photo": max_per_photo,
        "photos": _photos(),
    }
    with open(os.path.join(root, SETTINGS_FILE), "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1)
    return counts


def run_prepare_demo(args) -> int:
    """``scripts/prepare_demo_data.py``: the namespace of :func:`sfd_tools.sr.cli.prepare_demo_parser`."""
    counts = prepare_demo_sr(args.root, args.scale, args.size, args.val_size, val_stride=args.val_stride)
    print(f"wrote {counts['train']} training and {counts['val']} validation pairs under {args.root}")
    return 0
