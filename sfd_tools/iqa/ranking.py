"""Does SFD-IQA rank quality? Graded degradations of held-out photos, SFD-IQA next to BasicSR NIQE.

1. (optional) :func:`train_ranking_discriminator`: SFDModel with a fixed bicubic generator
   (SFDBicubicUpsampler) trains Feat-D + TG-D alone on crops of scikit-image's training photos,
   HR vs bicubic x4 down-up, as in the SFD learning check.
2. :func:`run_ranking_report` (any trained checkpoint, e.g. the demo's): crops of the *held-out*
   photos are degraded at graded levels (level 0 = pristine, higher = worse). Per degradation it
   reports the ranking SROCC = SROCC(quality, -level), 1 = perfect order, for SFD-IQA (Q, q_feat,
   q_text) and NIQE (quality = -NIQE): pooled over all crops and levels, and the mean over crops of
   the per-crop SROCC (content held fixed), next to the zero-shot baseline of the same CLIP on the same
   tiles (fixed prompts "a high quality photo." / "a low quality photo.", CLIP-IQA style). Down-up
   is what the discriminator was trained against (blur is alike); noise and JPEG it never saw (reported, no
   target). Also images/s of SFD-IQA vs NIQE on the same 512x512 images on CPU. Writes ``report.md`` + ``report.json``.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from sfd_metric.sfd_iqa import SFDIQA
from sfd_metric.zero_shot_iqa import ZeroShotQuality
from sfd_tools.iqa.evaluate import niqe_score
from sfd_utils.files import output_dir, output_file
from sfd_utils.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS, load_photo, tiles

# name -> (what the level parameter is, parameter per level; level 0 = pristine, relation to training:
# "trained" = the fakes the discriminator was trained on, "alike" = a blur like them, "never seen")
DEGRADATIONS = {
    "downup": ("bicubic down-up factor", (1, 1.5, 2, 3, 4, 6), "trained"),
    "blur": ("Gaussian blur sigma (px)", (0, 0.5, 1, 1.5, 2, 3), "alike"),
    "noise": ("Gaussian noise sigma (/255)", (0, 3, 6, 10, 20, 35), "never seen"),
    "jpeg": ("JPEG quality", (None, 90, 70, 50, 30, 10), "never seen"),
}
SPEED_PHOTOS = ("astronaut", "ihc", "retina", "hubble_deep_field")  # each has a 512x512 crop


# -- degradations (uint8 RGB in, uint8 RGB out) -----------------------------------------------------
def degrade(img: np.ndarray, kind: str, level: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the same size degraded at ``level`` of ``DEGRADATIONS[kind]`` (0 = unchanged)."""
    import cv2

    param = DEGRADATIONS[kind][1][level]
    if level == 0:
        return img.copy()
    if kind == "downup":
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
        h, w = img.shape[:2]
        small = (max(1, round(h / param)), max(1, round(w / param)))
        # Same operators as the training fakes: antialiased bicubic down, bicubic up (SFDBicubicUpsampler).
        x = F.interpolate(x, size=small, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
        return (x[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), sigmaX=param, sigmaY=param, borderType=cv2.BORDER_REFLECT)
    if kind == "noise":
        rng = np.random.default_rng(seed * 1000 + level)
        noisy = img.astype(np.float32) + rng.normal(0.0, param, img.shape)
        return np.clip(noisy.round(), 0, 255).astype(np.uint8)
    if kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(param)])
        assert ok
        return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    raise ValueError(f"unknown degradation {kind!r}; choose from {list(DEGRADATIONS)}")


def heldout_crops(photos=HELDOUT_PHOTOS, size: int = 256, stride: int = 128) -> list[tuple[str, np.ndarray]]:
    """(name, (size, size, 3) uint8 RGB) crops of the held-out photos (never seen in training)."""
    return [(f"{p}_{i:02d}", c) for p in photos for i, c in enumerate(tiles(load_photo(p), size, stride))]


def ranking_srocc(quality: np.ndarray, levels: np.ndarray, groups: np.ndarray) -> dict:
    """SROCC(quality, -level): pooled over everything, and the mean of the per-group values."""
    pooled = float(stats.spearmanr(quality, -levels)[0])
    per = [float(stats.spearmanr(quality[groups == g], -levels[groups == g])[0]) for g in np.unique(groups)]
    per = [v for v in per if math.isfinite(v)]
    return {
        "pooled": pooled,
        "per_image_mean": float(np.mean(per)) if per else math.nan,
        "per_image_min": float(np.min(per)) if per else math.nan,
    }


