"""Unpaired rain dataset (unequal folders, independence, clear errors) and the synthetic rain data."""

from __future__ import annotations

import os
import random

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from conftest import photo

from sfd_loss.csud_loss import channel_consistency
from sfd_tools.csud.synthetic_rain import (
    CLEAN_PHOTOS,
    RAIN_PHOTOS,
    TEST_PHOTOS,
    TRAIN_PHOTOS,
    add_rain,
    half_crops,
    make_synthetic_rain,
    rain_layer,
)


def write_images(folder, n, sizes=((50, 70),), name="img", source="astronaut"):
    folder.mkdir(parents=True, exist_ok=True)
    img = photo(source)
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        cv2.imwrite(str(folder / f"{name}{i}.png"), img[i : i + h, i : i + w][..., ::-1])
    return str(folder)


def dataset(rain, clean, **extra):
    opt = {"name": "t", "type": "CSUDUnpairedRainDataset", "dataroot_rain": rain, "dataroot_clean": clean}
    opt.update({"io_backend": {"type": "disk"}, "gt_size": 32, "use_hflip": True, "phase": "train", **extra})
    return build_dataset(opt)


@pytest.mark.parametrize("n_rain,n_clean", [(5, 2), (2, 5)])
def test_unequal_folders_any_sizes(tmp_path, n_rain, n_clean):
    # Sizes smaller than the crop are padded, larger ones cropped.
    rain = write_images(tmp_path / "rain", n_rain, sizes=((50, 70), (20, 41)), name="r")
    clean = write_images(tmp_path / "clean", n_clean, sizes=((33, 90), (64, 64)), name="c", source="coffee")
    ds = dataset(rain, clean, use_rot=True)
    assert len(ds) == max(n_rain, n_clean)
    seen_rain = set()
    for i in range(len(ds)):
        item = ds[i]
        assert item["rain"].shape == item["clean"].shape == (3, 32, 32)
        assert item["rain"].dtype == torch.float32 and 0 <= item["rain"].min() and item["rain"].max() <= 1
        assert os.path.dirname(item["clean_path"]) == clean
        seen_rain.add(item["rain_path"])
    assert len(seen_rain) == n_rain  # every rainy image is visited once per epoch


def test_clean_crop_drawn_independently_of_the_rainy_index(tmp_path):
    rain = write_images(tmp_path / "rain", 3, name="r")
    clean = write_images(tmp_path / "clean", 6, name="c", source="coffee")
    ds = dataset(rain, clean)
    random.seed(0)
    partners = {ds[0]["clean_path"] for _ in range(20)}
    assert len(partners) > 2


def test_rgb_order_and_trains_through_a_dataloader(tmp_path):
    folder = tmp_path / "red"
    folder.mkdir()
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 2] = 255  # BGR on disk
    cv2.imwrite(str(folder / "red.png"), red)
    ds = dataset(str(folder), str(folder), use_hflip=False)
    item = ds[0]
    assert item["rain"][0].mean() == 1 and item["rain"][1:].abs().sum() == 0  # RGB tensors
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=1)))
    assert batch["rain"].shape == (1, 3, 32, 32)


def test_clear_errors(tmp_path):
    good = write_images(tmp_path / "good", 2)
    with pytest.raises(FileNotFoundError, match="dataroot_clean.*nope"):
        dataset(good, str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="dataroot_rain: no images"):
        dataset(str(tmp_path / "empty"), good)
    with pytest.raises(KeyError, match="gt_size"):
        dataset(good, good, gt_size=None)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG not really")
    ds = dataset(good, str(bad))
    with pytest.raises(OSError, match="broken.png"):
        ds[0]


def test_synthetic_rain_is_near_achromatic_streaks():
    rng = np.random.default_rng(0)
    img = photo("chelsea")[:128, :128]
    rainy = add_rain(img, rng)
    diff = rainy.astype(np.float32) - img.astype(np.float32)
    assert (diff >= 0).all() and (diff.max(axis=-1) > 10).mean() > 0.005  # visible, additive
    t = torch.from_numpy(np.stack([img, rainy])).permute(0, 3, 1, 2).float() / 255
    cc = channel_consistency(t[:1], t[1:]).item()
    assert cc < 0.1 * np.abs(diff).mean() / 255 * 3  # channels change alike
    layer = rain_layer(64, 64, np.random.default_rng(1))
    assert layer.shape == (64, 64) and 0 <= layer.min() and layer.max() <= 1
    np.testing.assert_array_equal(add_rain(img, np.random.default_rng(3)), add_rain(img, np.random.default_rng(3)))


@pytest.mark.parametrize("clean_from", ["other_halves", "other_photos"])
def test_make_synthetic_rain_layout(tmp_path, clean_from):
    counts = make_synthetic_rain(
        str(tmp_path), train_size=96, test_size=96, max_per_photo=2, max_test_per_photo=2, clean_from=clean_from
    )
    assert all(v > 0 for v in counts.values())

    def photos(split):
        return {f.rsplit("_", 1)[0] for f in os.listdir(tmp_path / split)}

    if clean_from == "other_photos":
        assert photos("train/rain") <= set(RAIN_PHOTOS) and photos("train/clean") <= set(CLEAN_PHOTOS)
    else:  # every training photo in both sets, from opposite halves
        assert photos("train/rain") == photos("train/clean") == set(TRAIN_PHOTOS)
        sides = {f.rsplit("_", 1)[0]: f.rsplit("_", 1)[1][0] for f in os.listdir(tmp_path / "train/rain")}
        for f in os.listdir(tmp_path / "train/clean"):
            name, tail = f.rsplit("_", 1)
            assert {tail[0], sides[name]} == {"l", "r"}
    assert photos("test/rain") <= set(TEST_PHOTOS)
    assert not (set(RAIN_PHOTOS) & set(CLEAN_PHOTOS)) and not (set(TEST_PHOTOS) & set(RAIN_PHOTOS + CLEAN_PHOTOS))
    assert sorted(os.listdir(tmp_path / "test/rain")) == sorted(os.listdir(tmp_path / "test/clean"))
    name = sorted(os.listdir(tmp_path / "test/rain"))[0]
    rainy, clean = cv2.imread(str(tmp_path / "test/rain" / name)), cv2.imread(str(tmp_path / "test/clean" / name))
    assert rainy.shape == clean.shape == (96, 96, 3) and not np.array_equal(rainy, clean)
    with pytest.raises(ValueError, match="clean_from"):
        make_synthetic_rain(str(tmp_path), clean_from="same")


def test_half_crops_never_share_pixels():
    rain = dict(half_crops(TRAIN_PHOTOS[:2], 64, 50, rain=True))
    clean = dict(half_crops(TRAIN_PHOTOS[:2], 64, 50, rain=False))
    assert rain and clean and not set(rain) & set(clean)
    for a in rain.values():
        assert not any(np.array_equal(a, b) for b in clean.values())
