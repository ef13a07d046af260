"""Unpaired rainy/clean training crops for CSUD, usable by the stock BasicSR train entry.

Each item holds one rainy crop and one clean crop drawn independently: the rainy image follows
the sampler's index (so BasicSR's shuffling and distributed sampler apply), the clean image is a
random one. The two folders may have any sizes (the authors' loader crashed when the clean set was
the shorter one).
"""

from __future__ import annotations

import os
import os.path as osp
import random

import cv2
import numpy as np
import torch
from basicsr.data.data_util import paths_from_lmdb
from basicsr.utils import FileClient, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_images(folder: str, key: str = "folder") -> list[str]:
    """Sorted image files directly under ``folder`` (others ignored). ``key`` names the option in errors."""
    if not folder or not osp.isdir(folder):
        raise FileNotFoundError(f"{key}: image folder {folder!r} does not exist")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMG_EXTENSIONS))
    return [osp.join(folder, n) for n in names]


def decode_image(buf: bytes, path: str) -> np.ndarray:
    """Encoded bytes -> (H, W, 3) uint8 BGR (gray replicated, alpha dropped). OSError naming ``path``."""
    img = None
    if buf:
        img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot decode image {path!r} (empty, truncated or not an image)")
    return img


def read_image(path: str) -> np.ndarray:
    """(H, W, 3) uint8 BGR image from disk; OSError naming the file when it cannot be read."""
    with open(path, "rb") as f:
        return decode_image(f.read(), path)


def random_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Random ``size`` x ``size`` crop of an (H, W, C) image; smaller images are reflect-padded first."""
    h, w = img.shape[:2]
    if h < size or w < size:
        img = cv2.copyMakeBorder(img, 0, max(0, size - h), 0, max(0, size - w), cv2.BORDER_REFLECT_101)
        h, w = img.shape[:2]
    top, left = random.randint(0, h - size), random.randint(0, w - size)
    return img[top : top + size, left : left + size]


def flip_rotate(img: np.ndarray, hflip: bool, rot: bool) -> np.ndarray:
    """Random horizontal flip, and with ``rot`` random vertical flip and transpose (8 poses)."""
    if hflip and random.random() < 0.5:
        img = img[:, ::-1]
    if rot:
        if random.random() < 0.5:
            img = img[::-1]
        if random.random() < 0.5:
            img = img.transpose(1, 0, 2)
    return img


@DATASET_REGISTRY.register()
class CSUDUnpairedRainDataset(data.Dataset):
    """Unpaired rainy (domain A) and clean (domain B) crops.

    Options (YAML, under ``datasets.train``):
        dataroot_rain (str): folder (or ``.lmdb``) of real rainy images.
        dataroot_clean (str): folder (or ``.lmdb``) of clean images, unrelated to the rainy ones.
        io_backend (dict): BasicSR IO backend, ``{type: disk}`` or ``{type: lmdb}``.
        gt_size (int): crop side for both domains (required: the rain generator needs equal sizes).
        use_hflip (bool): random horizontal flips. Default: true.
        use_rot (bool): random vertical flips and transposes. Default: false (authors: flips only).

    Item: ``{'rain': (3, S, S), 'clean': (3, S, S)}`` float RGB in [0, 1], plus ``rain_path`` and
    ``clean_path``. Length: the larger folder.
    """

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = opt
        self.io_backend_opt = dict(opt.get("io_backend") or {"type": "disk"})
        self.file_client = None
        if not opt.get("gt_size"):
            raise KeyError("datasets.train.gt_size: CSUDUnpairedRainDataset needs a crop size for both domains")
        self.gt_size = int(opt["gt_size"])
        self.use_hflip = bool(opt.get("use_hflip", True))
        self.use_rot = bool(opt.get("use_rot", False))
        self.rain_paths = self._paths("dataroot_rain")
        self.clean_paths = self._paths("dataroot_clean")
        if self.io_backend_opt["type"] == "lmdb":
            self.io_backend_opt["db_paths"] = [opt["dataroot_rain"], opt["dataroot_clean"]]
            self.io_backend_opt["client_keys"] = ["rain", "clean"]

    def _paths(self, key: str) -> list[str]:
        folder = self.opt.get(key)
        if not folder:
            raise KeyError(f"datasets.train.{key}: missing (folder of images)")
        if self.io_backend_opt["type"] == "lmdb":
            if not osp.isdir(folder):
                raise FileNotFoundError(f"datasets.train.{key}: lmdb {folder!r} does not exist")
            paths = paths_from_lmdb(folder)
        else:
            paths = list_images(folder, f"datasets.train.{key}")
        if not paths:
            raise ValueError(f"datasets.train.{key}: no images ({', '.join(IMG_EXTENSIONS)}) in {folder!r}")
        return paths

    def __len__(self) -> int:
        return max(len(self.rain_paths), len(self.clean_paths))

    def _load(self, path: str, client_key: str) -> np.ndarray:
        if self.file_client is None:
            opt = dict(self.io_backend_opt)
            self.file_client = FileClient(opt.pop("type"), **opt)
        try:
            buf = self.file_client.get(path, client_key)
        except OSError as err:
            raise OSError(f"cannot read image {path!r}: {err}") from err
        return decode_image(buf, path)

    def _crop(self, img: np.ndarray) -> torch.Tensor:
        img = flip_rotate(random_crop(img, self.gt_size), self.use_hflip, self.use_rot)
        return img2tensor(np.ascontiguousarray(img).astype(np.float32) / 255.0, bgr2rgb=True, float32=True)

    def __getitem__(self, index: int) -> dict:
        rain_path = self.rain_paths[index % len(self.rain_paths)]
        clean_path = self.clean_paths[random.randrange(len(self.clean_paths))]  # independent of the rainy one
        rain = self._crop(self._load(rain_path, "rain"))
        clean = self._crop(self._load(clean_path, "clean"))
        return {"rain": rain, "clean": clean, "rain_path": rain_path, "clean_path": clean_path}
