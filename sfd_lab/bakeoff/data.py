"""The bake-off's images: the photo set's splits as HR/LR pairs, training batches, the sanity rows.

- HR = a photo of the set (sfd_lab.photos: real photographs split by scene, or scikit-image's photos
  as a labelled fallback) cropped to a multiple of 4; LR = MATLAB-style bicubic ÷4 (BasicSR's
  ``imresize``, the SR benchmarks' degradation), computed once and cached as PNG under the run folder.
- Generators train on random crops of the *train* split; discriminator learning rates are chosen
  on the *val* split; everything in the report is measured on the whole images of the *test* split.
  No scene is in two splits (the photo set checks it).
- Sanity rows: bicubic, bicubic + Gaussian noise (σ 4 and 8 grey levels), unsharp-masked bicubic and
  unsharp masking + noise σ 4 — cheap tricks that no trained method should lose to on a measure of
  realism; a measure that ranks one above a trained contestant is flagged in the report.
"""

from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np
import torch

SCALE = 4


@dataclasses.dataclass(frozen=True)
class Pair:
    """One photo as (H, W, 3) uint8 RGB HR and its ÷4 LR; ``scene`` groups photos of one place."""

    name: str
    scene: str
    hr: np.ndarray
    lr: np.ndarray


def _read_png(path: str) -> np.ndarray | None:
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        img = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    return None if img is None else np.ascontiguousarray(img[..., ::-1])


def write_png(img: np.ndarray, path: str) -> str:
    """(H, W, 3) uint8 RGB as a PNG, written to a temporary name and renamed (never half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"could not encode {path}")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(buf.tobytes())
    os.replace(tmp, path)
    return path


def read_png(path: str) -> np.ndarray:
    """A PNG this module wrote, as (H, W, 3) uint8 RGB."""
    img = _read_png(path)
    if img is None:
        raise FileNotFoundError(f"{path}: missing or unreadable")
    return img


def load_pairs(photos, cache_dir: str) -> list[Pair]:
    """HR/LR pairs of ``photos`` (sfd_lab.photos.Photo list), LR cached as ``cache_dir/<name>.png``."""
    from sfd_utils.photos import bicubic_down

    pairs = []
    for p in photos:
        hr = p.rgb()
        hr = np.ascontiguousarray(hr[: hr.shape[0] // SCALE * SCALE, : hr.shape[1] // SCALE * SCALE])
        path = os.path.join(cache_dir, f"{p.name}.png")
        lr = _read_png(path)
        if lr is None or lr.shape[:2] != (hr.shape[0] // SCALE, hr.shape[1] // SCALE):
            lr = bicubic_down(hr, SCALE)
            write_png(lr, path)
        pairs.append(Pair(p.name, p.scene, hr, lr))
    if not pairs:
        raise ValueError("a split of the photo set is empty")
    return pairs


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) float -> (H, W, 3) uint8, clamped and rounded as an image file stores it."""
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)


# -- training batches ------------------------------------------------------------------------------------------
def data_order(lr_sizes: list[tuple[int, int]], iters: int, batch: int, seed: int, lr_crop: int) -> list[dict]:
    """The batches of a run: per iteration the photo indices (epochs of random permutations), LR crop
    offsets inside each photo and BasicSR-style flips/rotations. A function of the arguments only,
    so every contestant of a seed sees the same batches in the same order."""
    small = [i for i, (h, w) in enumerate(lr_sizes) if min(h, w) < lr_crop]
    if small:
        raise ValueError(f"crop of {lr_crop} LR pixels is larger than LR image(s) {small}")
    rng = np.random.default_rng([seed, 24])
    pool: list[int] = []
    order = []
    for _ in range(iters):
        idx = []
        while len(idx) < batch:
            if not pool:
                pool = list(rng.permutation(len(lr_sizes)))
            idx.append(int(pool.pop()))
        order.append(
            {
                "idx": idx,
                "top": [int(rng.integers(0, lr_sizes[i][0] - lr_crop + 1)) for i in idx],
                "left": [int(rng.integers(0, lr_sizes[i][1] - lr_crop + 1)) for i in idx],
                "hflip": (rng.random(batch) < 0.5).tolist(),
                "vflip": (rng.random(batch) < 0.5).tolist(),
                "rot90": (rng.random(batch) < 0.5).tolist(),
            }
        )
    return order


