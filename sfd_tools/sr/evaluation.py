"""Evaluate an SR folder against a GT folder: PSNR/SSIM/NIQE (BasicSR's functions), LPIPS, DISTS, SFD-IQA.

Images are paired by name: the SR stem minus its suffix (``baby_out.png`` with suffix ``_out``)
must equal the GT stem minus its own (usually none). Both are read as OpenCV reads them for
BasicSR's metrics: (H, W, 3) uint8 BGR (gray replicated, alpha dropped, 16-bit scaled to 8-bit).
Nothing is dropped silently: SR files without GT, GT files without SR, unreadable files and size
mismatches are listed in the result and left out of the means.

Conventions (BasicSR's test scripts): PSNR and SSIM on the Y channel with ``crop_border = scale``;
NIQE on Y of the SR image with the same crop; LPIPS, DISTS and SFD-IQA on the whole RGB image.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from sfd_tools.sr.inference import IMAGE_EXTS, pick_device
from sfd_utils.files import display, output_dir, output_file, plain_name
from sfd_utils.images import read_image

# Which way is better, per column; used for the summary and the perception-distortion plot.
BETTER = {
    "psnr": "higher",
    "ssim": "higher",
    "niqe": "lower",
    "lpips": "lower",
    "dists": "lower",
    "sfd_iqa": "higher",
    "sfd_iqa_feat": "higher",
    "sfd_iqa_text": "higher",
}
DEFAULT_METRICS = ("psnr", "ssim", "niqe")
# A column function gets (SR, GT) as (H, W, 3) uint8 BGR and returns {column name: value}.
ColumnFn = Callable[[np.ndarray, np.ndarray], dict]
NIQE_BLOCK = 96  # BasicSR's NIQE statistics need at least two such blocks


# -- pairing ---------------------------------------------------------------------------------------------
def _key(stem: str, suffix: str, regex: str | None) -> str:
    if regex:
        return re.sub(f"(?:{regex})$", "", stem)
    return stem[: -len(suffix)] if suffix and stem.endswith(suffix) else stem


def _index(folder: str, suffix: str, regex: str | None, what: str = "image") -> tuple[dict, list]:
    """{key: path} of a folder's images, and [(key, [paths])] for keys that several files share.

    FileNotFoundError when the folder does not exist, ValueError naming it when it holds no image.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder not found: {folder}")
    if not any(f.lower().endswith(IMAGE_EXTS) for f in os.listdir(folder)):
        raise ValueError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_EXTS)})")
    seen: dict[str, list[str]] = {}
    for f in sorted(os.listdir(folder)):
        if f.lower().endswith(IMAGE_EXTS):
            seen.setdefault(_key(os.path.splitext(f)[0], suffix, regex), []).append(os.path.join(folder, f))
    return {k: v[0] for k, v in seen.items() if len(v) == 1}, [(k, v) for k, v in seen.items() if len(v) > 1]


@dataclass
class Pairing:
    """SR/GT pairs matched by name, and everything that did not pair."""

    pairs: list = field(default_factory=list)  # (name, sr_path, gt_path)
    sr_without_gt: list = field(default_factory=list)
    gt_without_sr: list = field(default_factory=list)
    ambiguous: list = field(default_factory=list)  # "name: a.png, a.jpg"


def match_pairs(
    sr_dir: str,
    gt_dir: str,
    sr_suffix: str = "",
    gt_suffix: str = "",
    sr_regex: str | None = None,
    gt_regex: str | None = None,
) -> Pairing:
    """Pair images by stem after removing a literal suffix (or a regex anchored at the end).

    Example: ``sr_suffix="_out"`` pairs ``sr/baby_out.png`` with ``gt/baby.png``;
    ``sr_regex=r"_\\d+"`` pairs BasicSR's visualization ``baby_5000.png`` with ``baby.png``.
    """
    sr, sr_amb = _index(sr_dir, sr_suffix, sr_regex, "--sr")
    gt, gt_amb = _index(gt_dir, gt_suffix, gt_regex, "--gt")
    out = Pairing()
    out.pairs = [(k, sr[k], gt[k]) for k in sorted(set(sr) & set(gt))]
    out.sr_without_gt = [sr[k] for k in sorted(set(sr) - set(gt))]
    out.gt_without_sr = [gt[k] for k in sorted(set(gt) - set(sr))]
    out.ambiguous = [f"{k}: {', '.join(v)}" for k, v in sr_amb + gt_amb]
    return out


