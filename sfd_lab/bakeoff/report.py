"""The bake-off's numbers and pictures: mean ± spread over seeds, paired differences against SFD, the
perception-distortion plot (every method and seed), a montage (one column per method), the SFD-IQA
ranking summary and the Markdown report (the runs themselves: sfd_lab.bakeoff.run)."""

from __future__ import annotations

import math
import os

import numpy as np

from sfd_lab.bakeoff.contestants import CONTESTANTS

# measure -> (name in tables, which way is better)
MEASURES = {
    "psnr": ("PSNR-Y (dB)", "higher"),
    "ssim": ("SSIM-Y", "higher"),
    "niqe": ("NIQE", "lower"),
    "judge": ("judge", "higher"),
}
REFERENCES = ("hr", "bicubic", "stage1")
REFERENCE_LABELS = {
    "hr": "HR (the ground truth itself)",
    "bicubic": "Bicubic",
    "stage1": "Stage 1 (L1, start of every run)",
}
# The committed fixed-bicubic discriminator numbers (pooled ranking SROCC, quality CLIP, 64² tiles)
COMMITTED_FIXED = {
    "file": "iqa_ranking-quality_clip-cpu-2026-11-30.md",
    "q": {"downup": 0.952, "blur": 0.949, "noise": 0.414, "jpeg": 0.199},
    "niqe": {"downup": 0.898, "blur": 0.877, "noise": 0.870, "jpeg": 0.288},
}


def _stats(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "n": len(v),
    }


def aggregate(evals: dict, settings) -> dict:
    """Per contestant and measure: every seed's mean over the held-out images, and mean / std (over
    seeds, ddof 1) / min / max; the references' means; each measure's order (best first); and per
    contestant the per-seed difference to SFD (same seed = same data order), with how many seeds
    SFD was better on."""
    out = {"references": {}, "contestants": {}, "order": {}, "vs_sfd": {}}
    for ref in REFERENCES:
        out["references"][ref] = {m: evals[ref]["mean"].get(m) for m in MEASURES}
    for key in settings.contestants:
        per_seed = {str(s): {m: evals[(key, s)]["mean"][m] for m in MEASURES} for s in settings.seeds}
        out["contestants"][key] = {
            "label": CONTESTANTS[key].label,
            "per_seed": per_seed,
            **{m: _stats([per_seed[str(s)][m] for s in settings.seeds]) for m in MEASURES},
        }
    for m, (_, better) in MEASURES.items():
        keys = sorted(out["contestants"], key=lambda k: out["contestants"][k][m]["mean"], reverse=better == "higher")
        out["order"][m] = keys
    if "sfd" in out["contestants"]:
        sfd = out["contestants"]["sfd"]["per_seed"]
        for key, c in out["contestants"].items():
            if key == "sfd":
                continue
            row = {}
            for m, (_, better) in MEASURES.items():
                diffs = [sfd[s][m] - c["per_seed"][s][m] for s in sfd]
                wins = sum((d > 0) if better == "higher" else (d < 0) for d in diffs)
                row[m] = {**_stats(diffs), "sfd_better_seeds": wins}
            out["vs_sfd"][key] = row
    return out


