"""The perception-distortion plane (Blau & Michaeli 2018; SFD's Fig. 1) from evaluation results.

Each method is one point: mean PSNR (distortion, x) against a perceptual score (y: LPIPS, NIQE,
DISTS or SFD-IQA), read from the JSON files :mod:`sfd_tools.sr.evaluation` writes. The corner where
both axes are better (high PSNR, and low LPIPS/NIQE/DISTS or high SFD-IQA) is marked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from sfd_tools.sr.evaluation import BETTER
from sfd_utils.files import TEXT_LIMIT, display, loads_json, output_dir, output_file, read_bounded

AXIS_NAMES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "niqe": "NIQE",
    "lpips": "LPIPS",
    "dists": "DISTS",
    "sfd_iqa": "SFD-IQA",
    "sfd_iqa_feat": "SFD-IQA (Feat-D)",
    "sfd_iqa_text": "SFD-IQA (TG-D)",
}


def better_corner(x: str, y: str) -> tuple[bool, bool]:
    """(x better when higher, y better when higher); e.g. PSNR/LPIPS -> (True, False): bottom right."""
    return BETTER.get(x, "higher") == "higher", BETTER.get(y, "lower") == "higher"


def load_points(paths: Sequence[str], labels: Sequence[str] | None, x: str, y: str) -> list[dict]:
    """[{'label', 'x', 'y', 'count', 'path'}] from evaluation JSONs.

    ``labels`` (one per file) override the labels stored in the files. Raises ValueError naming the
    file when a metric is absent or empty there.
    """
    if labels and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} label(s) for {len(paths)} result file(s): give one --label per file")
    points = []
    for i, path in enumerate(paths):
        data = read_bounded(path, TEXT_LIMIT, "result file")  # a regular file of bounded size
        res = loads_json(data, f"{display(path)}: not an evaluation JSON written by evaluate_sr.py")
        mean = res.get("mean") if isinstance(res, dict) else None
        if not isinstance(mean, dict):
            raise ValueError(f"{display(path)}: not an evaluation JSON written by evaluate_sr.py (no table 'mean')")
        for metric in (x, y):
            value = mean.get(metric)
            if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise ValueError(f"{display(path)}: mean {metric!r} is {str(value)[:40]!r}, not a finite number")
            if value is None:
                raise ValueError(
                    f"{path}: no mean {metric!r} (it has {sorted(k for k, v in mean.items() if v is not None)}); "
                    f"run evaluate_sr.py with --metrics ... {metric}"
                )
        label = labels[i] if labels else str(res.get("label") or os.path.splitext(os.path.basename(path))[0])[:80]
        points.append({"label": label, "x": mean[x], "y": mean[y], "count": res.get("count"), "path": path})
    return points


def plot_paths(out: str) -> list[str]:
    """``<out>.png`` and ``<out>.svg`` (an extension on ``out`` is dropped); the folder is created, the
    file name must be plain and neither target a folder or a link (InputFileError)."""
    stem = os.path.splitext(out)[0] if out.lower().endswith((".png", ".svg", ".pdf")) else out
    folder, name = os.path.split(stem)
    output_dir(folder or ".", "--out")
    return [output_file(folder or ".", f"{name}.{ext}", "--out") for ext in ("png", "svg")]


def plot_pd(
    points: Sequence[dict], y: str = "lpips", x: str = "psnr", out: str = "results/pd_plot", title: str | None = None
) -> list[str]:
    """Draw the points; write ``<out>.png`` and ``<out>.svg`` (an extension on ``out`` is ignored).

    Returns the two paths. Uses matplotlib's Agg backend (no display needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not points:
        raise ValueError("no results to plot")
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG keeps text as text (editable, searchable)
        return _draw(plt, points, x, y, out, title)


def _draw(plt, points, x, y, out, title) -> list[str]:
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=150)
    colors = plt.get_cmap("tab10")
    for i, p in enumerate(points):
        ax.scatter(p["x"], p["y"], s=60, color=colors(i % 10), zorder=3, edgecolor="black", linewidth=0.5)
        ax.annotate(p["label"], (p["x"], p["y"]), xytext=(6, 6), textcoords="offset points", fontsize=9)

    # pad the limits so labels and the corner marker stay inside the axes
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    dx, dy = (max(xs) - min(xs)) or abs(xs[0]) * 0.05 or 1.0, (max(ys) - min(ys)) or abs(ys[0]) * 0.05 or 1.0
    ax.set_xlim(min(xs) - 0.25 * dx, max(xs) + 0.25 * dx)
    ax.set_ylim(min(ys) - 0.25 * dy, max(ys) + 0.25 * dy)
    x_up, y_up = better_corner(x, y)
    corner = (ax.get_xlim()[1 if x_up else 0], ax.get_ylim()[1 if y_up else 0])
    ax.scatter(*corner, marker="*", s=250, color="gold", edgecolor="black", zorder=4, clip_on=False)
    ax.annotate(
        "better",
        corner,
        xytext=(-10 if x_up else 10, -14 if y_up else 10),
        textcoords="offset points",
        ha="right" if x_up else "left",
        fontsize=9,
        fontweight="bold",
    )
    ax.set_xlabel(f"{AXIS_NAMES.get(x, x)}  ({'higher' if x_up else 'lower'} is better)")
    ax.set_ylabel(f"{AXIS_NAMES.get(y, y)}  ({'higher' if y_up else 'lower'} is better)")
    ax.set_title(title or f"Perception-distortion: {AXIS_NAMES.get(y, y)} vs {AXIS_NAMES.get(x, x)}")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()

    paths = plot_paths(out)
    for path in paths:
        fig.savefig(path)
    plt.close(fig)
    return paths


def run_plot_pd(a) -> int:
    """``scripts/plot_pd.py``: the namespace of :func:`sfd_tools.sr.cli.plot_pd_parser`."""
    plot_paths(a.out)  # a bad output path is refused before anything is read
    points = load_points(a.results, a.label, a.x, a.y)
    for pt in points:
        print(f"{pt['label']:<20} {a.x} {pt['x']:.4f}  {a.y} {pt['y']:.4f}  ({pt['count']} images)")
    if len({pt["count"] for pt in points}) > 1:
        print("warning: the methods were evaluated on different numbers of images; their means are not comparable")
    for path in plot_pd(points, a.y, a.x, a.out, a.title):
        print(f"wrote {path}")
    return 0
