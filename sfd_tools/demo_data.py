"""Demo and test data from the photos scikit-image ships (no download): HR crops + bicubic LR.

Training photos and held-out photos are disjoint, so validation and the IQA ranking check are
run on images the discriminator never saw.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from sfd_utils.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS, bicubic_down, load_photo, tiles


def prepare_demo_sr(
    root: str = "datasets/demo_sr", scale: int = 4, train_size: int = 128, val_size: int = 128, max_per_photo: int = 24
) -> dict:
    """Write ``root/{train,val}/{hr,lr_x<scale>}/*.png`` (RGB PNGs, BasicSR paired layout).

    Returns counts per split. Existing folders are rewritten (deterministic content).
    """
    counts = {}
    for split, photos, size, stride in (
        ("train", TRAIN_PHOTOS, train_size, train_size),
        ("val", HELDOUT_PHOTOS, val_size, val_size * 2),
    ):
        hr_dir, lr_dir = os.path.join(root, split, "hr"), os.path.join(root, split, f"lr_x{scale}")
        os.makedirs(hr_dir, exist_ok=True)
        os.makedirs(lr_dir, exist_ok=True)
        n = 0
        for name in photos:
            crops = tiles(load_photo(name), size, stride)
            keep = np.linspace(0, len(crops) - 1, min(len(crops), max_per_photo)).round().astype(int)
            for i in keep:  # evenly spaced, so no single large photo dominates
                crop = crops[i]
                fname = f"{name}_{int(i):03d}.png"
                cv2.imwrite(os.path.join(hr_dir, fname), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                lr = bicubic_down(crop, scale)
                cv2.imwrite(os.path.join(lr_dir, fname), cv2.cvtColor(lr, cv2.COLOR_RGB2BGR))
                n += 1
        counts[split] = n
    return counts
