"""SFD-IQA evaluation of an image, a folder or an opinion-score data set (``scripts/sfd_iqa_eval.py``).

Writes ``scores.csv`` and ``scores.json`` (per image: Q, q_feat, q_text, crops, MOS and baselines if
any; skipped files with the reason), ``report.md`` and, with MOS, ``scatter.png`` (score vs MOS with
the fitted logistic curve). With MOS it reports SROCC, KRCC, PLCC raw and PLCC/RMSE after the
4-parameter (optionally 5-parameter) logistic fit for Q, q_feat, q_text and every baseline.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from typing import Callable

import cv2
import numpy as np

from sfd_iqa_tools.mos_data import LIVEC_N_TRAIN, InputError, UnreadableImage, read_image, resolve_inputs
from sfd_iqa_tools.stats import correlations, fit_logistic
from sfd_metric.sfd_iqa import SFDIQA

COMPONENTS = ("q", "q_feat", "q_text")
# Baselines usable here: name -> (function of an RGB image, higher_is_better). NIQE ships with BasicSR;
# learned baselines (CLIP-IQA, MUSIQ, ...) need weights this package never downloads.
BASELINES = ("niqe",)


def niqe_score(img: np.ndarray) -> float:
    """BasicSR's NIQE (MATLAB-compatible, Y channel, no border crop) of an (H, W, 3) RGB image of any
    sample type (uint8, uint16, float [0, 1]); lower is better. Needs two 96x96 blocks (e.g. 96x192)."""
    from basicsr.metrics.niqe import calculate_niqe

    if img.dtype == np.uint16:
        scaled = img.astype(np.float32) / 257.0  # 65535 -> 255
    elif np.issubdtype(img.dtype, np.floating):
        scaled = np.clip(img, 0, 1).astype(np.float32) * 255.0
    else:
        scaled = img.astype(np.float32)
    h, w = img.shape[:2]
    if (h // 96) * (w // 96) < 2:  # its patch statistics need a covariance over >= 2 blocks
        raise ValueError(f"NIQE needs at least two 96x96 blocks, image is {w}x{h}")
    value = float(calculate_niqe(np.ascontiguousarray(scaled[..., ::-1]), 0))
    if not np.isfinite(value):
        raise ValueError("NIQE is undefined for this image (degenerate block statistics)")
    return value


def baseline_fn(name: str) -> tuple[Callable[[np.ndarray], float], bool]:
    """(score function of an RGB image, higher_is_better) of a baseline named on the command line."""
    if name == "niqe":
        return niqe_score, False
    raise InputError(
        f"--compare {name!r}: only {list(BASELINES)} can run here (NIQE ships with BasicSR); learned "
        "baselines need their weights on this machine and are not wired in"
    )


def run_eval(
    source: str,
    checkpoint: str | None = None,
    out_dir: str | None = None,
    *,
    scorer: SFDIQA | None = None,
    clip_pretrained: str | None = None,
    tile: int | None = None,
    stride: int | None = None,
    alpha: float = 0.5,
    batch_size: int = 16,
    device: str | None = None,
    bf16: bool = False,
    compare: tuple[str, ...] = (),
    dataset: str = "auto",
    mos: str | None = None,
    image_dir: str | None = None,
    name_col: str | None = None,
    mos_col: str | None = None,
    split: str | None = None,
    livec_include_train: bool = False,
    recursive: bool = False,
    logistic: tuple[int, ...] = (4,),
    limit: int | None = None,
    progress: bool = True,
    plot: bool = True,
) -> dict:
    """Score ``source`` (image / folder / MOS table / KonIQ / LIVE Challenge) and write the outputs.

    Either ``checkpoint`` (+ scorer options, see :class:`SFDIQA`) or a ready ``scorer``. Returns the
    summary that is also written to ``out_dir/scores.json``. Unreadable files are skipped and listed;
    raises InputError when nothing can be scored (empty folder, missing MOS column, all unreadable).
    """
    from tqdm import tqdm

    items, layout = resolve_inputs(
        source, dataset, mos, image_dir, name_col, mos_col, split, livec_include_train, recursive
    )
    if limit:
        items = items[:limit]
    baselines = {name: baseline_fn(name) for name in dict.fromkeys(compare)}
    if scorer is None:
        if not checkpoint:
            raise InputError("give an SFD discriminator checkpoint (--checkpoint)")
        scorer = SFDIQA.from_checkpoint(checkpoint, clip_pretrained, device, tile, stride, alpha, batch_size, bf16)
    if out_dir is None:
        stem = os.path.splitext(os.path.basename(os.path.normpath(source)))[0] or "input"
        out_dir = os.path.join("results", "sfd_iqa", stem)
    os.makedirs(out_dir, exist_ok=True)
    has_mos = any(it.mos is not None for it in items)

    rows, skipped, seconds = [], [], {"sfd_iqa": 0.0, **{b: 0.0 for b in baselines}}
    n_ok = dict.fromkeys(seconds, 0)  # speed counts only images a method actually scored
    _warm_up(scorer, baselines)
    bar = tqdm(items, unit="img", desc="SFD-IQA", disable=not progress, dynamic_ncols=True)
    for item in bar:
        try:
            img = read_image(item.path)
        except UnreadableImage as err:
            skipped.append({"name": item.name, "path": item.path, "reason": str(err)})
            bar.write(f"skipped {item.name}: {err}")
            continue
        t0 = time.perf_counter()
        s = scorer.score(img, name=item.path)
        seconds["sfd_iqa"] += time.perf_counter() - t0
        n_ok["sfd_iqa"] += 1
        row = {"name": item.name, **s.as_dict(), "height": int(img.shape[0]), "width": int(img.shape[1])}
        if item.mos is not None:
            row["mos"] = item.mos
        for name, (fn, _) in baselines.items():
            t0 = time.perf_counter()
            try:
                row[name] = fn(img)
            except Exception as err:  # e.g. NIQE on an image smaller than its 96-pixel blocks
                row[name] = math.nan
                row[f"{name}_error"] = f"{type(err).__name__}: {err}"
            else:
                seconds[name] += time.perf_counter() - t0
                n_ok[name] += 1
        rows.append(row)
    bar.close()
    if not rows:
        detail = "; ".join(f"{s['name']}: {s['reason']}" for s in skipped[:5])
        raise InputError(f"no image of {source!r} could be scored ({len(skipped)} skipped: {detail})")

    summary = {
        "source": os.path.abspath(source),
        "layout": layout,
        "settings": _settings(scorer, compare, logistic, layout, livec_include_train),
        "n_items": len(items),
        "n_scored": len(rows),
        "n_skipped": len(skipped),
        "skipped": skipped,
        "speed_images_per_s": {k: (n_ok[k] / v if n_ok[k] and v > 0 else math.nan) for k, v in seconds.items()},
        "n_scored_by": n_ok,
        "correlations": {},
        "images": rows,
        "files": {},
    }
    if has_mos:
        mos_values = [r.get("mos", math.nan) for r in rows]
        for comp in COMPONENTS:
            summary["correlations"][comp] = correlations([r[comp] for r in rows], mos_values, logistic)
        for name, (_, higher) in baselines.items():
            oriented = [r[name] if higher else -r[name] for r in rows]
            summary["correlations"][name] = correlations(oriented, mos_values, logistic)
    summary["files"] = _write_outputs(summary, out_dir, tuple(baselines), has_mos, logistic, plot)
    return summary


def _settings(scorer: SFDIQA, compare, logistic, layout, livec_include_train) -> dict:
    cfg = scorer.config
    s = {
        "checkpoint": getattr(scorer, "checkpoint", None),
        "clip_model": cfg.get("clip_model"),
        "clip_pretrained": cfg.get("clip_pretrained"),
        "feat_layers": cfg.get("feat_layers"),
        "use_feat": cfg.get("use_feat"),
        "use_text": cfg.get("use_text"),
        "tile": scorer.tile,
        "stride": scorer.stride or scorer.tile,
        "alpha": scorer.alpha,
        "batch_size": scorer.batch_size,
        "device": str(scorer.device),
        "bf16": scorer.bf16,
        "compare": list(compare),
        "logistic": list(logistic),
        "orientation": "correlations use each score oriented so that higher = better (NIQE: -NIQE)",
        "alpha_channel": "dropped (not composited)",
    }
    if layout == "livec":
        s["livec_training_images"] = "included" if livec_include_train else f"first {LIVEC_N_TRAIN} excluded"
    return s


def _write_outputs(summary: dict, out_dir: str, baselines: tuple, has_mos: bool, logistic, plot: bool) -> dict:
    files = {"csv": os.path.join(out_dir, "scores.csv"), "json": os.path.join(out_dir, "scores.json")}
    fields = ["name", *COMPONENTS, "n_crops", "height", "width"]
    fields += ["mos"] if has_mos else []
    for b in baselines:
        fields += [b, f"{b}_error"]
    with open(files["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in summary["images"]:
            writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    if has_mos and plot:
        files["scatter"] = os.path.join(out_dir, "scatter.png")
        plot_scatter(summary["images"], ("q", *baselines), files["scatter"], logistic[0])
    files["report"] = os.path.join(out_dir, "report.md")
    summary["files"] = files
    with open(files["report"], "w", encoding="utf-8") as f:
        f.write(render_markdown(summary))
    with open(files["json"], "w", encoding="utf-8") as f:
        json.dump(_json_safe(summary), f, indent=2)
    return files


def _json_safe(obj):
    """NaN -> None (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def plot_scatter(rows: list[dict], methods: tuple, path: str, params: int = 4) -> None:
    """One panel per method: score (x) vs MOS (y) and the fitted logistic curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 4.2), squeeze=False)
    for ax, m in zip(axes[0], methods):
        pairs = np.array([(r[m], r["mos"]) for r in rows if "mos" in r and math.isfinite(r[m])], dtype=np.float64)
        if len(pairs) == 0:
            continue
        x, y = pairs[:, 0], pairs[:, 1]
        ax.scatter(x, y, s=10, alpha=0.6)
        fit = fit_logistic(x, y, params)
        if fit is not None:
            xs = np.linspace(x.min(), x.max(), 200)
            ax.plot(xs, fit[0](xs), "r-", label=f"{params}-parameter logistic fit")
            ax.legend(loc="best", fontsize=8)
        label = "SFD-IQA Q" if m == "q" else m.upper()
        rho = correlations(x, y, ())["srocc"] if len(x) >= 3 else math.nan
        ax.set_title(f"{label} (SROCC {rho:+.3f}, n={len(x)})")
        ax.set_xlabel(label + (" (lower = better)" if m == "niqe" else " (higher = better)"))
        ax.set_ylabel("MOS")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _warm_up(scorer: SFDIQA, baselines: dict) -> None:
    """One untimed pass of every method on a photo-like patch, so the reported speed does not include
    one-off costs (allocator growth, kernel selection, NIQE's parameter file)."""
    side = max(scorer.tile, 192)
    rng = np.random.default_rng(0)
    patch = cv2.GaussianBlur(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), (0, 0), 2)
    scorer.score(patch)
    for fn, _ in baselines.values():
        try:
            fn(patch)
        except Exception:  # noqa: BLE001 - a failing baseline is reported per image later
            pass


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4f}"


