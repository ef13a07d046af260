"""The Feat-D design study's report: every variant against the study's baseline (the first design),
paired by validation image and seed, with two-way bootstrap intervals (sfd_lab.bakeoff.stats), and the
decision rule applied.

Decision rule (fixed before the runs): a variant *beats the default* when, in at least one
configuration (Feat-D only, Feat-D + TG-D), the 95 % interval of its difference from the default
excludes zero in its favour on the realism test (two-sample accuracy, lower = better) or on NIQE
(lower = better); in no configuration is it shown worse than the default on either of those; and in
every configuration its mean PSNR-Y is at most ``PSNR_MARGIN`` dB below the default's. Among several
winners the one with the largest realism gain (then NIQE gain) in the Feat-D + TG-D configuration is
named. Every number here is from the validation split; the held-out test photos are not read.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from sfd_lab.bakeoff import featd_study as fs
from sfd_lab.bakeoff.evaluate import per_scene

PSNR_MARGIN = 0.10  # dB: the most PSNR-Y a winning variant may cost on average
# what each configuration is set against to ask whether Feat-D helps at all: Feat-D alone against the same
# fine-tuning without a GAN term; Feat-D + TG-D against TG-D alone (Feat-D's share of SFD)
CONTROL_OF = {"feat": "l1", "sfd": "tg_d"}
MEASURES = {"psnr": "higher", "niqe": "lower", "realism": "lower"}


def _image_grid(results: dict, task_ids: list[str], measure: str, scenes: list[str]) -> np.ndarray:
    """(scenes, seeds) matrix of PSNR-Y or NIQE from one variant's runs (one task per seed)."""
    return np.stack([per_scene(results[t]["per_image"], measure, scenes) for t in task_ids], axis=1)


def _realism_grid(result: dict, scenes: list[str]) -> np.ndarray:
    """(scenes, seeds) matrix of realism-test accuracies (the seeds pooled in one test)."""
    return np.array([[seed[s] for seed in result["per_seed"]] for s in scenes], dtype=np.float64)


def _without_grids(row: dict) -> dict:
    return {k: x for k, x in row.items() if k != "grids"}


def _grids_as_lists(row: dict) -> dict:
    return {m: g.tolist() for m, g in row["grids"].items()}


def _run_summary(r: dict) -> dict:
    keep = ("network_d", "generator_losses", "train_seconds", "eval_seconds", "cpu_seconds", "task_wall_s")
    return {
        **{k: r[k] for k in keep if k in r},
        **{k: r[k] for k in r if k.startswith("d_acc")},
        "per_image": r["per_image"],
    }


def _tail(runs: list[dict], key: str) -> float | None:
    """Mean over runs of a training-log value's mean over the last three log points (None if not logged)."""
    vals = [np.mean([row[key] for row in r["curve"][-3:]]) for r in runs if key in r["curve"][-1]]
    return float(np.mean(vals)) if vals else None


def _method_row(results: dict, ids: list[str], realism_id: str, scenes: list[str], mean_ci) -> dict:
    """Grids, means with intervals and training facts of one method (one task per seed)."""
    grids = {m: _image_grid(results, ids, m, scenes) for m in ("psnr", "niqe")}
    grids["realism"] = _realism_grid(results[realism_id], scenes)
    runs = [results[t] for t in ids]
    d_accs = [r["d_acc_last3"] for r in runs if r.get("d_acc_last3") is not None]
    return {
        "grids": grids,
        "mean": {m: mean_ci(g) for m, g in grids.items()},
        "realism_pooled": {k: results[realism_id][k] for k in ("accuracy", "ci95")},
        "d_acc_probe": float(np.mean(d_accs)) if d_accs else None,
        "acc_d_feat_train": _tail(runs, "acc_d_feat"),
        "l_d_feat_train": _tail(runs, "l_d_feat"),
        "acc_d_text_train": _tail(runs, "acc_d_text"),
        "cpu_seconds": float(np.mean([r["cpu_seconds"] for r in runs])),
    }