# -- pictures ------------------------------------------------------------------------------------------------
def plot_bakeoff_pd(summary: dict, path: str, quick: bool = False) -> str:
    """Two perception-distortion panels (PSNR-Y against NIQE and against the judge): every contestant
    and seed as a small marker, each contestant's mean over seeds as a large one with ±1 std bars,
    bicubic and stage 1 as references and HR's value as a line. Writes a PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10")
    seed_markers = "osD^vP*X"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), dpi=100)
    refs = summary["references"]
    for ax, y in zip(axes, ("niqe", "judge")):
        for i, c in enumerate(summary["contestants"].values()):
            color = colors(i % 10)
            for j, vals in enumerate(c["per_seed"].values()):
                ax.scatter(
                    vals["psnr"], vals[y], s=22, color=color, alpha=0.55, marker=seed_markers[j % 8], linewidths=0
                )
            ax.errorbar(
                c["psnr"]["mean"], c[y]["mean"], xerr=c["psnr"]["std"], yerr=c[y]["std"], fmt="o", ms=9,
                color=color, mec="black", mew=0.6, capsize=2, label=c["label"], zorder=3,
            )  # fmt: skip
        for ref, marker in (("bicubic", "x"), ("stage1", "P")):
            ax.scatter(refs[ref]["psnr"], refs[ref][y], marker=marker, s=70, color="black", zorder=4,
                       label=REFERENCE_LABELS[ref].split(" (")[0] if ref == "bicubic" else "Stage 1 (L1)")  # fmt: skip
        if refs["hr"].get(y) is not None:
            ax.axhline(refs["hr"][y], color="gray", ls="--", lw=1)
            ax.annotate("HR", (ax.get_xlim()[0], refs["hr"][y]), xytext=(4, 3), textcoords="offset points", fontsize=8)
        better = MEASURES[y][1]
        ax.set_xlabel("PSNR-Y (dB), higher is better")
        ax.set_ylabel(f"{MEASURES[y][0]}, {better} is better")
        ax.grid(True, alpha=0.3)
        ax.ticklabel_format(useOffset=False)
        corner = (ax.get_xlim()[1], ax.get_ylim()[1 if better == "higher" else 0])
        ax.scatter(*corner, marker="*", s=220, color="gold", edgecolor="black", zorder=5, clip_on=False)
    axes[0].set_title("NIQE (BasicSR) vs PSNR")
    axes[1].set_title("independent judge (zero-shot quality CLIP) vs PSNR")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    seeds = ", ".join(
        f"{seed_markers[j % 8]} seed {s}" for j, s in enumerate(next(iter(summary["contestants"].values()))["per_seed"])
    )
    fig.suptitle(
        ("QUICK REHEARSAL (numbers mean nothing) — " if quick else "")
        + f"Bake-off on held-out crops: large marker = mean ± 1 std over seeds; small: {seeds}; ★ better corner",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _detail_window(img: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left of the ``size``² window with the most gradient energy (where SR detail shows)."""
    gray = img.astype(np.float32).mean(-1)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1]
    best, pos, step = -1.0, (0, 0), max(1, size // 4)
    for t in range(0, energy.shape[0] - size + 1, step):
        for s in range(0, energy.shape[1] - size + 1, step):
            e = float(energy[t : t + size, s : s + size].sum())
            if e > best:
                best, pos = e, (t, s)
    return pos


def montage(ref_dirs: dict, contestant_dirs: dict, path: str, rows: int = 2, size: int = 96) -> str:
    """One column per method (HR, bicubic, stage 1, each contestant's first seed), one row per
    held-out image (the most detailed image of each photo, its most detailed ``size``² window).
    Writes a PNG; returns its path."""
    import cv2

    names = sorted(f for f in os.listdir(ref_dirs["hr"]) if f.endswith("_out.png"))
    by_photo: dict[str, list[str]] = {}
    for n in names:
        by_photo.setdefault(n.rsplit("_", 2)[0], []).append(n)
    picks = []
    for group in by_photo.values():
        imgs = {n: cv2.imread(os.path.join(ref_dirs["hr"], n)) for n in group}
        picks.append(max(group, key=lambda n: float(np.abs(np.diff(imgs[n].astype(np.float32), axis=1)).mean())))
    picks = picks[:rows]
    columns = [(REFERENCE_LABELS[r].split(" (")[0], ref_dirs[r]) for r in REFERENCES]
    columns += [(CONTESTANTS[k].short, d) for k, d in contestant_dirs.items()]
    head = np.full((16, len(columns) * (size + 2), 3), 255, np.uint8)
    for i, (label, _) in enumerate(columns):
        cv2.putText(
            head, label[:16], (i * (size + 2) + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.32, (0, 0, 0), 1, cv2.LINE_AA
        )
    out_rows = [head]
    for name in picks:
        t, s = _detail_window(cv2.imread(os.path.join(ref_dirs["hr"], name)), size)
        tiles = []
        for _, folder in columns:
            img = cv2.imread(os.path.join(folder, name))
            if img is None:
                raise FileNotFoundError(f"montage: {os.path.join(folder, name)} is missing")
            tiles += [img[t : t + size, s : s + size], np.full((size, 2, 3), 255, np.uint8)]
        out_rows += [np.concatenate(tiles, 1), np.full((2, head.shape[1], 3), 255, np.uint8)]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cv2.imwrite(path, np.concatenate(out_rows, 0), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path


# -- SFD-IQA ranking --------------------------------------------------------------------------------------
def ranking_summary(reports: dict) -> dict:
    """Pooled ranking SROCC per degradation: the SFD GAN runs' discriminators (every seed; mean, std),
    the fixed-bicubic discriminator, NIQE and the zero-shot baseline of the contestants' CLIP."""
    if not reports:
        return {}
    sfd = {k: r for k, r in reports.items() if k.startswith("sfd-")}
    fixed = reports.get("fixed_bicubic")
    first = next(iter(sfd.values()))
    out = {
        "degradations": {},
        "reports": {k: {"checkpoint": r["checkpoint"], "tile": r["tile"]} for k, r in reports.items()},
    }
    for kind, entry in first["degradations"].items():
        row = {
            "trained_against_by_fixed_d": entry["trained_against"],
            "levels": entry["levels"],
            "parameter": entry["parameter"],
        }
        for m in ("q", "q_feat", "q_text"):
            vals = [r["degradations"][kind]["srocc"][m]["pooled"] for r in sfd.values()]
            row[f"sfd_{m}"] = {**_stats(vals), "per_seed": vals}
            if fixed:
                row[f"fixed_{m}"] = fixed["degradations"][kind]["srocc"][m]["pooled"]
        row["sfd_q_per_image"] = _stats([r["degradations"][kind]["srocc"]["q"]["per_image_mean"] for r in sfd.values()])
        row["zero_shot"] = entry["srocc"]["zero_shot"]["pooled"]
        if "niqe" in entry["srocc"]:
            row["niqe"] = entry["srocc"]["niqe"]["pooled"]
            row["niqe_per_image"] = entry["srocc"]["niqe"]["per_image_mean"]
        out["degradations"][kind] = row
    out["n_base_images"] = first["n_base_images"]
    return out


# -- Markdown -------------------------------------------------------------------------------------------------
def _f(v, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


DIGITS = {"psnr": 2, "ssim": 4, "niqe": 2, "judge": 3}


def _cell(st: dict, m: str) -> str:
    d = DIGITS[m]
    return f"{st['mean']:.{d}f} ± {st['std']:.{d}f} ({st['min']:.{d}f}–{st['max']:.{d}f})"


def _results_tables(r: dict) -> list[str]:
    s = r["summary"]
    heads = " | ".join(f"{MEASURES[m][0]} {'↑' if MEASURES[m][1] == 'higher' else '↓'}" for m in MEASURES)
    lines = [
        f"| method | host | D params | s / iter | {heads} |",
        "|---|---|---|---|" + "---|" * len(MEASURES),
    ]
    for ref in REFERENCES:
        vals = " | ".join(_f(s["references"][ref].get(m), DIGITS[m]) for m in MEASURES)
        lines.append(f"| {REFERENCE_LABELS[ref]} | — | — | — | {vals} |")
    for key, c in s["contestants"].items():
        runs = r["contestants"][key]["runs"]
        params = next(iter(runs.values()))["d_params"]
        spi = np.median([run["s_per_iter"] for run in runs.values()])
        lines.append(
            f"| **{c['label']}** | {CONTESTANTS[key].host} | {params:,} | {spi:.2f} | "
            + " | ".join(_cell(c[m], m) for m in MEASURES)
            + " |"
        )
    lines += [
        "",
        "Every seed (mean over the held-out images):",
        "",
        f"| method | seed | {heads} |",
        "|---|---|" + "---|" * len(MEASURES),
    ]
    for c in s["contestants"].values():
        for seed, vals in c["per_seed"].items():
            lines.append(f"| {c['label']} | {seed} | " + " | ".join(_f(vals[m], DIGITS[m]) for m in MEASURES) + " |")
    if s["vs_sfd"]:
        lines += [
            "",
            "Paired with SFD (same seed = same batches in the same order): SFD minus the other, mean ± std over "
            "seeds, and on how many seeds SFD was better:",
            "",
            f"| SFD minus | {' | '.join(MEASURES[m][0] for m in MEASURES)} |",
            "|---|" + "---|" * len(MEASURES),
        ]
        for key, row in s["vs_sfd"].items():
            cells = [
                f"{row[m]['mean']:+.{DIGITS[m]}f} ± {row[m]['std']:.{DIGITS[m]}f} "
                f"({row[m]['sfd_better_seeds']}/{row[m]['n']})"
                for m in MEASURES
            ]
            lines.append(f"| {CONTESTANTS[key].label} | " + " | ".join(cells) + " |")
    return lines


def _ranking_table(rk: dict) -> list[str]:
    if not rk:
        return ["(no SFD contestant in this run)"]
    lines = [
        f"Pooled ranking SROCC = SROCC(quality, −level) over {rk['n_base_images']} held-out 256² crops × 6 levels "
        "(1 = perfect order). In-loop: the discriminator of the SFD GAN run (mean ± std over seeds; Q / q_feat / "
        "q_text). Fixed-bicubic: Feat-D + TG-D trained alone against bicubic ×4 down-up with the same CLIP "
        f"(this run, and the committed `{COMMITTED_FIXED['file']}`). NIQE: BasicSR's, quality = −NIQE.",
        "",
        "| degradation | fixed D trained against | in-loop SFD D: Q | q_feat | q_text | Q per crop "
        "| fixed-bicubic D: Q (q_feat / q_text), this run | fixed-bicubic Q, committed "
        "| zero-shot (contestants' CLIP) | NIQE | NIQE committed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, row in rk["degradations"].items():
        fixed = "n/a"
        if "fixed_q" in row:
            fixed = f"{_f(row['fixed_q'])} ({_f(row['fixed_q_feat'])} / {_f(row['fixed_q_text'])})"
        lines.append(
            f"| {kind} | {row['trained_against_by_fixed_d']} | "
            f"{_f(row['sfd_q']['mean'])} ± {_f(row['sfd_q']['std'])} | "
            f"{_f(row['sfd_q_feat']['mean'])} ± {_f(row['sfd_q_feat']['std'])} | "
            f"{_f(row['sfd_q_text']['mean'])} ± {_f(row['sfd_q_text']['std'])} | "
            f"{_f(row['sfd_q_per_image']['mean'])} | "
            f"{fixed} | {_f(COMMITTED_FIXED['q'].get(kind))} | {_f(row['zero_shot'])} | {_f(row.get('niqe'))} | "
            f"{_f(COMMITTED_FIXED['niqe'].get(kind))} |"
        )
    return lines


def render_markdown(r: dict, files: dict) -> str:
    st, m = r["settings"], r["machine"]
    contestants = ", ".join(f"{CONTESTANTS[k].label}" for k in st["contestants"])
    lines = [f"# {r['title']} ({r['date']})", ""]
    if r["quick"]:
        lines += [
            "**QUICK REHEARSAL** (`--quick`: toy sizes, the judge is the contestants' own CLIP): "
            "the numbers mean nothing.",
            "",
        ]
    lines += [
        f"Command: `{r['command']}`  ",
        f"Machine: {m['cpu']}, {m['torch_threads']} torch threads, torch {m['torch']}; "
        f"wall time {r['wall_s'] / 60:.1f} min; "
        f"load average (1/5/15 min) {r['load_start']} at the start, {r['load_end']} at the end.",
        "",
        "## Setup",
        "",
        f"- Data: {r['data']['root']} — generators train on {r['stage1']['train_images']} crops of "
        f"{', '.join(r['data']['train_photos'])}; everything is judged on the held-out 256² crops of "
        f"{', '.join(r['eval_photos'])} (no shared scene).",
        f"- One stage-1 generator: `{r['stage1']['recipe']}` (L1, {r['stage1']['iters']} iterations, "
        f"{r['stage1']['gt_size']}² crops, batch {r['stage1']['batch']}, seed {r['stage1']['seed']}).",
        f"- Every contestant × seed {tuple(st['seeds'])}: fine-tuned from it for {st['iters']} iterations, batch "
        f"{st['batch']}, {st['gt_size']}² crops, the same batches in the same order per seed; generator loss "
        f"L1 (weight 1) + adversarial terms of total weight {st['gan_weight']} "
        f"(SFD: {st['gan_weight'] / 2:g} per head; "
        "no perceptual loss: the demo has none, and VGG19 weights are not on this machine); optimisers, EMA "
        f"(0.99, evaluated) and G learning rate from `{r['stage2_recipe']}`; every discriminator Adam lr "
        f"{st['d_lr'] or 'as the recipe'}; stock discriminators at base width {st['d_width']}; SFD heads: "
        f"{st['n_ctx']} context tokens, Feat-D width {st['feat_mid']}, CLIP `quality-tiny-rn` at the crop size.",
        f"- Contestants: {contestants}.",
        f'- Judge: {r["clips"]["judge_description"]}; zero-shot p("a high quality photo.") vs "a low quality '
        'photo.", mean over 64² tiles.',
    ]
    z = r.get("judge_zero_shot_heldout")
    if z:
        kinds = ", ".join(f"{k} {v['auc']:.2f}" for k, v in z["per_kind"].items())
        lines.append(
            f"  Its zero-shot AUC on {z['n_crops']} held-out {z['crop']}² crops, sharp vs degraded: {z['auc']:.3f} "
            f"({kinds})."
        )
    lines += [
        "",
        "## Results on the held-out crops",
        "",
        "Mean ± std over seeds (min–max). PSNR/SSIM on Y with a 4-pixel border crop, NIQE on Y (BasicSR's), "
        "judge = the independent zero-shot quality CLIP (higher = more like a high-quality photo).",
        "",
        *_results_tables(r),
        "",
        f"![perception-distortion]({files['pd_plot']})",
        "",
        f"Montage (first seed of each contestant; the most detailed 96² window of the most detailed crop per photo): "
        f"![montage]({files['montage']})",
        "",
        "## SFD-IQA from the discriminator that came out of the SFD GAN run",
        "",
        *_ranking_table(r["ranking"]),
        "",
        "## Time per phase",
        "",
        "| phase | seconds | load before → after |",
        "|---|---|---|",
        *[f"| {p['phase']} | {p['seconds']} | {p['load_before']} → {p['load_after']} |" for p in r["phases"]],
        "",
    ]
    return "\n".join(lines)