def render_markdown(s: dict) -> str:
    st = s["settings"]
    lines = [
        "# SFD-IQA evaluation",
        "",
        f"Input `{s['source']}` ({s['layout']}): {s['n_scored']} images scored, {s['n_skipped']} skipped.",
        f"Checkpoint `{st['checkpoint']}`, CLIP `{st['clip_model']}` ({st['clip_pretrained']}), tile {st['tile']}, "
        f"stride {st['stride']}, alpha {st['alpha']}, device {st['device']}, bf16 {st['bf16']}.",
        "",
    ]
    if s["correlations"]:
        ks = st["logistic"]
        head = "| score | n | SROCC | KRCC | PLCC raw | " + " | ".join(f"PLCC {k}PL | RMSE {k}PL" for k in ks) + " |"
        lines += [head, "|" + "---|" * (5 + 2 * len(ks))]
        for name, c in s["correlations"].items():
            cells = [name, str(c["n"]), _fmt(c["srocc"]), _fmt(c["krcc"]), _fmt(c["plcc_raw"])]
            for k in ks:
                cells += [_fmt(c.get(f"plcc_logistic{k}")), _fmt(c.get(f"rmse_logistic{k}"))]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"({st['orientation']}.)", ""]
    else:
        n = len(s["images"])
        mean = {c: sum(r[c] for r in s["images"]) / n for c in COMPONENTS}
        what = "Scores" if n == 1 else f"Mean over {n} images"
        lines += [f"{what}: Q {mean['q']:.4f}, q_feat {mean['q_feat']:.4f}, q_text {mean['q_text']:.4f}", ""]
    speed = ", ".join(
        f"{k} {_fmt(v)} images/s" if math.isfinite(v) else f"{k} n/a" for k, v in s["speed_images_per_s"].items()
    )
    lines += [
        f"Speed (scoring only, after one untimed warm-up, this run; images a method could not score are "
        f"left out): {speed}.",
        "",
    ]
    for name in s["settings"]["compare"]:
        failed = [r for r in s["images"] if f"{name}_error" in r]
        if failed:
            lines += [
                f"{name} could not score {len(failed)} of {len(s['images'])} images (column `{name}_error`), "
                f"e.g. `{failed[0]['name']}`: {failed[0][f'{name}_error']}",
                "",
            ]
    if s["skipped"]:
        lines += [f"## Skipped files ({s['n_skipped']})", ""]
        lines += [f"- `{x['name']}`: {x['reason']}" for x in s["skipped"]]
        lines.append("")
    return "\n".join(lines)


