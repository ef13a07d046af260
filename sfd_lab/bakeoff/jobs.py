"""The bake-off's tasks (sfd_lab.bakeoff.plan runs them, in worker processes or in this one).

Each function takes plain arguments (paths, numbers, the settings dataclass) and returns a JSON-able
dict; outputs that are images are written as PNGs under the run folder and named in the result.
Photos are read once per process (:func:`pairs_of`).
"""

from __future__ import annotations

import functools
import os

import numpy as np

from sfd_lab.bakeoff import contestants as bo
from sfd_lab.bakeoff.data import SANITY_ROWS, load_pairs, read_png, sanity_output, write_png
from sfd_lab.bakeoff.evaluate import measure_outputs, upscale


def worker_init() -> None:
    """A worker process: the plugin registered, one torch thread, BasicSR's INFO log off."""
    import logging

    import torch

    from sfd_utils.compat import install

    install()
    torch.set_num_threads(1)
    from basicsr.utils import get_root_logger

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, register_clip_config

    get_root_logger().setLevel(logging.WARNING)
    register_clip_config(TINY_CLIP_CONFIGS)


def photo_set_of(photos: dict):
    """The photo set a run uses: ``{"root": folder}`` (the prepared photos, or the labelled fallback
    when absent) or ``{"fallback": reason}`` (scikit-image's photos, e.g. for --quick)."""
    from sfd_lab.photos import fallback_set, photo_set

    if photos.get("fallback"):
        return fallback_set(photos["fallback"])
    return photo_set(root=photos["root"], allow_fallback=True)


@functools.lru_cache(maxsize=4)
def _pairs(photos_key: str, split: str, cache_dir: str):
    import json

    return load_pairs(photo_set_of(json.loads(photos_key)).split(split), os.path.join(cache_dir, split))


def pairs_of(photos: dict, split: str, cache_dir: str):
    """HR/LR pairs of one split (read once per process)."""
    import json

    return _pairs(json.dumps(photos, sort_keys=True), split, cache_dir)


def job_prepare(photos: dict, cache_dir: str) -> dict:
    """Every split's LR images written to the cache; the set's source, manifest hash and photo list."""
    ps = photo_set_of(photos)
    out = {"source": ps.source, "manifest_sha256": ps.manifest_sha256, "splits": {}}
    for split in ("train", "val", "test"):
        pairs = pairs_of(photos, split, cache_dir)
        out["splits"][split] = [{"name": p.name, "scene": p.scene, "hr_size": list(p.hr.shape[:2])} for p in pairs]
    out["photos"] = [
        {"name": p.name, "scene": p.scene, "split": p.split, "author": p.author, "licence": p.licence}
        for p in ps.train + ps.val + ps.test
    ]
    return out


