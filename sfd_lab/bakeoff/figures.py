"""The bake-off's pictures: the perception–distortion frontier (realism test and NIQE against PSNR)
and a montage of the held-out photos (one column per method)."""

from __future__ import annotations

import os

import numpy as np

from sfd_lab.bakeoff.contestants import CONTESTANTS
from sfd_lab.bakeoff.evaluate import MEASURES


def plot_frontier(report: dict, path: str) -> str:
    """Two panels (realism-test accuracy and NIQE against PSNR-Y, held-out means with 95 % intervals):
    each frontier contestant as a line through its GAN weights, starting at the L1 control (weight 0);
    the other contestants at the middle weight as single points; stage 1 and the sanity rows as black
    markers; HR's NIQE and the realism test's chance level as dashed lines. Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary, methods = report["summary"], report["methods"]
    colors = plt.get_cmap("tab10")
    keys = [k for k in report["settings"]["contestants"] if k != "l1"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), dpi=100)
    for ax, y in zip(axes, ("realism", "niqe")):

        def point(mid: str, y: str = y):
            sx, sy = summary[mid]["psnr"], summary[mid][y]
            xerr = [[sx["mean"] - sx["ci"][0]], [sx["ci"][1] - sx["mean"]]]
            yerr = [[sy["mean"] - sy["ci"][0]], [sy["ci"][1] - sy["mean"]]]
            return sx["mean"], sy["mean"], xerr, yerr

        for i, key in enumerate(keys):
            ids = [m for m, row in methods.items() if row.get("key") == key]
            ids.sort(key=lambda m: methods[m]["gan_weight"])
            if "l1@0" in summary and len(ids) > 1:
                ids = ["l1@0", *ids]
            pts = [point(m) for m in ids if y in summary[m]]
            if not pts:
                continue
            color = colors(i % 10)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=color, alpha=0.7, lw=1.2)
            for m, (px, py, xe, ye) in zip(ids, pts):
                ax.errorbar(px, py, xerr=xe, yerr=ye, fmt="o", ms=6, color=color, mec="black", mew=0.5, capsize=2)
                if methods.get(m, {}).get("key") == key and len(ids) > 2:
                    ax.annotate(f"{methods[m]['gan_weight']:g}", (px, py), xytext=(4, 4), textcoords="offset points",
                                fontsize=7, color=color)  # fmt: skip
            ax.plot([], [], "o-", color=color, label=CONTESTANTS[key].label)
        refs = [r for r in report["references"] if r != "hr" and y in summary.get(r, {})]
        for j, ref in enumerate(refs):
            px, py, _, _ = point(ref)
            ax.scatter(px, py, marker="xP+^vsD"[j % 7], s=50, color="black", zorder=4)
            ax.annotate(report["labels"][ref], (px, py), xytext=(4, -9), textcoords="offset points", fontsize=6)
        if "l1@0" in summary and y in summary["l1@0"]:
            px, py, xe, ye = point("l1@0")
            ax.errorbar(px, py, xerr=xe, yerr=ye, fmt="s", ms=7, color="white", mec="black", capsize=2, label="L1 only")
        line = 0.5 if y == "realism" else summary.get("hr", {}).get("niqe", {}).get("mean")
        if line is not None:
            ax.axhline(line, color="gray", ls="--", lw=1)
            text = "chance (indistinguishable)" if y == "realism" else "HR"
            ax.annotate(text, (ax.get_xlim()[0], line), xytext=(4, 3), textcoords="offset points", fontsize=8)
        ax.set_xlabel("PSNR-Y (dB), higher is better")
        ax.set_ylabel(f"{MEASURES[y][0]}, {MEASURES[y][1]} is better")
        ax.grid(True, alpha=0.3)
        ax.ticklabel_format(useOffset=False)
    axes[0].set_title("realism test (HR vs SR classifier, held-out scenes) vs PSNR")
    axes[1].set_title("NIQE (whole images) vs PSNR")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle(
        ("QUICK REHEARSAL (numbers mean nothing) — " if report["quick"] else "")
        + "Held-out photos: means over scenes × seeds with 95 % intervals; lines: GAN weights from the L1 control",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def detail_window(img: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left of the ``size``² window with the most gradient energy (where SR detail shows)."""
    gray = img.astype(np.float32).mean(-1)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1]
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = energy.shape
    step = max(1, size // 4)
    best, pos = -1.0, (0, 0)
    for t in range(0, h - size + 1, step):
        for s in range(0, w - size + 1, step):
            e = integral[t + size, s + size] - integral[t, s + size] - integral[t + size, s] + integral[t, s]
            if e > best:
                best, pos = float(e), (t, s)
    return pos


def montage(hr: dict, columns: list[tuple[str, str]], path: str, rows: int = 3, size: int = 128) -> str:
    """One column per method, one row per held-out photo (the ``rows`` photos with the most detail,
    each at its most detailed ``size``² window). ``hr``: {photo name: (H, W, 3) uint8 RGB};
    ``columns``: [(title, folder of <name>.png)], "HR" for the photo itself. Writes a PNG."""
    import cv2

    from sfd_lab.bakeoff.data import read_png

    def detail(img):
        return float(np.abs(np.diff(img.astype(np.float32), axis=1)).mean())

    picks = sorted(hr, key=lambda n: -detail(hr[n]))[:rows]
    gap = 2
    head = np.full((18, len(columns) * (size + gap), 3), 255, np.uint8)
    for i, (title, _) in enumerate(columns):
        cv2.putText(head, title[:20], (i * (size + gap) + 2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1,
                    cv2.LINE_AA)  # fmt: skip
    out = [head]
    for name in picks:
        t, s = detail_window(hr[name], size)
        tiles = []
        for _, folder in columns:
            img = hr[name] if folder == "HR" else read_png(os.path.join(folder, f"{name}.png"))
            tiles += [img[t : t + size, s : s + size], np.full((size, gap, 3), 255, np.uint8)]
        out += [np.concatenate(tiles, 1), np.full((gap, head.shape[1], 3), 255, np.uint8)]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cv2.imwrite(path, np.ascontiguousarray(np.concatenate(out, 0)[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path
