"""The program of ``scripts/train_quality_clip.py``: train the quality-aware tiny CLIP, judge it zero-shot
on held-out crops, and (``--results-dir DIR``) its before/after: the same recipe trained on scikit-image's
photos against the one trained on the train split of the lab's real photographs, both zero-shot ("a high
quality photo." vs "a low quality photo.") on crops neither trained on: scikit-image's held-out photos,
and the photo set's validation and test splits, written as ``quality_clip_photos-<date>.{json,md}``.
Nothing is chosen on these numbers (both CLIPs use one fixed recipe).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import torch

from sfd_lab.checks.quality_clip import (
    QUALITY_CLIP_MODEL,
    SCIKIT_IMAGE,
    QualityCLIPSettings,
    cached_quality_clip,
    evaluate_zero_shot,
    photo_set_settings,
    sidecar_path,
    train_quality_clip,
)
from sfd_utils.photos import HELDOUT_PHOTOS

MAX_CROPS_PER_PHOTO = 100  # the photo set's photos are 1-2.7 K a side: evenly spread non-overlapping crops


def heldout_sets(ps) -> dict[str, dict]:
    """{label: {photos, what}}: the crops both CLIPs are judged on (never a training photo of either)."""
    sets = {
        "scikit-image held-out": {
            "photos": HELDOUT_PHOTOS,
            "what": f"{', '.join(HELDOUT_PHOTOS)} (every non-overlapping crop)",
            "max_per_photo": None,
        }
    }
    if not ps.fallback:
        for split in ("val", "test"):
            photos = ps.split(split)
            sets[f"photo set {split}"] = {
                "photos": photos,
                "what": f"{len(photos)} photos / {len(ps.scenes(split))} scenes, <= {MAX_CROPS_PER_PHOTO} crops each",
                "max_per_photo": MAX_CROPS_PER_PHOTO,
            }
    return sets


def compare_quality_clips(new_file: str, new_settings: QualityCLIPSettings, crops: tuple[int, ...] = (64, 96)) -> dict:
    """Zero-shot AUC of the scikit-image CLIP (same recipe, scikit-image's training photos; trained once and
    cached) and of ``new_file`` (trained on the photo set's train split) on every held-out set and crop size."""
    from sfd_lab.photos import photo_set

    ps = photo_set()
    base = dataclasses.replace(new_settings, photos=QualityCLIPSettings().photos, photo_source=SCIKIT_IMAGE)
    clips = {"scikit-image photos (before)": (cached_quality_clip(base), base)}
    clips["photo set train split (after)"] = (new_file, new_settings)
    rows = []
    for label, spec in heldout_sets(ps).items():
        for crop in crops:
            for clip_label, (path, _) in clips.items():
                photos, most = spec["photos"], spec["max_per_photo"]
                z = evaluate_zero_shot(path, QUALITY_CLIP_MODEL, crop, photos=photos, max_per_photo=most)
                rows.append({"set": label, "crop": crop, "clip": clip_label, **z})
    return {
        "title": "Quality-aware tiny CLIP trained on scikit-image's photos vs the photo set's train split",
        "date": time.strftime("%Y-%m-%d"),
        "photo_source": ps.source,
        "manifest_sha256": ps.manifest_sha256,
        "sets": {k: v["what"] for k, v in heldout_sets(ps).items()},
        "clips": {
            k: {"file": os.path.basename(p), "settings_key": s.key(), "settings": dataclasses.asdict(s)}
            for k, (p, s) in clips.items()
        },
        "rows": rows,
    }


def render_markdown(report: dict, command: str, machine: str) -> str:
    lines = [
        f"# {report['title']} ({report['date']})",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}. Photos: {report['photo_source']} (manifest sha256 {report['manifest_sha256']}).",
        "",
        'Zero-shot: p("a high quality photo.") against "a low quality photo." per crop; AUC of sharp crops against',
        "the same crops degraded (bicubic down-up x3, Gaussian blur sigma 1.5, noise sigma 20/255, JPEG q30), pooled",
        "and per degradation. Both CLIPs: the same recipe (300 steps, batch 128, 64² crops, seed 0); only the",
        "training photos differ. No crop of either CLIP's training photos is scored; nothing was tuned on these.",
        "",
    ]
    for label, what in report["sets"].items():
        lines.append(f"- {label}: {what}")
    lines += [
        "",
        "| held-out set | crop | CLIP trained on | crops | AUC | downup | blur | noise | jpeg | accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        kinds = " | ".join(f"{r['per_kind'][k]['auc']:.3f}" for k in ("downup", "blur", "noise", "jpeg"))
        lines.append(
            f"| {r['set']} | {r['crop']}² | {r['clip']} | {r['n_crops']} | **{r['auc']:.3f}** | {kinds} | "
            f"{r['accuracy']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_comparison(report: dict, results_dir: str, command: str, machine: str) -> str:
    os.makedirs(results_dir, exist_ok=True)
    stem = os.path.join(results_dir, f"quality_clip_photos-{report['date']}")
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump({**report, "command": command, "machine": machine}, f, indent=1)
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write(render_markdown(report, command, machine))
    return stem + ".md"


def run_train_quality_clip(a) -> int:
    """``scripts/train_quality_clip.py``: the namespace of :func:`sfd_lab.checks.cli.quality_clip_parser`."""
    import platform

    from sfd_lab.checks.cli import quality_clip_command

    if a.results_dir and a.photos != "photo-set":
        raise ValueError("--results-dir compares the photo-set CLIP with the scikit-image one: give --photos photo-set")
    if a.threads:
        torch.set_num_threads(a.threads)
    photos = photo_set_settings() if a.photos == "photo-set" else QualityCLIPSettings()
    settings = dataclasses.replace(photos, steps=a.steps, batch=a.batch, lr=a.lr, seed=a.seed)
    print(f"training photos: {', '.join(settings.photos)} ({settings.photo_source})", flush=True)
    facts = train_quality_clip(a.out, settings)
    for size, z in facts["zero_shot_heldout"].items():
        kinds = ", ".join(f"{k} {v['auc']:.3f}" for k, v in z["per_kind"].items())
        print(
            f"zero-shot on {z['n_crops']} held-out {size}² crops: AUC {z['auc']:.3f}, accuracy {z['accuracy']:.3f} "
            f"(AUC per degradation: {kinds})"
        )
    print(f"weights: {a.out}\nfacts:   {sidecar_path(a.out)}")
    print(json.dumps({"seconds": facts["seconds"], "settings_key": facts["settings_key"]}))
    if a.results_dir:
        report = compare_quality_clips(a.out, settings)
        cpu = f"{platform.processor() or platform.machine()} ({os.cpu_count()} logical CPUs)"
        machine = f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
        print(f"before/after: {write_comparison(report, a.results_dir, quality_clip_command(a), machine)}")
    return 0