def build_report(settings, results: dict, facts: dict) -> dict:
    """The report dict from the study's task results: references, per config and variant the means with
    intervals and the paired differences from the default, the decision, and the per-run facts."""
    from sfd_lab.bakeoff.stats import mean_ci, paired_difference

    prep = results["prepare"]
    val = prep["splits"]["val"]
    scenes = list(dict.fromkeys(v["scene"] for v in val))
    refs = {}
    for row in fs.REFERENCES:
        per = results[f"ref-{row}"]["per_image"]
        refs[row] = {
            m: float(np.mean([x[m] for x in per.values()])) for m in ("psnr", "niqe") if m in next(iter(per.values()))
        }
        if f"realism-{row}" in results:
            rr = results[f"realism-{row}"]
            refs[row].update(realism=rr["accuracy"], realism_ci=rr["ci95"])
    controls = {}
    for control, label in fs.CONTROLS.items():
        ids = [f"control-{control}-s{seed}" for seed in settings.seeds]
        controls[control] = {"label": label, **_method_row(results, ids, f"realism-control-{control}", scenes, mean_ci)}
    table = {}
    for config in settings.configs:
        per_variant = {}
        for variant in settings.variants:
            ids = [f"run-{fs.run_key(variant, config, seed)}" for seed in settings.seeds]
            row = {"factor": fs.VARIANTS[variant][0], "what": fs.VARIANTS[variant][1]}
            per_variant[variant] = {**row, **_method_row(results, ids, f"realism-{variant}-{config}", scenes, mean_ci)}
        base, control = per_variant["default"]["grids"], controls[CONTROL_OF[config]]["grids"]
        for variant, row in per_variant.items():
            row["vs_default"] = {}
            if variant != "default":
                row["vs_default"] = {m: paired_difference(row["grids"][m], base[m], b) for m, b in MEASURES.items()}
            row["vs_control"] = {m: paired_difference(row["grids"][m], control[m], b) for m, b in MEASURES.items()}
        table[config] = per_variant
    report = {
        "title": "Feat-D design study on the validation photos",
        **facts,
        "photos": {
            "source": prep["source"],
            "manifest_sha256": prep["manifest_sha256"],
            "train": [p["name"] for p in prep["splits"]["train"]],
            "val": val,
        },
        "clip": {"file": os.path.basename(results["clip"]["quality"]), "sha256": results["clip"]["sha256"]},
        "stage1": {k: v for k, v in results["stage1"].items() if k != "curve"},
        "decision_rule": __doc__.split("Decision rule (fixed before the runs): ")[1].split("\n\n")[0],
        "psnr_margin_db": PSNR_MARGIN,
        "references": refs,
        "controls": {c: _without_grids(row) for c, row in controls.items()},
        "control_of": CONTROL_OF,
        "table": {c: {v: _without_grids(row) for v, row in t.items()} for c, t in table.items()},
        "grids": {c: {v: _grids_as_lists(row) for v, row in t.items()} for c, t in table.items()},
        "scenes": scenes,
        "runs": {t: _run_summary(r) for t, r in sorted(results.items()) if t.startswith(("run-", "control-"))},
        "realism_tests": {
            t[8:]: {k: x for k, x in r.items() if k not in ("per_scene", "per_image")}
            for t, r in sorted(results.items())
            if t.startswith("realism-")
        },
    }
    report["decision"] = decide(report)
    return report


def decide(report: dict) -> dict:
    """The decision rule applied to every variant: {variant: {wins, reasons}, 'winner': name or None}."""
    table = report["table"]
    out = {}
    for variant in next(iter(table.values())):
        if variant == "default":
            continue
        better, worse, psnr_costs = [], [], []
        for config, rows in table.items():
            vs = rows[variant]["vs_default"]
            for m in ("realism", "niqe"):
                if m in vs and vs[m]["verdict"] == "A better":
                    better.append(f"{m} in {config}")
                if m in vs and vs[m]["verdict"] == "B better":
                    worse.append(f"{m} in {config}")
            if "psnr" in vs and vs["psnr"]["delta"] < -PSNR_MARGIN:
                psnr_costs.append(f"{config} {vs['psnr']['delta']:+.2f} dB")
        wins = bool(better) and not worse and not psnr_costs
        out[variant] = {"wins": wins, "better": better, "worse": worse, "psnr_beyond_margin": psnr_costs}
    winners = [v for v, d in out.items() if d["wins"]]

    def gain(v: str) -> tuple:
        vs = table.get("sfd", table[next(iter(table))])[v]["vs_default"]
        return tuple(-vs[m]["delta"] if m in vs else 0.0 for m in ("realism", "niqe"))

    return {"variants": out, "winner": max(winners, key=gain) if winners else None}