# -- training (discriminator only, fixed bicubic generator) ------------------------------------------
def train_ranking_discriminator(
    out_dir: str,
    iters: int = 400,
    batch: int = 16,
    crop: int = 96,
    clip_model: str = "tiny-rn",
    clip_pretrained: str | None = None,
    lr_d: float = 1e-3,
    seed: int = 0,
) -> dict:
    """Train Feat-D + TG-D alone with SFDModel against bicubic x4 down-up of HR crops of TRAIN_PHOTOS.

    clip_pretrained None: a random ``clip_model`` with calibrated BatchNorm saved to a file (so the
    scorer can load the very same CLIP). Returns {checkpoint, clip_pretrained, iters, crop, seconds, ...}.
    """
    from basicsr.models import build_model

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, register_clip_config
    from sfd_arch.clip_provenance import prepare_tiny_clip
    from sfd_utils.photos import bicubic_lr, photo_crops
    from sfd_utils.presets import sfd_options

    register_clip_config(TINY_CLIP_CONFIGS)  # shipped tiny configs by name (quality-tiny-rn with its file)
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_hr = photo_crops(TRAIN_PHOTOS, crop, crop // 2)
    if clip_pretrained is None:
        clip_pretrained = prepare_tiny_clip(out_dir, clip_model, train_hr[rng.permutation(len(train_hr))[:64]])
    network_d = {"clip_model": clip_model, "clip_pretrained": clip_pretrained, "n_ctx": 8, "feat_mid_channels": 32}
    opt = sfd_options(
        os.path.join(out_dir, "disc_only"),
        network_d,
        {"type": "SFDBicubicUpsampler", "scale": 4},
        train={"optim_d": {"type": "Adam", "lr": lr_d, "betas": [0.9, 0.99]}},
    )
    model = build_model(opt)
    start = time.perf_counter()
    for it in range(1, iters + 1):
        hr = train_hr[rng.choice(len(train_hr), batch, replace=False)]
        model.feed_data({"lq": bicubic_lr(hr), "gt": hr})
        model.optimize_parameters(it)
    seconds = time.perf_counter() - start
    model.save(0, iters)  # BasicSR's own save path: net_d_<iters>.pth = {'params': state_dict}
    last = {k: round(float(v), 4) for k, v in model.log_dict.items()}
    return {
        "checkpoint": os.path.join(opt["path"]["models"], f"net_d_{iters}.pth"),
        "clip_model": clip_model,
        "clip_pretrained": clip_pretrained,
        "iters": iters,
        "batch": batch,
        "crop": crop,
        "train_photos": list(TRAIN_PHOTOS),
        "train_crops": len(train_hr),
        "seconds": round(seconds, 1),
        "last_log": last,
    }


# -- speed ------------------------------------------------------------------------------------------------
def speed_images() -> list[np.ndarray]:
    """The same four 512x512 uint8 RGB images for every speed comparison."""
    return [np.ascontiguousarray(load_photo(p)[:512, :512]) for p in SPEED_PHOTOS]


def speed_comparison(scorer: SFDIQA, rounds: int = 1) -> dict:
    """images/s of ``scorer`` (its device; pass a CPU one for the CPU figure) and BasicSR NIQE, one
    warm-up image each, then ``rounds`` passes over the four 512x512 images in this process."""
    imgs = speed_images()
    scorer.score(imgs[0])
    niqe_score(imgs[0])
    out = {}
    for name, fn in (("sfd_iqa", scorer.score), ("niqe", niqe_score)):
        t0 = time.perf_counter()
        for _ in range(rounds):
            for img in imgs:
                fn(img)
        out[name] = len(imgs) * rounds / (time.perf_counter() - t0)
    return {
        "images_per_s": out,
        "n_images": len(imgs) * rounds,
        "size": "512x512",
        "device": str(scorer.device),
        "torch_threads": torch.get_num_threads(),
        "clip_model": scorer.config.get("clip_model"),
        "tile": scorer.tile,
        "tiles_per_image": len(scorer.crop_layout(512, 512)[1]),
    }


# -- report ---------------------------------------------------------------------------------------------
def run_ranking_report(
    checkpoint: str,
    clip_pretrained: str | None = None,
    out_dir: str = "results/iqa_ranking",
    tile: int | None = None,
    device: str | None = None,
    photos=HELDOUT_PHOTOS,
    crop: int = 256,
    crop_stride: int = 128,
    niqe: bool = True,
    speed: bool = True,
    batch_size: int = 16,
    training: dict | None = None,
    progress: bool = True,
) -> str:
    """Score graded degradations of held-out photo crops with the SFD-IQA of ``checkpoint``; write
    ``out_dir/report.md`` and ``report.json``; return the report.md path.

    Works on any SFD discriminator checkpoint (``tile`` = its training patch size; None = recorded
    or 256). ``clip_pretrained`` overrides the CLIP weights recorded in the checkpoint. ``training``:
    facts about how the checkpoint was trained, copied into the report.
    """
    from tqdm import tqdm

    json_path, path = (output_file(output_dir(out_dir, "--out"), f, "--out") for f in ("report.json", "report.md"))
    scorer = SFDIQA.from_checkpoint(checkpoint, clip_pretrained, device, tile, batch_size=batch_size)
    zero_shot = ZeroShotQuality(scorer.disc.backbone, scorer.tile, scorer.stride, batch_size=batch_size)
    bases = heldout_crops(photos, crop, crop_stride)
    n_levels = len(next(iter(DEGRADATIONS.values()))[1])
    jobs = [(k, lv) for k in DEGRADATIONS for lv in range(1, n_levels)]
    records = []
    pristine = {}
    bar = tqdm(total=len(bases) * (1 + len(jobs)), unit="img", desc="ranking", disable=not progress)
    for b, (name, img) in enumerate(bases):
        pristine[name] = _score_all(scorer, zero_shot, img, niqe)
        bar.update()
        for kind, level in jobs:
            rec = _score_all(scorer, zero_shot, degrade(img, kind, level, seed=b), niqe)
            records.append({"image": name, "degradation": kind, "level": level, **rec})
            bar.update()
    bar.close()

    results = {}
    for kind, (what, params, trained) in DEGRADATIONS.items():
        rows = [{"image": n, "degradation": kind, "level": 0, **s} for n, s in pristine.items()]
        rows += [r for r in records if r["degradation"] == kind]
        levels = np.array([r["level"] for r in rows], dtype=np.float64)
        groups = np.array([r["image"] for r in rows])
        entry = {"parameter": what, "levels": list(params), "trained_against": trained, "srocc": {}}
        methods = ["q", "q_feat", "q_text", "zero_shot"] + (["niqe"] if niqe else [])
        for m in methods:
            vals = np.array([r[m] for r in rows], dtype=np.float64)
            quality = -vals if m == "niqe" else vals
            keep = np.isfinite(quality)
            entry["srocc"][m] = ranking_srocc(quality[keep], levels[keep], groups[keep])
            entry.setdefault("mean_per_level", {})[m] = [
                float(np.nanmean(vals[levels == lv])) for lv in range(len(params))
            ]
        results[kind] = entry

    report = {
        "checkpoint": os.path.abspath(checkpoint),
        "clip_model": scorer.config.get("clip_model"),
        "clip_pretrained": clip_pretrained or scorer.config.get("clip_pretrained"),
        "tile": scorer.tile,
        "device": str(scorer.device),
        "heldout_photos": list(photos),
        "n_base_images": len(bases),
        "base_crop": crop,
        "training": training,
        "degradations": results,
        "definition": "ranking SROCC = SROCC(quality, -level); quality = Q, q_feat, q_text, zero_shot (CLIP-IQA "
        "style p('a high quality photo.') vs 'a low quality photo.' on the same tiles), or -NIQE; 1 = "
        "perfect order. pooled: all crops and levels together; per_image_mean: mean over crops of the "
        "SROCC over that crop's levels.",
    }
    if speed:
        cpu_scorer = scorer if scorer.device.type == "cpu" else SFDIQA(scorer.disc, scorer.tile, device="cpu")
        report["speed_cpu"] = speed_comparison(cpu_scorer)
        if cpu_scorer is not scorer:
            scorer.disc.to(scorer.device)  # SFDIQA(...cpu) moved the shared discriminator
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    with open(path, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(render_ranking_markdown(report))
    return path


def _score_all(scorer: SFDIQA, zero_shot: ZeroShotQuality, img: np.ndarray, niqe: bool) -> dict:
    s = scorer.score(img)
    out = {"q": s.q, "q_feat": s.q_feat, "q_text": s.q_text, "zero_shot": zero_shot.score(img)}
    if niqe:
        out["niqe"] = niqe_score(img)
    return out


def _f(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3f}"


_RANKING_TRAIN_KEYS = ("iters", "batch", "crop", "train_photos", "seconds")


def _training_sentence(t: dict) -> str:
    """One line on how the checkpoint was trained: the ranking check's own run, or any caller's facts."""
    if all(k in t for k in _RANKING_TRAIN_KEYS):
        return (
            f"Discriminator trained here: SFDModel, fixed bicubic generator (Feat-D + TG-D only), {t['iters']} "
            f"iterations, batch {t['batch']}, {t['crop']}² HR crops of {', '.join(t['train_photos'])} vs bicubic x4 "
            f"down-up, {t['seconds']} s on CPU."
        )
    return "Training: " + "; ".join(f"{k} = {v}" for k, v in t.items()) + "."


def render_ranking_markdown(r: dict) -> str:
    t = r.get("training")
    lines = ["# SFD-IQA ranking check", ""]
    lines.append(
        f"Checkpoint `{r['checkpoint']}`; CLIP `{r['clip_model']}` (`{r['clip_pretrained']}`); tile {r['tile']}; "
        f"{r['n_base_images']} crops of {r['base_crop']}² from the held-out photos {', '.join(r['heldout_photos'])}, "
        "each at 6 levels per degradation (level 0 = pristine)."
    )
    if t:
        lines += ["", _training_sentence(t)]
    lines += [
        "",
        "Ranking SROCC = SROCC(quality, −level), 1 = perfect order (NIQE: quality = −NIQE). Zero-shot: the same "
        'CLIP, fixed prompts "a high quality photo." vs "a low quality photo." (CLIP-IQA style softmax), '
        "same tiles, no training.",
        "",
    ]
    has_niqe = any("niqe" in e["srocc"] for e in r["degradations"].values())
    head = "| degradation | levels | trained against | SFD-IQA Q pooled | Q per-image | q_feat pooled | q_text pooled |"
    sep = "|---|---|---|---|---|---|---|"
    has_zero_shot = any("zero_shot" in e["srocc"] for e in r["degradations"].values())
    if has_zero_shot:
        head += " zero-shot pooled | zero-shot per-image |"
        sep += "---|---|"
    if has_niqe:
        head += " NIQE pooled | NIQE per-image |"
        sep += "---|---|"
    lines += [head, sep]
    for kind, e in r["degradations"].items():
        s = e["srocc"]
        levels = ", ".join("none" if v is None else f"{v:g}" for v in e["levels"])
        cells = [
            kind,
            f"{e['parameter']}: {levels}",
            {"trained": "yes", "alike": "alike (a blur, as the fakes)"}.get(e["trained_against"], "no (never seen)"),
            _f(s["q"]["pooled"]),
            f"{_f(s['q']['per_image_mean'])} (min {_f(s['q']['per_image_min'])})",
            _f(s["q_feat"]["pooled"]),
            _f(s["q_text"]["pooled"]),
        ]
        if has_zero_shot:
            zs = s["zero_shot"]
            cells += [_f(zs["pooled"]), f"{_f(zs['per_image_mean'])} (min {_f(zs['per_image_min'])})"]
        if has_niqe:
            cells += [
                _f(s["niqe"]["pooled"]),
                f"{_f(s['niqe']['per_image_mean'])} (min {_f(s['niqe']['per_image_min'])})",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean score per level (level 0 → 5):", ""]
    for kind, e in r["degradations"].items():
        per = e["mean_per_level"]
        parts = [f"{m} " + " ".join(_f(v) for v in vals) for m, vals in per.items()]
        lines.append(f"- {kind}: " + "; ".join(parts))
    sp = r.get("speed_cpu")
    if sp:
        ips = sp["images_per_s"]
        lines += [
            "",
            f"## Speed on CPU ({sp['n_images']} images of {sp['size']}, {sp['torch_threads']} torch threads, one run)",
            "",
            "| method | images/s |",
            "|---|---|",
            f"| SFD-IQA ({sp['clip_model']}, tile {sp['tile']}, {sp['tiles_per_image']} tiles/image) | "
            f"{ips['sfd_iqa']:.2f} |",
            f"| BasicSR NIQE | {ips['niqe']:.2f} |",
        ]
    lines.append("")
    return "\n".join(lines)


def run_ranking_check(a) -> int:
    """``scripts/iqa_ranking_check.py``: the namespace of :func:`sfd_tools.iqa.cli.ranking_parser`."""
    training = None
    output_dir(a.out, "--out")  # a bad output folder is refused before anything is trained or loaded
    checkpoint, clip, tile = a.checkpoint, a.clip_pretrained, a.tile
    if checkpoint is None:
        training = train_ranking_discriminator(a.out, a.iters, a.batch, a.crop, a.clip_model, a.clip_pretrained)
        checkpoint, clip, tile = training["checkpoint"], None, tile or a.crop
    path = run_ranking_report(
        checkpoint, clip, a.out, tile, a.device, niqe=not a.no_niqe, speed=not a.no_speed, training=training
    )
    print(open(path, encoding="utf-8").read())
    print(f"report: {path}")
    return 0