def make_batch(pairs: list[Pair], step: dict, lr_crop: int) -> dict:
    """{'lq', 'gt'} (B, 3, h, w) float of one ``data_order`` entry: paired crops, flips, rotations."""
    lqs, gts = [], []
    for k, i in enumerate(step["idx"]):
        t, s = step["top"][k], step["left"][k]
        lq = to_tensor(pairs[i].lr[t : t + lr_crop, s : s + lr_crop])
        gt = to_tensor(pairs[i].hr[t * SCALE : (t + lr_crop) * SCALE, s * SCALE : (s + lr_crop) * SCALE])
        for flag, dim in (("hflip", -1), ("vflip", -2)):
            if step[flag][k]:
                lq, gt = lq.flip(dim), gt.flip(dim)
        if step["rot90"][k]:
            lq, gt = lq.transpose(-1, -2), gt.transpose(-1, -2)
        lqs.append(lq)
        gts.append(gt)
    return {"lq": torch.stack(lqs).contiguous(), "gt": torch.stack(gts).contiguous()}


def probe_crops(pairs: list[Pair], n: int, lr_crop: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of ``n`` (LR, HR) validation crops, spread over the photos: what the discriminators'
    accuracy is measured on during training."""
    order = data_order([p.lr.shape[:2] for p in pairs], 1, n, seed, lr_crop)[0]
    order.update({k: [False] * n for k in ("hflip", "vflip", "rot90")})
    batch = make_batch(pairs, order, lr_crop)
    return batch["lq"], batch["gt"]


# -- sanity rows -----------------------------------------------------------------------------------------------
SANITY_ROWS = {
    "bicubic": "Bicubic",
    "bicubic_noise4": "Bicubic + noise σ 4/255",
    "bicubic_noise8": "Bicubic + noise σ 8/255",
    "bicubic_usm": "Bicubic, unsharp-masked",
    "bicubic_usm_noise4": "Bicubic, unsharp-masked + noise σ 4/255",
}
USM = {"sigma": 1.5, "amount": 1.0}  # unsharp mask: out = x + amount · (x − GaussianBlur(x, sigma))


def bicubic_up(lr: np.ndarray) -> np.ndarray:
    """The generators' skip path (SFDBicubicUpsampler: torch bicubic ×4), rounded to uint8."""
    from sfd_arch.bicubic_arch import SFDBicubicUpsampler

    with torch.no_grad():
        return to_uint8(SFDBicubicUpsampler(SCALE)(to_tensor(lr)[None])[0])


def _noise(img: np.ndarray, sigma: float, key: str) -> np.ndarray:
    seed = int.from_bytes(key.encode("utf-8")[:8].ljust(8, b"\0"), "little")
    noise = np.random.default_rng([seed, int(sigma * 100)]).normal(0.0, sigma, img.shape)
    return np.clip(np.round(img.astype(np.float64) + noise), 0, 255).astype(np.uint8)


def _usm(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float32)
    blur = cv2.GaussianBlur(x, (0, 0), USM["sigma"])
    return np.clip(np.round(x + USM["amount"] * (x - blur)), 0, 255).astype(np.uint8)


def sanity_output(row: str, pair: Pair) -> np.ndarray:
    """The sanity row ``row`` (a SANITY_ROWS key) for one photo; noise is seeded by the photo name."""
    if row not in SANITY_ROWS:
        raise ValueError(f"unknown sanity row {row!r}; choose from {', '.join(SANITY_ROWS)}")
    out = bicubic_up(pair.lr)
    if "usm" in row:
        out = _usm(out)
    for sigma in (4, 8):
        if row.endswith(f"noise{sigma}"):
            out = _noise(out, float(sigma), pair.name)
    return out