# -- markdown ------------------------------------------------------------------------------------------------
def _ci(d: dict | None, fmt: str) -> str:
    if not d:
        return "—"
    return f"{d['mean']:{fmt}} [{d['ci'][0]:{fmt}}, {d['ci'][1]:{fmt}}]"


def _delta(d: dict | None, fmt: str) -> str:
    if not d:
        return "—"
    mark = {"A better": " ✓", "B better": " ✗"}.get(d["verdict"], "")
    return f"{d['delta']:+{fmt}} [{d['ci'][0]:+{fmt}}, {d['ci'][1]:+{fmt}}]{mark}"


def render_markdown(r: dict) -> str:
    p, st, s1 = r["photos"], r["settings"], r["stage1"]
    val = ", ".join(f"{v['name']} ({v['scene']}, {v['hr_size'][1]}×{v['hr_size'][0]})" for v in p["val"])
    realism = ", ".join(f"{k} {v}" for k, v in st["realism"])
    lines = [
        f"# {r['title']} ({r['date']})" + (" — QUICK REHEARSAL, numbers mean nothing" if r["quick"] else ""),
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']['cpu']}, {r['machine']['jobs']} worker processes of one torch thread; this command "
        f"ran {r['tasks_ran']} tasks ({r['tasks_skipped']} were on disk) in {r['wall_s'] / 60:.1f} min; the tasks' "
        f"CPU time {r['task_cpu_s'] / 60:.1f} min; load average {r['load_start']} at the start, {r['load_end']} at "
        "the end (the machine is shared with other work).",
        "",
        f"- Photos: {p['source']} (manifest sha256 {p['manifest_sha256']}). Generators train on random crops of the "
        f"train split ({', '.join(p['train'])}); everything below is measured on the whole photos of the "
        f"**validation** split: {val}. The held-out test photos are not read.",
        f"- The bake-off's stage-1 L1 generator ({s1['iters']} iterations, {s1['gt_size']}² crops, seed {s1['seed']}), "
        f"then per variant, configuration and seed ({', '.join(map(str, st['seeds']))}): {st['iters']} iterations, "
        f"batch {st['batch']}, {st['gt_size']}² crops, L1 (weight 1) + each head at weight {st['head_weight']} (Feat-D "
        f"only and Feat-D + TG-D alike, as inside SFD), D Adam lr {st['d_lr']}, Feat-D width {st['feat_mid']}, "
        f"{st['n_ctx']} TG-D context tokens, CLIP `quality-tiny-rn` ({r['clip']['file']}, sha256 "
        f"{r['clip']['sha256'][:12]}); the bake-off's optimisers, EMA (evaluated) and per-seed batch order.",
        "- Measures per validation photo: PSNR-Y (border 4, ↑), NIQE (BasicSR's, Y, whole image, ↓), realism: "
        "held-out accuracy of the bake-off's classifier two-sample test of HR against SR patches, cross-validated "
        f"across the validation scenes, a variant's seeds pooled ({realism}; 0.5 = indistinguishable, ↓). "
        "Feat-D learning: its discriminator loss and accuracy on its own training batches (real and fake, every "
        "position), mean of the last three log points (2 ln 2 = 1.386 and 0.5 = chance).",
        "- Intervals: 95 % two-way bootstrap over scenes × seeds (sfd_lab.bakeoff.stats); Δ = variant − default "
        "(or − control), paired by scene and seed; ✓ = shown better, ✗ = shown worse.",
        "- Controls, fine-tuned the same way for every seed: L1 only (GAN weight 0: what the iterations alone do) and "
        "TG-D only (its head at the same weight). Feat-D only is set against L1 only, Feat-D + TG-D against TG-D "
        "only: does Feat-D help at all?",
        "",
        "## References (validation photos)",
        "",
        "| | PSNR-Y | NIQE | realism [95 % CI over scenes] |",
        "|---|---|---|---|",
    ]
    for name, ref in r["references"].items():
        psnr = "n/a" if name == "hr" else f"{ref['psnr']:.2f}"
        real = (
            "—"
            if ref.get("realism") is None
            else f"{ref['realism']:.3f} [{ref['realism_ci'][0]:.3f}, {ref['realism_ci'][1]:.3f}]"
        )
        lines.append(f"| {name} | {psnr} | {ref['niqe']:.2f} | {real} |")
    lines += ["", "## Controls (validation photos)", "", "| control | PSNR-Y | NIQE | realism |", "|---|---|---|---|"]
    for row in r["controls"].values():
        m = row["mean"]
        lines.append(
            f"| {row['label']} | {_ci(m['psnr'], '.2f')} | {_ci(m['niqe'], '.2f')} | {_ci(m['realism'], '.3f')} |"
        )
    for config, rows in r["table"].items():
        control = r["controls"][r["control_of"][config]]["label"]
        lines += [
            "",
            f"## {fs.CONFIGS[config]}",
            "",
            "| variant | what | PSNR-Y | NIQE | realism | Δ PSNR-Y | Δ NIQE | Δ realism |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for variant, row in rows.items():
            m, vs = row["mean"], row["vs_default"]
            lines.append(
                f"| {variant} | {row['what']} | {_ci(m['psnr'], '.2f')} | {_ci(m['niqe'], '.2f')} | "
                f"{_ci(m['realism'], '.3f')} | {_delta(vs.get('psnr'), '.2f')} | {_delta(vs.get('niqe'), '.2f')} | "
                f"{_delta(vs.get('realism'), '.3f')} |"
            )
        lines += [
            "",
            f"Against the control ({control}), and whether Feat-D learned:",
            "",
            f"| variant | Δ PSNR-Y vs {control} | Δ NIQE | Δ realism | Feat-D D loss | Feat-D acc. | CPU s/run |",
            "|---|---|---|---|---|---|---|",
        ]
        for variant, row in rows.items():
            vs = row["vs_control"]
            lines.append(
                f"| {variant} | {_delta(vs['psnr'], '.2f')} | {_delta(vs['niqe'], '.2f')} | "
                f"{_delta(vs['realism'], '.3f')} | {row['l_d_feat_train']:.3f} | {row['acc_d_feat_train']:.3f} | "
                f"{row['cpu_seconds']:.0f} |"
            )
    d = r["decision"]
    lines += ["", "## Decision", "", f"Rule: {r['decision_rule']}", ""]
    for variant, v in d["variants"].items():
        said = "beats the default" if v["wins"] else "does not beat the default"
        parts = [f"better on {', '.join(v['better'])}" if v["better"] else "shown better on nothing"]
        if v["worse"]:
            parts.append(f"worse on {', '.join(v['worse'])}")
        if v["psnr_beyond_margin"]:
            parts.append(f"PSNR cost beyond {r['psnr_margin_db']} dB ({', '.join(v['psnr_beyond_margin'])})")
        lines.append(f"- **{variant}** {said}: {'; '.join(parts)}.")
    lines += ["", f"Winner: **{d['winner']}**." if d["winner"] else "Winner: none (the baseline stays)."]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: str, results_dir: str | None) -> dict:
    """``out_dir/report.{md,json}``; with ``results_dir`` also ``featd_study-<date>[-quick].{md,json}``."""
    paths = {"report_md": os.path.join(out_dir, "report.md"), "report_json": os.path.join(out_dir, "report.json")}
    with open(paths["report_json"], "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, default=str)
    with open(paths["report_md"], "w", encoding="utf-8") as f:
        f.write(render_markdown(report))
    if results_dir:
        os.makedirs(results_dir, exist_ok=True)
        stem = os.path.join(results_dir, f"featd_study-{report['date']}" + ("-quick" if report["quick"] else ""))
        shutil.copyfile(paths["report_json"], stem + ".json")
        shutil.copyfile(paths["report_md"], stem + ".md")
        paths.update({"results_md": stem + ".md", "results_json": stem + ".json"})
    report["files"] = paths
    return report
