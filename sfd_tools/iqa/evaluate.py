"""SFD-IQA evaluation of an image, a folder or an opinion-score data set (``scripts/sfd_iqa_eval.py``).

Writes ``scores.csv`` and ``scores.json`` (per image: Q, q_feat, q_text, crops, MOS and baselines if
any; skipped files with the reason), ``report.md`` and, with MOS, ``scatter.png`` (score vs MOS with
the fitted logistic curve). With MOS it reports SROCC, KRCC, PLCC raw and PLCC/RMSE after the
4-parameter (optionally 5-parameter) logistic fit for Q, q_feat, q_text and every baseline.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from typing import Callable

import cv2
import numpy as np

from sfd_metric.sfd_iqa import SFDIQA
from sfd_tools.iqa.cli import BASELINES
from sfd_tools.iqa.mos_data import LIVEC_N_TRAIN, InputError, UnreadableImage, read_image, resolve_inputs
from sfd_tools.iqa.stats import correlations, fit_logistic
from sfd_utils.files import display, output_dir, output_file

COMPONENTS = ("q", "q_feat", "q_text")
# Baselines usable here: name -> (function of an RGB image, higher_is_better). NIQE ships with BasicSR;
# learned baselines (CLIP-IQA, MUSIQ, ...) are pyiqa's, not this package's.


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
    max_pixels: int | None = None,
) -> dict:
    """Score ``source`` (image / folder / MOS table / KonIQ / LIVE Challenge) and write the outputs.

    Either ``checkpoint`` (+ scorer options, see :class:`SFDIQA`) or a ready ``scorer``. Returns the
    summary that is also written to ``out_dir/scores.json``. Unreadable files are skipped and listed;
    raises InputError when nothing can be scored (empty folder, missing MOS column, all unreadable).
    Images are read by :func:`sfd_utils.images.read_image` (at most ``max_pixels``, from the header);
    everything is written inside ``out_dir``.
    """
    from tqdm import tqdm

    items, layout = resolve_inputs(
        source, dataset, mos, image_dir, name_col, mos_col, split, livec_include_train, recursive
    )
    if limit:
        items = items[:limit]
    baselines = {name: baseline_fn(name) for name in dict.fromkeys(compare)}
    if out_dir is None:
        stem = os.path.splitext(os.path.basename(os.path.normpath(source)))[0] or "input"
        out_dir = os.path.join("results", "sfd_iqa", stem)
    output_dir(out_dir, "-o/--out")  # before the scorer is loaded: a bad output folder costs nothing
    if scorer is None:
        if not checkpoint:
            raise InputError("give an SFD discriminator checkpoint (--checkpoint)")
        scorer = SFDIQA.from_checkpoint(checkpoint, clip_pretrained, device, tile, stride, alpha, batch_size, bf16)
    has_mos = any(it.mos is not None for it in items)

    rows, skipped, seconds = [], [], {"sfd_iqa": 0.0, **{b: 0.0 for b in baselines}}
    n_ok = dict.fromkeys(seconds, 0)  # speed counts only images a method actually scored
    _warm_up(scorer, baselines)
    bar = tqdm(items, unit="img", desc="SFD-IQA", disable=not progress, dynamic_ncols=True)
    for item in bar:
        try:
            img = read_image(item.path, max_pixels)
        except UnreadableImage as err:
            skipped.append({"name": item.name, "path": item.path, "reason": str(err)})
            bar.write(f"skipped {display(item.name)}: {err}")
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
        detail = "; ".join(f"{display(s['name'])}: {s['reason']}" for s in skipped[:5])
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
        **scorer.provenance(),
        "feat_layers": cfg.get("feat_layers"),
        "use_feat": cfg.get("use_feat"),
        "use_text": cfg.get("use_text"),
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
    files = {k: output_file(out_dir, f"scores.{k}", "-o/--out") for k in ("csv", "json")}
    fields = ["name", *COMPONENTS, "n_crops", "height", "width"]
    fields += ["mos"] if has_mos else []
    for b in baselines:
        fields += [b, f"{b}_error"]
    with open(files["csv"], "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in summary["images"]:
            writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    if has_mos and plot:
        files["scatter"] = output_file(out_dir, "scatter.png", "-o/--out")
        plot_scatter(summary["images"], ("q", *baselines), files["scatter"], logistic[0])
    files["report"] = output_file(out_dir, "report.md", "-o/--out")
    summary["files"] = files
    with open(files["report"], "w", encoding="utf-8", errors="backslashreplace") as f:
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
def run_iqa_eval(a) -> int:
    """``scripts/sfd_iqa_eval.py``: the namespace of :func:`sfd_tools.iqa.cli.sfd_iqa_eval_parser`. Exit
    status (sfd_utils.cli): 1 when unreadable files were skipped (named on stderr), 2 when none scored."""
    from sfd_utils.cli import skipped_status

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
            max_pixels=a.max_pixels,
        )
    except (InputError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(render_markdown(s))
    for kind, path in s["files"].items():
        print(f"{kind}: {path}")
    for item in s["skipped"]:
        print(f"skipped {display(item['path'])}: {item['reason']}", file=sys.stderr)
    return skipped_status(s["n_skipped"])


def main(argv: list[str] | None = None) -> int:
    """The script's behaviour in-process: parse ``argv``, run, known failures as one ``error:`` line (exit 2)."""
    from sfd_tools.iqa.cli import sfd_iqa_eval_parser
    from sfd_utils.cli import run_cli

    return run_cli(lambda _argv: run_iqa_eval(sfd_iqa_eval_parser().parse_args(argv)))