def read_bgr(path: str, max_pixels: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 BGR as BasicSR's metrics expect (sfd_utils.images.read_image: sized from the
    header first); UnreadableImage (a ValueError) with the reason when it cannot be read."""
    return read_image(path, cv2.IMREAD_COLOR, max_pixels)


def to_rgb_tensor(img: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 BGR -> (1, 3, H, W) float RGB in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).permute(2, 0, 1)[None].float().div(255).to(device)


# -- metric columns --------------------------------------------------------------------------------------
def psnr_column(crop_border: int) -> ColumnFn:
    from basicsr.metrics import calculate_psnr

    return lambda sr, gt: {"psnr": float(calculate_psnr(sr, gt, crop_border, "HWC", test_y_channel=True))}


def ssim_column(crop_border: int) -> ColumnFn:
    from basicsr.metrics import calculate_ssim

    return lambda sr, gt: {"ssim": float(calculate_ssim(sr, gt, crop_border, "HWC", test_y_channel=True))}


def niqe_column(crop_border: int) -> ColumnFn:
    from basicsr.metrics import calculate_niqe

    def column(sr: np.ndarray, gt: np.ndarray) -> dict:
        h, w = sr.shape[0] - 2 * crop_border, sr.shape[1] - 2 * crop_border
        if (h // NIQE_BLOCK) * (w // NIQE_BLOCK) < 2:  # BasicSR would fail with "SVD did not converge"
            raise ValueError(
                f"NIQE needs at least two {NIQE_BLOCK}x{NIQE_BLOCK} blocks after the border crop, the image has "
                f"{max(h, 0)}x{max(w, 0)} (e.g. 200x200 at scale 4)"
            )
        return {"niqe": float(calculate_niqe(sr, crop_border, "HWC", convert_to="y"))}

    return column


def model_column(name: str, model: torch.nn.Module, device: str = "auto") -> ColumnFn:
    """A full-reference network metric (LPIPS, DISTS) with ``model(sr, gt) -> (1,)`` on RGB [0, 1]."""
    dev = pick_device(device)
    model = model.to(dev).eval()

    def column(sr: np.ndarray, gt: np.ndarray) -> dict:
        return {name: float(model(to_rgb_tensor(sr, dev), to_rgb_tensor(gt, dev)).item())}

    return column


def sfd_iqa_column(checkpoint: str, clip_pretrained: str | None = None, device: str = "auto", **options) -> ColumnFn:
    """SFD-IQA of the SR image (no reference): columns ``sfd_iqa`` (Q), ``sfd_iqa_feat``, ``sfd_iqa_text``,
    all in [0, 1], higher is better. ``checkpoint`` is an SFD discriminator file (``net_d_<iter>.pth``)."""
    try:
        from sfd_metric.sfd_iqa import SFDIQA
    except ImportError as err:
        raise ImportError(f"SFD-IQA needs sfd_metric.sfd_iqa, which cannot be imported here ({err})") from err
    scorer = SFDIQA.from_checkpoint(checkpoint, clip_pretrained=clip_pretrained, device=pick_device(device), **options)

    def column(sr: np.ndarray, gt: np.ndarray) -> dict:
        s = scorer.score(np.ascontiguousarray(sr[:, :, ::-1]))  # the scorer takes RGB
        return {"sfd_iqa": s.q, "sfd_iqa_feat": s.q_feat, "sfd_iqa_text": s.q_text}

    column.provenance = scorer.provenance()  # which discriminator and CLIP weights scored, at which tile
    return column


def build_columns(
    metrics: Sequence[str] = DEFAULT_METRICS,
    crop_border: int = 4,
    lpips_weights: str | None = None,
    lpips_trunk: str | None = None,
    lpips_net: str = "alex",
    dists_weights: str | None = None,
    dists_trunk: str | None = None,
    sfd_iqa_checkpoint: str | None = None,
    sfd_iqa_clip: str | None = None,
    device: str = "auto",
) -> list[tuple[tuple[str, ...], ColumnFn]]:
    """(column names, column function) for the metric names asked for (``psnr ssim niqe lpips dists sfd_iqa``).

    Weight files are resolved here, before any image is read, so a missing file stops the run at
    once with a message naming it (see :mod:`sfd_tools.sr.perceptual_metrics`).
    """
    from sfd_tools.sr.perceptual_metrics import load_dists, load_lpips

    unknown = sorted(set(metrics) - {"psnr", "ssim", "niqe", "lpips", "dists", "sfd_iqa"})
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from psnr ssim niqe lpips dists sfd_iqa")
    out = []
    for name in metrics:
        if name == "psnr":
            out.append((("psnr",), psnr_column(crop_border)))
        elif name == "ssim":
            out.append((("ssim",), ssim_column(crop_border)))
        elif name == "niqe":
            out.append((("niqe",), niqe_column(crop_border)))
        elif name == "lpips":
            out.append((("lpips",), model_column("lpips", load_lpips(lpips_weights, lpips_trunk, lpips_net), device)))
        elif name == "dists":
            out.append((("dists",), model_column("dists", load_dists(dists_weights, dists_trunk), device)))
        elif name == "sfd_iqa":
            if not sfd_iqa_checkpoint:
                raise ValueError("sfd_iqa needs --sfd-iqa-checkpoint (an SFD discriminator net_d_<iter>.pth)")
            fn = sfd_iqa_column(sfd_iqa_checkpoint, sfd_iqa_clip, device)
            out.append((("sfd_iqa", "sfd_iqa_feat", "sfd_iqa_text"), fn))
    return out


# -- evaluation ------------------------------------------------------------------------------------------
def _finite_mean(values: list) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else None


def evaluate_pairs(
    pairing: Pairing,
    columns: list[tuple[tuple[str, ...], ColumnFn]],
    progress: bool = True,
    label: str | None = None,
    max_pixels: int | None = None,
) -> dict:
    """Run every column on every pair.

    Returns a JSON-ready dict: ``per_image`` rows ({name, sr, gt, <metric>: value}), ``mean``
    ({metric: mean over the images where it could be computed}), ``count``, ``better`` ({metric: higher|lower}) and
    ``problems`` (sr_without_gt, gt_without_sr, ambiguous, unreadable, size_mismatch, failed).
    """
    from tqdm import tqdm

    problems = {
        "sr_without_gt": list(pairing.sr_without_gt),
        "gt_without_sr": list(pairing.gt_without_sr),
        "ambiguous": list(pairing.ambiguous),
        "unreadable": [],
        "size_mismatch": [],
        "failed": [],
    }
    rows = []
    for name, sr_path, gt_path in tqdm(pairing.pairs, unit="img", disable=not progress):
        try:
            sr = read_bgr(sr_path, max_pixels)
        except ValueError as err:
            problems["unreadable"].append(f"{display(sr_path)}: {err}")
            continue
        try:
            gt = read_bgr(gt_path, max_pixels)
        except ValueError as err:
            problems["unreadable"].append(f"{display(gt_path)}: {err}")
            continue
        if sr.shape != gt.shape:
            problems["size_mismatch"].append(
                f"{name}: SR {sr.shape[0]}x{sr.shape[1]} vs GT {gt.shape[0]}x{gt.shape[1]} "
                "(crop the GT to a multiple of the scale, e.g. BasicSR's GTmod12)"
            )
            continue
        row = {"name": name, "sr": sr_path, "gt": gt_path}
        with warnings.catch_warnings(record=True) as caught:  # shown once per image, with its name
            warnings.simplefilter("always")
            for names, fn in columns:
                try:
                    row.update(fn(sr, gt))
                except Exception as err:  # one metric failing on one image (e.g. too small for NIQE) is reported
                    row.update(dict.fromkeys(names))
                    problems["failed"].append(f"{name} [{names[0]}]: {type(err).__name__}: {err}".splitlines()[0])
        for message in dict.fromkeys(str(w.message) for w in caught):
            tqdm.write(f"warning: {sr_path}: {message}", file=sys.stderr)
        rows.append(row)
    metric_names = [n for names, _ in columns for n in names]
    return {
        "label": label,
        "count": len(rows),
        "metrics": metric_names,
        "better": {k: BETTER.get(k, "unknown") for k in metric_names},
        "mean": {k: _finite_mean([r[k] for r in rows]) for k in metric_names},
        "counts": {k: sum(r[k] is not None for r in rows) for k in metric_names},
        "per_image": rows,
        "problems": problems,
    }


def evaluate_folders(
    sr_dir: str,
    gt_dir: str,
    scale: int = 4,
    crop_border: int | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    sr_suffix: str = "",
    gt_suffix: str = "",
    sr_regex: str | None = None,
    gt_regex: str | None = None,
    label: str | None = None,
    progress: bool = True,
    max_pixels: int | None = None,
    **column_options,
) -> dict:
    """:func:`match_pairs` + :func:`build_columns` + :func:`evaluate_pairs`; ``crop_border`` None = ``scale``.

    The returned dict also records the folders and settings, so a result file says how it was made.
    """
    crop = scale if crop_border is None else crop_border
    columns = build_columns(metrics, crop, **column_options)
    pairing = match_pairs(sr_dir, gt_dir, sr_suffix, gt_suffix, sr_regex, gt_regex)
    result = evaluate_pairs(pairing, columns, progress, label or os.path.basename(os.path.normpath(sr_dir)), max_pixels)
    result["settings"] = {
        "sr_dir": sr_dir,
        "gt_dir": gt_dir,
        "scale": scale,
        "crop_border": crop,
        "y_channel": True,
        "requested": list(metrics),
        "sr_suffix": sr_regex or sr_suffix,
        "gt_suffix": gt_regex or gt_suffix,
    }
    for _, fn in columns:
        if getattr(fn, "provenance", None):
            result["settings"]["sfd_iqa"] = fn.provenance
    return result


def n_problems(result: dict) -> int:
    return sum(len(v) for v in result["problems"].values())


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no inf/NaN (e.g. PSNR of identical images)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# SFD-IQA provenance written into the mean CSV (the JSON holds all of it under settings.sfd_iqa)
PROVENANCE_COLUMNS = ("checkpoint", "checkpoint_sha256", "clip_weights_file", "clip_weights_sha256", "tile")


def result_paths(out_dir: str, name: str) -> dict:
    """The three result files of :func:`write_results`; InputFileError when ``name`` is not a plain
    file name or a target is a folder or a link."""
    option = "--name (default: the label)"
    plain_name(name, option)
    return {
        "json": output_file(out_dir, f"{name}.json", option),
        "per_image_csv": output_file(out_dir, f"{name}_per_image.csv", option),
        "mean_csv": output_file(out_dir, f"{name}_mean.csv", option),
    }


def write_results(result: dict, out_dir: str, name: str = "eval") -> dict:
    """Write ``<name>.json`` (everything), ``<name>_per_image.csv`` and ``<name>_mean.csv`` (one row:
    label, count, the means) into ``out_dir`` and nowhere else (``name`` is one plain file name).
    Returns {'json', 'per_image_csv', 'mean_csv'} paths."""
    paths = result_paths(out_dir, name)
    output_dir(out_dir, "--out")
    with open(paths["json"], "w") as f:
        json.dump(_json_safe(result), f, indent=2, allow_nan=False)
    cols = ["name", *result["metrics"], "sr", "gt"]
    with open(paths["per_image_csv"], "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows({k: r.get(k) for k in cols} for r in result["per_image"])
    scorer = result.get("settings", {}).get("sfd_iqa") or {}
    scorer_cols = [k for k in PROVENANCE_COLUMNS if k in scorer]
    with open(paths["mean_csv"], "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        w = csv.writer(f)
        w.writerow(["label", "count", *result["metrics"], "problems", *(f"sfd_iqa_{k}" for k in scorer_cols)])
        w.writerow(
            [
                result["label"],
                result["count"],
                *(result["mean"][k] for k in result["metrics"]),
                n_problems(result),
                *(scorer[k] for k in scorer_cols),
            ]
        )
    return paths


def format_summary(result: dict) -> str:
    """Human-readable means and every problem, one per line."""
    lines = [f"{result['label']}: {result['count']} image(s) evaluated"]
    for k in result["metrics"]:
        mean = result["mean"][k]
        lines.append(f"  {k:<14} {'n/a' if mean is None else f'{mean:.4f}'}  ({result['better'][k]} is better)")
    for kind, items in result["problems"].items():
        if items:
            lines.append(f"  {kind.replace('_', ' ')}: {len(items)}")
            lines += [f"    {item}" for item in items]
    return "\n".join(lines)


def run_evaluate(a) -> int:
    """``scripts/evaluate_sr.py``: the namespace of :func:`sfd_tools.sr.cli.evaluate_parser`. Exit status
    (sfd_utils.cli): 1 when an image was left out (unpaired, unreadable, size mismatch: listed), 2 when
    nothing could be evaluated."""
    from sfd_utils.cli import skipped_status

    if "sfd_iqa" not in a.metrics and a.sfd_iqa_checkpoint:
        a.metrics.append("sfd_iqa")
    name = a.name or a.label or os.path.basename(os.path.normpath(a.sr))
    output_dir(a.out, "--out")  # cheap checks first: no metric is loaded for a bad output plan
    result_paths(a.out, name)
    result = evaluate_folders(
        a.sr,
        a.gt,
        scale=a.scale,
        crop_border=a.crop_border,
        metrics=a.metrics,
        sr_suffix=a.sr_suffix,
        gt_suffix=a.gt_suffix,
        sr_regex=a.sr_suffix_regex,
        gt_regex=a.gt_suffix_regex,
        label=a.label,
        progress=not a.quiet,
        lpips_weights=a.lpips_weights,
        lpips_trunk=a.lpips_trunk,
        lpips_net=a.lpips_net,
        dists_weights=a.dists_weights,
        dists_trunk=a.dists_trunk,
        sfd_iqa_checkpoint=a.sfd_iqa_checkpoint,
        sfd_iqa_clip=a.sfd_iqa_clip,
        device=a.device,
        max_pixels=a.max_pixels,
    )
    paths = write_results(result, a.out, name)
    print(format_summary(result))
    print(f"results: {paths['json']}, {paths['per_image_csv']}, {paths['mean_csv']}")
    if result["count"] == 0:
        raise ValueError("nothing was evaluated: check the folders and --sr-suffix/--gt-suffix")
    return skipped_status(n_problems(result))  # unpaired, unreadable, mismatched: listed above


def main(argv: list[str] | None = None) -> int:
    """The script's behaviour in-process: parse ``argv``, run, known failures as one ``error:`` line (exit 2)."""
    from sfd_tools.sr.cli import evaluate_parser
    from sfd_utils.cli import run_cli

    return run_cli(lambda _argv: run_evaluate(evaluate_parser().parse_args(argv)))