def job_clips(out_dir: str, clip_pretrained: str | None, photos: dict, cache_dir: str) -> dict:
    """The SFD contestants' CLIP files: the quality-aware tiny CLIP (given, or trained once and cached
    by sfd_lab.checks.quality_clip) and random weights of its architecture, BatchNorm calibrated on
    64 crops of the training photos."""
    import torch

    from sfd_arch.clip_provenance import prepare_tiny_clip
    from sfd_lab.checks.quality_clip import cached_quality_clip, register_quality_clip
    from sfd_utils.downloads import sha256_file

    register_quality_clip()
    quality = clip_pretrained or cached_quality_clip()
    crops = []
    for p in pairs_of(photos, "train", cache_dir):
        h, w = p.hr.shape[:2]
        for t, s in ((0, 0), (h // 2 - 48, w // 2 - 48), (h - 96, w - 96)):
            crops.append(torch.from_numpy(np.ascontiguousarray(p.hr[t : t + 96, s : s + 96])).permute(2, 0, 1))
    calibration = (torch.stack(crops).float() / 255.0)[:64]
    random_file = prepare_tiny_clip(out_dir, bo.QUALITY_CLIP_MODEL, calibration)
    return {
        "quality": quality,
        "random": random_file,
        "quality_sha256": sha256_file(quality),
        "random_sha256": sha256_file(random_file),
    }


def job_stage1(photos: dict, cache_dir: str, out_dir: str, iters: int | None, seed: int) -> dict:
    return bo.train_stage1(pairs_of(photos, "train", cache_dir), out_dir, iters, seed)


def _write_outputs(outputs: list[np.ndarray], pairs, folder: str) -> str:
    for p, img in zip(pairs, outputs):
        write_png(img, os.path.join(folder, f"{p.name}.png"))
    return folder


def job_reference(
    row: str, photos: dict, cache_dir: str, out_dir: str, checkpoint: str | None = None, split: str = "test"
) -> dict:
    """A reference row on the whole photos of ``split`` (the held-out ones by default): ``hr`` (the photos
    themselves: NIQE only), a sanity row (sfd_lab.bakeoff.data.SANITY_ROWS) or ``stage1`` (the generator
    every run starts from)."""
    pairs = pairs_of(photos, split, cache_dir)
    if row == "hr":
        outputs = [p.hr for p in pairs]
    elif row == "stage1":
        net = bo.load_generator(checkpoint)
        outputs = [upscale(net, p.lr) for p in pairs]
    elif row in SANITY_ROWS:
        outputs = [sanity_output(row, p) for p in pairs]
    else:
        raise ValueError(f"unknown reference row {row!r}")
    per_image = measure_outputs(pairs, outputs, reference=row != "hr")
    folder = None if row == "hr" else _write_outputs(outputs, pairs, os.path.join(out_dir, "sr", row))
    return {"row": row, "per_image": per_image, "sr_dir": folder}


def _realism(pairs, outputs_per_seed: list[list[np.ndarray]], settings: dict, seed: int) -> dict:
    from sfd_lab.bakeoff.realism import realism_test

    hr: dict[str, list] = {}
    sr: dict[str, list] = {}
    for outputs in outputs_per_seed:  # seed-major: per scene, image i of seed k comes after seed k-1's
        for p, img in zip(pairs, outputs):
            hr.setdefault(p.scene, []).append(p.hr)
            sr.setdefault(p.scene, []).append(img)
    return realism_test(hr, sr, seed=seed, **settings)


def job_train(
    key: str,
    gan_weight: float,
    d_lr: float | None,
    seed: int,
    settings: bo.BakeoffSettings,
    clips: dict,
    stage1: str,
    photos: dict,
    cache_dir: str,
    out_dir: str,
    validate: bool = False,
) -> dict:
    """One fine-tuning run; with ``validate`` (the learning-rate choice) also its EMA generator's
    measures and realism test on the *validation* photos."""
    run_id = f"{key}-w{gan_weight:g}-lr{d_lr or 0:g}-s{seed}"
    train, val = pairs_of(photos, "train", cache_dir), pairs_of(photos, "val", cache_dir)
    facts = bo.finetune(
        key, gan_weight, d_lr, seed, settings, clips, stage1, train, val, os.path.join(out_dir, "runs", run_id)
    )
    if validate:
        net = bo.load_generator(facts["net_g"])
        outputs = [upscale(net, p.lr) for p in val]
        facts["val"] = {
            "per_image": measure_outputs(val, outputs),
            "realism": _realism(val, [outputs], {**dict(settings.realism), "folds": 2}, seed=0),
        }
    return facts


def job_test(method: str, net_g: str, photos: dict, cache_dir: str, out_dir: str) -> dict:
    """A trained generator (EMA) on the whole held-out photos: per-photo measures, outputs as PNGs."""
    pairs = pairs_of(photos, "test", cache_dir)
    net = bo.load_generator(net_g)
    outputs = [upscale(net, p.lr) for p in pairs]
    folder = _write_outputs(outputs, pairs, os.path.join(out_dir, "sr", method))
    return {"method": method, "net_g": net_g, "per_image": measure_outputs(pairs, outputs), "sr_dir": folder}


def job_realism(method: str, sr_dirs: list[str], photos: dict, cache_dir: str, settings: dict) -> dict:
    """The realism test of one method on the held-out photos, its seeds pooled (``sr_dirs``: one
    folder per seed); per-image accuracies come back per seed."""
    pairs = pairs_of(photos, "test", cache_dir)
    outputs = [[read_png(os.path.join(d, f"{p.name}.png")) for p in pairs] for d in sr_dirs]
    result = _realism(pairs, outputs, settings, seed=0)
    n = len(pairs)
    by_scene_image: dict[str, list] = {}
    for p in pairs:
        by_scene_image.setdefault(p.scene, []).append(p.name)
    per_seed: list[dict] = [{} for _ in sr_dirs]
    for scene, accs in result["per_image"].items():
        names = by_scene_image[scene]
        for j, acc in enumerate(accs):  # seed-major order (see _realism)
            per_seed[j // len(names)][names[j % len(names)]] = acc
    result.update(method=method, n_photos=n, per_seed_image=per_seed)
    return result


def job_capacity(key: str, settings: bo.BakeoffSettings, clips: dict) -> dict:
    """Trainable / frozen parameters and forward GFLOPs of a contestant's discriminator at the crop."""
    from basicsr.archs import build_network

    from sfd_lab.bakeoff.evaluate import capacity

    nd = bo.network_d(bo.CONTESTANTS[key], settings, clips)
    if nd is None:
        return {"trainable": 0, "frozen": 0, "gflops": 0.0}
    return capacity(build_network(dict(nd)), settings.gt_size)