# -- command line --------------------------------------------------------------------------------------
EPILOG = """\
inputs (INPUT, detected automatically unless --dataset is given):
  an image file          scores one image
  a folder               scores every file in it (--recursive for subfolders); files that are not
                         readable images are reported by name and skipped
  a .csv/.tsv/.txt table image name + MOS columns (--name-col, --mos-col; default: the first of
                         image_name/image/name/filename/... and MOS/mos/score); images are looked up
                         in --image-dir (default: the table's folder). Or give a folder + --mos TABLE.
  KonIQ-10k              the folder holding koniq10k_scores_and_distributions.csv (columns image_name,
                         MOS) and 1024x768/ (--image-dir for another resolution)
  LIVE Challenge         the folder holding Data/AllImages_release.mat, Data/AllMOS_release.mat and
                         Images/; the first 7 entries (t1..t7.bmp, the release's training images) are
                         left out (1162 images, the usual protocol) unless --livec-include-train

images: grayscale is replicated to 3 channels; an alpha channel is dropped (not composited); 16-bit
  images are scaled by 1/65535, float images clipped to [0, 1]; EXIF orientation is applied.
  Images smaller than a tile are resized up (bicubic, aspect kept); large images are cut into tiles
  processed --batch-size at a time, so memory does not grow with the image.

scores (higher = better, all in [0, 1]), per tile c of the image:
  q_feat = mean over Feat-D layers and positions of sigmoid(Feat-D logit)
  q_text = sigmoid(TG-D logit of the learnable prompt pair)
  Q      = mean over tiles of alpha*q_feat + (1-alpha)*q_text

outputs (in --out): scores.csv, scores.json (per image + summary + skipped files), report.md and,
  with MOS, scatter.png. With MOS: SROCC, KRCC, PLCC raw, PLCC and RMSE after the 4-parameter
  logistic fit (--logistic 5 or both for the 5-parameter one), for Q, q_feat, q_text and each
  --compare baseline (NIQE is negated so that all correlations are positive when they agree).

examples:
  python scripts/sfd_iqa_eval.py -c experiments/run/models/net_d_latest.pth photo.png
  python scripts/sfd_iqa_eval.py -c net_d.pth /data/koniq10k --compare niqe --device cuda --bf16
  python scripts/sfd_iqa_eval.py -c net_d.pth my_images/ --mos scores.tsv --name-col file --mos-col mean
"""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sfd_iqa_eval.py",
        description="SFD-IQA: opinion-unaware no-reference image quality from a trained SFD discriminator "
        "(Feat-D + learnable prompt pair). Scores images; with opinion scores, reports correlations.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="image, folder, MOS table, KonIQ-10k or LIVE Challenge folder (see below)")
    p.add_argument("-c", "--checkpoint", required=True, help="SFD discriminator checkpoint (net_d_<iter>.pth)")
    p.add_argument(
        "--clip-pretrained",
        default=None,
        help="CLIP weights: a local file (or cached open_clip tag) of the CLIP the discriminator was trained "
        "with; default: what the checkpoint records",
    )
    p.add_argument("-o", "--out", default=None, help="output folder (default: results/sfd_iqa/<input name>)")
    g = p.add_argument_group("data set")
    g.add_argument(
        "--dataset", default="auto", choices=("auto", "image", "folder", "table", "koniq", "livec"), help="layout"
    )
    g.add_argument("--mos", default=None, help="CSV/TSV with image names and MOS for a folder INPUT")
    g.add_argument("--name-col", default=None, help="image name column of the MOS table")
    g.add_argument("--mos-col", default=None, help="MOS column of the MOS table (higher = better)")
    g.add_argument("--image-dir", default=None, help="folder the table's image names are relative to")
    g.add_argument("--split", default=None, help="keep only rows whose 'set' column equals this (e.g. test)")
    g.add_argument("--livec-include-train", action="store_true", help="LIVE Challenge: keep t1..t7.bmp")
    g.add_argument("--recursive", action="store_true", help="folder INPUT: include subfolders")
    g.add_argument("--limit", type=_positive, default=None, help="score only the first N images")
    s = p.add_argument_group("scoring")
    s.add_argument(
        "--tile", type=_positive, default=None, help="tile size (default: the checkpoint's training crop, else 256)"
    )
    s.add_argument("--stride", type=_positive, default=None, help="tile step (default: tile; smaller = overlapping)")
    s.add_argument("--alpha", type=float, default=0.5, help="weight of q_feat in Q (default: %(default)s)")
    s.add_argument("--batch-size", type=_positive, default=16, help="tiles per forward (default: %(default)s)")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    s.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the CLIP/discriminator forward")
    r = p.add_argument_group("report")
    r.add_argument(
        "--compare", action="append", default=[], choices=BASELINES, help="also run this baseline (BasicSR NIQE)"
    )
    r.add_argument("--logistic", default="4", choices=("4", "5", "both"), help="logistic fit(s) for PLCC")
    r.add_argument("--no-plot", action="store_true", help="do not write scatter.png")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logistic = (4, 5) if a.logistic == "both" else (int(a.logistic),)
    try:
        s = run_eval(
            a.input,
            a.checkpoint,
            a.out,
            clip_pretrained=a.clip_pretrained,
            tile=a.tile,
            stride=a.stride,
            alpha=a.alpha,
            batch_size=a.batch_size,
            device=a.device,
            bf16=a.bf16,
            compare=tuple(a.compare),
            dataset=a.dataset,
            mos=a.mos,
            image_dir=a.image_dir,
            name_col=a.name_col,
            mos_col=a.mos_col,
            split=a.split,
            livec_include_train=a.livec_include_train,
            recursive=a.recursive,
            logistic=logistic,
            limit=a.limit,
            progress=not a.quiet,
            plot=not a.no_plot,
        )
    except (InputError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(render_markdown(s))
    for kind, path in s["files"].items():
        print(f"{kind}: {path}")
    return 0
