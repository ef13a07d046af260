"""The bake-off's report: assembled from the task results (:func:`build_report`), rendered as Markdown
(:func:`render_markdown`) and written with its pictures (:func:`write_report`).

Every sentence of the form "A beats B on X" is generated from a paired interval that excludes zero
(sfd_lab.bakeoff.stats); otherwise the sentence says "no difference shown". A perceptual measure that
ranks a sanity row (bicubic + noise, unsharp masking) above a trained method is flagged, and its
sentences say that they cannot stand alone.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import statistics

import numpy as np

from sfd_lab.bakeoff import analysis
from sfd_lab.bakeoff.contestants import CONTESTANTS, LEARNED_ACCURACY, LEARNED_PROBES, ROOT
from sfd_lab.bakeoff.data import SANITY_ROWS, USM
from sfd_lab.bakeoff.evaluate import MEASURES
from sfd_lab.bakeoff.figures import montage, plot_frontier
from sfd_lab.bakeoff.realism import PatchCritic

REF_LABELS = {"hr": "HR (the photos themselves)", **SANITY_ROWS, "stage1": "Stage 1 (L1, start of every run)"}
DIGITS = {"psnr": 2, "ssim": 4, "niqe": 2, "realism": 3}
DELTA_DIGITS = {"psnr": 3, "ssim": 4, "niqe": 3, "realism": 3}
FEATD_GLOB = os.path.join(ROOT, "benchmarks", "results", "featd_study-*.md")


def _runs_of(results: dict, s, key: str, w: float) -> list[tuple[dict, dict]]:
    """[(training facts, test result)] per seed of one method."""
    out = []
    for seed in s.seeds:
        rid = analysis.run_id(key, w, seed)
        if analysis.reused_run(s, key, w, seed):
            lr = analysis.choose_lr({x: results[analysis.lrsel_id(key, x)] for x in s.lr_grid})["chosen"]
            train = results[analysis.lrsel_id(key, lr)]
        else:
            train = results[f"train-{rid}"]
        out.append((train, results[f"test-{rid}"]))
    return out


def _costs(results: dict) -> list[dict]:
    """Measured seconds per kind of task: wall (what the run took on this machine, its load included)
    and CPU (the worker's own seconds: what the plan for another machine extrapolates from)."""
    kinds: dict[str, list[tuple[float, float | None]]] = {}
    for tid, r in results.items():
        parts = tid.split("-")
        if parts[0] in ("lrsel", "train"):
            kind = f"{parts[0]} {parts[1]}"
        elif parts[0] == "realism":
            ref = parts[1] in (*SANITY_ROWS, "stage1")
            kind = "realism test (reference)" if ref else "realism test (seeds pooled)"
        elif parts[0] in ("test", "ref", "capacity"):
            kind = {"test": "held-out evaluation", "ref": "reference row", "capacity": "capacity"}[parts[0]]
        else:
            kind = parts[0]
        kinds.setdefault(kind, []).append((r.get("task_wall_s", 0.0), r.get("task_cpu_s")))
    out = []
    for k, v in sorted(kinds.items()):
        cpu = [c for _, c in v if c is not None]
        out.append(
            {
                "kind": k,
                "n": len(v),
                "median_wall_s": round(statistics.median(w for w, _ in v), 1),
                "total_wall_s": round(sum(w for w, _ in v), 1),
                "median_cpu_s": round(statistics.median(cpu), 1) if cpu else None,
                "total_cpu_s": round(sum(cpu), 1) if cpu else None,
            }
        )
    return out


def build_report(run: dict, results: dict, s) -> dict:
    """The report dict from the run facts and every task result."""
    prep = results["prepare"]
    scenes = sorted({p["scene"] for p in prep["splits"]["test"]})
    grids, methods, runs, labels = {}, {}, [], dict(REF_LABELS)
    lr_choice = {
        k: analysis.choose_lr({x: results[analysis.lrsel_id(k, x)] for x in s.lr_grid})
        for k in s.contestants
        if CONTESTANTS[k].has_d
    }
    for key in s.contestants:
        c = CONTESTANTS[key]
        for w in s.weights_of(key):
            mid = analysis.method_id(key, w)
            pairs = _runs_of(results, s, key, w)
            realism = results[f"realism-{key}-w{w:g}"]
            grids[mid] = analysis.measure_grid([t["per_image"] for _, t in pairs], realism["per_seed_image"], scenes)
            labels[mid] = c.label + ("" if key == "l1" else f", GAN weight {w:g}")
            methods[mid] = {
                "key": key,
                "gan_weight": w,
                "label": c.label,
                "d_lr": lr_choice[key]["chosen"] if c.has_d else None,
                "learned": analysis.learned([f for f, _ in pairs]) if c.has_d else None,
                "capacity": {k: v for k, v in results[f"capacity-{key}"].items() if not k.startswith("task_")}
                if c.has_d
                else None,
                "s_per_iter": statistics.median(f["s_per_iter"] for f, _ in pairs),
                "realism": {k: realism[k] for k in ("accuracy", "ci95", "fold_accuracy", "fold_mean", "fold_std")}
                | {"train_accuracy": realism["train_accuracy"], "folds": realism["folds"]},
            }
            for j, (seed, (facts, test)) in enumerate(zip(s.seeds, pairs)):
                per_image = {n: {**r, "realism": realism["per_seed_image"][j][n]} for n, r in test["per_image"].items()}
                runs.append(
                    {
                        "method": mid,
                        "contestant": key,
                        "gan_weight": w,
                        "d_lr": facts["d_lr"],
                        "seed": seed,
                        "seconds": facts["seconds"],
                        "s_per_iter": facts["s_per_iter"],
                        **{k: facts[k] for k in ("d_acc_final", "d_acc_max", "d_acc_last3") if k in facts},
                        "generator_losses": facts["generator_losses"],
                        "curve": facts["curve"],
                        "per_image": per_image,
                    }
                )
    references = {}
    for row in analysis.REFERENCES:
        per_image = results[f"ref-{row}"]["per_image"]
        realism = results.get(f"realism-{row}")
        grids[row] = analysis.measure_grid([per_image], realism["per_seed_image"] if realism else None, scenes)
        references[row] = {
            "per_image": {
                n: {**r, **({"realism": realism["per_seed_image"][0][n]} if realism else {})}
                for n, r in per_image.items()
            },  # fmt: skip
            "realism": {k: realism[k] for k in ("accuracy", "ci95", "fold_mean", "fold_std")} if realism else None,
        }
    summary = analysis.summarise(grids)
    featd = sorted(glob.glob(FEATD_GLOB))
    stage1 = results["stage1"]
    return {
        "title": "Bake-off: does SFD make better images than the discriminators users pick?",
        **run,
        "photos": {k: prep[k] for k in ("source", "manifest_sha256", "splits", "photos")},
        "test_scenes": scenes,
        # file names, not this machine's paths
        "clips": {k: os.path.basename(v) if k in ("quality", "random") else v for k, v in results["clips"].items()},
        "stage1": {k: os.path.basename(v) if k == "checkpoint" else v for k, v in stage1.items()},
        "labels": labels,
        "lr_choice": {k: {"chosen": v["chosen"], "candidates": v["candidates"]} for k, v in lr_choice.items()},
        "methods": methods,
        "reference_rows": references,
        "summary": summary,
        "runs": runs,
        "comparisons": analysis.comparisons(grids, s),
        "frontier": {m: analysis.frontier(grids, s, m) for m in ("realism", "niqe")},
        "sanity_flags": analysis.sanity_flags(summary, list(methods)),
        "realism_critic": {"params_at_width_16": sum(p.numel() for p in PatchCritic(16).parameters())},
        "costs": _costs(results),
        "featd_study": os.path.basename(featd[-1]) if featd else None,
        "measures": {k: list(v) for k, v in MEASURES.items()},
    }


# -- Markdown ----------------------------------------------------------------------------------------------
def _f(v, d: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{d}f}"


def _cell(st: dict | None, m: str) -> str:
    if not st:
        return "—"
    d = DIGITS[m]
    return f"{st['mean']:.{d}f} [{st['ci'][0]:.{d}f}, {st['ci'][1]:.{d}f}]"


def _delta(d: dict, m: str) -> str:
    k = DELTA_DIGITS[m]
    return f"Δ = {d['delta']:+.{k}f} [95 % CI {d['ci'][0]:+.{k}f}, {d['ci'][1]:+.{k}f}]"


def _comparison_table(r: dict, comps: list[dict]) -> list[str]:
    """A − B per measure with its interval; ▲ = A better, ▼ = B better (interval excludes zero), · = no
    difference shown."""
    ms = list(MEASURES)
    lines = [
        "| A | B | " + " | ".join(f"{MEASURES[m][0]} ({MEASURES[m][1]} better)" for m in ms) + " |",
        "|---|---|" + "---|" * len(ms),
    ]
    mark = {"A better": "▲", "B better": "▼", "no difference shown": "·"}
    for comp in comps:
        cells = []
        for m in ms:
            d = comp["measures"].get(m)
            cells.append("—" if d is None else f"{_delta(d, m)[4:]} {mark[d['verdict']]}")
        lines.append(f"| {r['labels'][comp['a']]} | {r['labels'][comp['b']]} | " + " | ".join(cells) + " |")
    return lines


def sentence(r: dict, comp: dict, m: str) -> str:
    """One comparison on one measure, as the report may state it."""
    d = comp["measures"][m]
    a, b, (title, better, _) = r["labels"][comp["a"]], r["labels"][comp["b"]], MEASURES[m]
    nums = _delta(d, m)
    p = f", Wilcoxon p = {d['p_wilcoxon']:.3f}" if d.get("p_wilcoxon") is not None else ""
    flag = r["sanity_flags"][m]
    note = (
        " (this measure ranks a sanity row above a trained method: not a conclusion on its own)"
        if (flag["flagged"] and flag["perceptual"])
        else ""
    )
    if d["verdict"] == "A better":
        return f"{a} beats {b} on {title} ({better} is better): {nums}{p}{note}."
    if d["verdict"] == "B better":
        return f"{b} beats {a} on {title} ({better} is better): {nums} (A − B){p}{note}."
    return f"{a} vs {b} on {title}: no difference shown ({nums}{p})."


def _method_rows(r: dict) -> list[str]:
    ms = list(MEASURES)
    heads = " | ".join(f"{MEASURES[m][0]} {'↑' if MEASURES[m][1] == 'higher' else '↓'}" for m in ms)
    lines = [
        f"| method | GAN weight | D lr | D accuracy (final; peak) | learned? | params trainable / frozen | "
        f"GFLOPs | s / iter | {heads} |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(ms),
    ]
    for ref in r["references"]:
        lines.append(f"| {REF_LABELS[ref]} | — | — | — | — | — | — | — | " + " | ".join(
            _cell(r["summary"][ref].get(m), m) for m in ms) + " |")  # fmt: skip
    for mid, row in r["methods"].items():
        ln = row["learned"]
        acc = "—" if not ln else f"{np.mean(ln['d_acc_final']):.2f}; {np.mean(ln['d_acc_max']):.2f}"
        cap = row["capacity"]
        cap_s = "0 / 0" if not cap else f"{cap['trainable']:,} / {cap['frozen']:,}"
        lines.append(
            f"| **{row['label']}** | {row['gan_weight']:g} | {_f(row['d_lr'], 4) if row['d_lr'] else '—'} | {acc} | "
            f"{ln['label'] if ln else '—'} | {cap_s} | {cap['gflops'] if cap else 0} | {row['s_per_iter']:.2f} | "
            + " | ".join(_cell(r["summary"][mid].get(m), m) for m in ms)
            + " |"
        )
    return lines


def _lr_rows(r: dict) -> list[str]:
    lines = [
        "| contestant | D lr | val realism acc ↓ (fold std) | val PSNR-Y | val NIQE | D accuracy final; peak "
        "| chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, ch in r["lr_choice"].items():
        for lr, v in ch["candidates"].items():
            mark = "**✓**" if float(lr) == ch["chosen"] else ""
            lines.append(
                f"| {CONTESTANTS[key].label} | {lr} | {v['realism']:.3f} ({v['realism_fold_std']:.3f}) | "
                f"{v['psnr']:.2f} | {v['niqe']:.2f} | {_f(v['d_acc_final'], 2)}; {_f(v['d_acc_max'], 2)} | {mark} |"
            )
    return lines


def _frontier_lines(r: dict) -> list[str]:
    lines = []
    for m, fr in r["frontier"].items():
        for row in fr["matched"]:
            a, b = CONTESTANTS[row["a"]].label, CONTESTANTS[row["b"]].label
            if row.get("overlap") is None:
                lines.append(f"- {MEASURES[m][0]}: {a} and {b} share no PSNR range: not comparable at matched PSNR.")
                continue
            nums = _delta(row, m)
            head = f"at PSNR-Y {row['psnr']:.2f} dB ({MEASURES[m][0]}, {MEASURES[m][1]} is better)"
            if row["verdict"] == "A better":
                lines.append(f"- {a} beats {b} {head}: {nums} (A − B).")
            elif row["verdict"] == "B better":
                lines.append(f"- {b} beats {a} {head}: {nums} (A − B).")
            else:
                lines.append(f"- {a} vs {b} {head}: no difference shown ({nums}; {row['verdict']}).")
    return lines or ["(no frontier contestant ran at every GAN weight)"]


def _flag_lines(r: dict) -> list[str]:
    lines = []
    for m, fl in r["sanity_flags"].items():
        title = MEASURES[m][0]
        if not fl["flagged"]:
            lines.append(f"- {title}: ranks no sanity row above any trained method.")
            continue
        n = len(r["methods"])
        parts = "; ".join(f"{SANITY_ROWS[row]} above {len(ts)} of {n}" for row, ts in fl["rows"].items())
        kind = "**FLAGGED**: no conclusion rests on it alone" if fl["perceptual"] else (
            "expected for a distortion measure (the perception–distortion trade-off), not a flag")  # fmt: skip
        lines.append(f"- {title}: {parts} trained methods — {kind}.")
    return lines


def render_markdown(r: dict, files: dict) -> str:
    st, m, ph = r["settings"], r["machine"], r["photos"]
    lines = [f"# {r['title']} ({r['date']})", ""]
    if r["quick"]:
        lines += ["**QUICK REHEARSAL** (`--quick`: toy sizes on scikit-image's photos): the numbers mean nothing.", ""]
    test = ph["splits"]["test"]
    lines += [
        f"Command: `{r['command']}`  ",
        f"Machine: {m['cpu']}, torch {m['torch']}, {m['jobs']} worker process(es) of one "
        f"torch thread; wall time {r['wall_s'] / 60:.1f} min; load average (1/5/15 min) {r['load_start']} at the "
        f"start, {r['load_end']} at the end; {r['tasks']['ran']} tasks ran, {r['tasks']['skipped']} were already "
        "on disk.",
        "",
        "## Setup",
        "",
        f"- Photos: **{ph['source']}**; manifest SHA-256 `{ph['manifest_sha256']}`. Split by scene: "
        + "; ".join(f"{k} {len(v)} photos / {len({p['scene'] for p in v})} scenes" for k, v in ph["splits"].items())
        + ". Held-out (test) photos, evaluated whole: "
        + ", ".join(f"{p['name']} ({p['hr_size'][1]}×{p['hr_size'][0]})" for p in test)
        + ". LR = MATLAB-style bicubic ÷4.",
        f"- One stage-1 generator: `{r['stage1']['recipe']}` (L1, {r['stage1']['iters']} iterations, "
        f"{r['stage1']['gt_size']}² crops of the training photos, batch {r['stage1']['batch']}).",
        f"- Every run: fine-tuned from it for {st['iters']} iterations, batch {st['batch']}, {st['gt_size']}² crops, "
        f"the same batches in the same order per seed; seeds {tuple(st['seeds'])}; generator loss L1 (weight 1) + "
        "GAN terms (stock discriminators: one term of weight w; SFD and its ablations: w/2 per head, so Feat-D only "
        "and TG-D only keep SFD's per-head weight); no perceptual loss; optimisers, EMA (evaluated) and G "
        "learning rate from `options/demo_SFD_cpu.yml`; stock discriminators at base width "
        f"{st['d_width']}; SFD heads: {st['n_ctx']} context tokens, Feat-D width {st['feat_mid']}, CLIP "
        f"`quality-tiny-rn` (sha256 {r['clips']['quality_sha256'][:12]}…).",
        f"- GAN weights {tuple(st['gan_weights'])} for {', '.join(CONTESTANTS[k].label for k in st['frontier'])} "
        f"(the frontier); the others at {st['gan_weights'][(len(st['gan_weights']) - 1) // 2]:g}. The L1-only control "
        "is the same fine-tuning with GAN weight 0.",
        f"- Discriminator learning rate: per contestant from {tuple(st['lr_grid'])}, chosen on the **validation** "
        "photos (lowest realism-test accuracy of the first seed's run at the middle weight; that run is reused as "
        f"its seed-{st['seeds'][0]} run). D accuracy: on {16} fixed validation crops (real HR vs the generator's "
        f"output, every output position), 10 times per run; **did not learn** = above {LEARNED_ACCURACY} at fewer "
        f"than {LEARNED_PROBES} probes on every seed.",
        "- Measures on the whole held-out photos: PSNR/SSIM on Y (4-pixel border), NIQE on Y (BasicSR's), and the "
        "**realism test** — a small CNN trained from scratch (no CLIP, statistics-pooling head unlike every "
        f"contestant; {r['realism_critic']['params_at_width_16']:,} parameters) to tell HR from SR patches "
        f"({dict(st['realism'])}), cross-validated across held-out scenes: 50 % = indistinguishable. "
        "The zero-shot CLIP judge of the earlier bake-off is dropped (not independent of SFD's CLIP).",
        f"- Sanity rows: {', '.join(SANITY_ROWS.values())} (unsharp mask σ {USM['sigma']}, amount {USM['amount']}).",
        "- Intervals: 95 %, two-way bootstrap over held-out scenes × seeds (sfd_lab/bakeoff/stats.py); paired where "
        "two methods are compared; Wilcoxon signed-rank p over scenes.",
        "",
        "## Learning-rate choice (validation photos)",
        "",
        *_lr_rows(r),
        "",
        "## Results on the whole held-out photos",
        "",
        "Mean [95 % interval] over scenes × seeds. Realism-test accuracy: lower = harder to tell from HR.",
        "",
        *_method_rows(r),
        "",
        "Realism test per method (cross-validation over held-out scenes): accuracy, spread over folds (mean ± std), "
        "critic's fit on its training patches:",
        "",
        "| method | accuracy [95 % CI, scenes] | folds mean ± std | critic train accuracy |",
        "|---|---|---|---|",
        *[
            f"| {r['labels'][k]} | {v['accuracy']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] | "
            f"{v['fold_mean']:.3f} ± {v['fold_std']:.3f} | {np.mean(v.get('train_accuracy', [float('nan')])):.3f} |"
            for k, v in [(k, x["realism"]) for k, x in r["methods"].items()]
            + [(k, x["realism"]) for k, x in r["reference_rows"].items() if x["realism"]]
        ],
        "",
        "## Sanity checks of the measures",
        "",
        *_flag_lines(r),
        "",
        "## Paired comparisons",
        "",
        "A − B over the same scenes and seeds (same seed = same batches in the same order).",
        "",
    ]
    sfd_side = [
        c for c in r["comparisons"] if c["question"] in ("SFD vs a stock discriminator", "ablation", "Feat-D design")
    ]
    rest = [c for c in r["comparisons"] if c not in sfd_side]
    lines += [
        "### SFD against the other discriminators, its ablations and Feat-D's normalisation (middle GAN weight)",
        "",
    ]
    lines += [f"- {sentence(r, comp, mm)}" for comp in sfd_side for mm in comp["measures"]] or ["(no SFD run)"]
    lines += [
        "",
        "### Each GAN term against the L1-only control, and SFD against its start",
        "",
        "▲: A better, ▼: B better (95 % interval of A − B excludes zero), ·: no difference shown.",
        "",
        *_comparison_table(r, rest),
    ]
    lines += [
        "",
        "## Frontier: realism and NIQE at matched PSNR",
        "",
        "Each curve: L1 control (weight 0), then the GAN weights; values interpolated linearly in PSNR.",
        "",
        *_frontier_lines(r),
        "",
        f"![perception-distortion frontier]({files['pd_plot']})",
        "",
        "Montage (first seed, middle GAN weight; the most detailed 128² window of the three most detailed "
        "held-out photos): "
        + (
            f"![montage]({files['montage']})"
            if files.get("montage")
            else "`montage.png` in the run's `--out` folder (not published: it shows crops of the photo set, "
            "which is not ours to redistribute)"
        ),
        "",
        "## Feat-D design study",
        "",
    ]
    if r["featd_study"]:
        lines.append(f"From `benchmarks/results/{r['featd_study']}` (the Feat-D study on the validation split):")
        lines.append("")
        with open(os.path.join(ROOT, "benchmarks", "results", r["featd_study"]), encoding="utf-8") as f:
            lines += [("###" + x[1:]) if x.startswith("#") else x for x in f.read().splitlines()]
    else:
        lines.append("(no `benchmarks/results/featd_study-*.md` in this checkout)")
    lines += [
        "",
        "## Measured cost per task",
        "",
        "Wall seconds on this machine (its load above) and CPU seconds of the task's own process (one torch thread).",
        "",
        "| task | n | median wall s | total wall s | median CPU s | total CPU s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['kind']} | {c['n']} | {c['median_wall_s']} | {c['total_wall_s']} | {_f(c['median_cpu_s'], 1)} | "
        f"{_f(c['total_cpu_s'], 1)} |"
        for c in r["costs"]
    ]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: str, results_dir: str | None, photos: dict) -> dict:
    """``report.{md,json}``, ``pd.png`` and ``montage.png`` under ``out_dir``; with ``results_dir`` also
    ``bakeoff-<date>[-quick].{md,json}`` and the PNGs there. ``photos``: the run's photo set (for the
    montage's HR column)."""
    from sfd_lab.bakeoff.jobs import pairs_of

    pd_path = plot_frontier(report, os.path.join(out_dir, "pd.png"))
    pairs = pairs_of(photos, "test", os.path.join(out_dir, "lr_cache"))
    mid = report["settings"]["gan_weights"][(len(report["settings"]["gan_weights"]) - 1) // 2]
    seed0 = report["settings"]["seeds"][0]
    columns = [("HR", "HR"), ("Bicubic", os.path.join(out_dir, "sr", "bicubic"))]
    columns += [("Bic.+USM+noise4", os.path.join(out_dir, "sr", "bicubic_usm_noise4"))]
    columns += [("Stage 1", os.path.join(out_dir, "sr", "stage1"))]
    for key in report["settings"]["contestants"]:
        w = 0.0 if key == "l1" else mid
        columns.append((CONTESTANTS[key].short, os.path.join(out_dir, "sr", f"{key}-w{w:g}", f"seed{seed0}")))
    mont = montage({p.name: p.hr for p in pairs}, columns, os.path.join(out_dir, "montage.png"))
    report["files"] = {"pd_plot": pd_path, "montage": mont}
    names = {"pd_plot": "pd.png", "montage": "montage.png"}
    json_path, md_path = os.path.join(out_dir, "report.json"), os.path.join(out_dir, "report.md")
    if results_dir:
        stem = f"bakeoff-{report['date']}" + ("-quick" if report["quick"] else "")
        os.makedirs(results_dir, exist_ok=True)
        pub = {"pd_plot": f"{stem}-pd.png", "montage": f"{stem}-montage.png"}
        if not str(report["photos"]["source"]).startswith("scikit-image"):
            del pub["montage"]  # crops of the prepared photos stay on the machine that prepared them
        for k, name in pub.items():
            shutil.copyfile(report["files"][k], os.path.join(results_dir, name))
        report["files"]["results"] = {"md": f"{stem}.md", "json": f"{stem}.json", **pub}
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, default=str)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(render_markdown(report, names))
    if results_dir:
        res = report["files"]["results"]
        shutil.copyfile(json_path, os.path.join(results_dir, res["json"]))
        with open(os.path.join(results_dir, res["md"]), "w", encoding="utf-8") as f:
            f.write(render_markdown(report, {"pd_plot": res["pd_plot"], "montage": res.get("montage")}))
    report["files"].update({"report_md": md_path, "report_json": json_path})
    return report
