"""The Feat-D design study's report: every variant against today's default, paired by validation image
and seed, with two-way bootstrap intervals (sfd_lab.bakeoff.stats), and the decision rule applied.

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

PSNR_MARGIN = 0.10  # dB: the most PSNR-Y a winning variant may cost on average
MEASURES = {"psnr": "higher", "niqe": "lower", "realism": "lower"}


def _image_grid(records: list[dict], measure: str, scenes: list[str]) -> np.ndarray:
    """(scenes, seeds) matrix of PSNR-Y or NIQE from the runs of one variant (one record per seed)."""
    per = [{im["scene"]: im[measure] for im in r["images"]} for r in records]
    return np.array([[p[s] for p in per] for s in scenes], dtype=np.float64)


def _realism_grid(result: dict, scenes: list[str]) -> np.ndarray:
    """(scenes, seeds) matrix of realism-test accuracies: per scene, one per pooled run (seed)."""
    return np.array([result["per_image"][s] for s in scenes], dtype=np.float64)


def _without_grids(row: dict) -> dict:
    return {k: x for k, x in row.items() if k != "grids"}


def _grids_as_lists(row: dict) -> dict:
    return {m: g.tolist() for m, g in row["grids"].items()}


def build_report(settings, runs: dict, references: dict, realism: dict, photos: dict, facts: dict) -> dict:
    """The report dict: references, per config and variant the means with intervals and the paired
    differences from the default, the decision, and the stored per-run facts."""
    from sfd_lab.bakeoff.stats import mean_ci, paired_difference

    scenes = [v["scene"] for v in photos["val"]]
    refs = {}
    for name, rows in references.items():
        refs[name] = {m: float(np.mean([r[m] for r in rows])) for m in ("psnr", "niqe")}
        if name in realism:
            refs[name].update(realism=realism[name]["accuracy"], realism_ci=realism[name]["ci95"])
    table = {}
    for config in settings.configs:
        per_variant = {}
        for variant in settings.variants:
            records = [runs[fs.run_key(variant, config, seed)] for seed in settings.seeds]
            grids = {m: _image_grid(records, m, scenes) for m in ("psnr", "niqe")}
            grids["realism"] = _realism_grid(realism[f"{variant}-{config}"], scenes)
            row = {"factor": fs.VARIANTS[variant][0], "what": fs.VARIANTS[variant][1], "grids": grids}
            row["mean"] = {m: mean_ci(g) for m, g in grids.items()}
            row["d_accuracy_feat"] = float(np.mean([r["d_accuracy_feat_late"] for r in records]))
            text = [r["d_accuracy_text_late"] for r in records if r["d_accuracy_text_late"] is not None]
            row["d_accuracy_text"] = float(np.mean(text)) if text else None
            row["train_seconds"] = float(np.mean([r["train_seconds"] for r in records]))
            row["cpu_seconds"] = float(np.mean([r["cpu_seconds"] for r in records]))
            per_variant[variant] = row
        base = per_variant["default"]["grids"]
        for variant, row in per_variant.items():
            row["vs_default"] = (
                {}
                if variant == "default"
                else {m: paired_difference(row["grids"][m], base[m], b) for m, b in MEASURES.items()}
            )
        table[config] = per_variant
    report = {
        "title": "Feat-D design study on the validation photos",
        **facts,
        "photos": photos,
        "decision_rule": __doc__.split("Decision rule (fixed before the runs): ")[1].split("\n\n")[0],
        "psnr_margin_db": PSNR_MARGIN,
        "references": refs,
        "table": {c: {v: _without_grids(row) for v, row in t.items()} for c, t in table.items()},
        "grids": {c: {v: _grids_as_lists(row) for v, row in t.items()} for c, t in table.items()},
        "scenes": scenes,
        "runs": {k: {x: y for x, y in r.items() if x != "settings"} for k, r in sorted(runs.items())},
        "realism_runs": {
            k: {x: y for x, y in v.items() if x not in ("per_scene", "per_image")} for k, v in realism.items()
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
    p = r["photos"]
    val = ", ".join(f"{v['name']} ({v['scene']}, {v['size'][0]}×{v['size'][1]})" for v in p["val"])
    lines = [
        f"# {r['title']} ({r['date']})" + (" — QUICK REHEARSAL, numbers mean nothing" if r["quick"] else ""),
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']['cpu']}, {r['machine']['jobs']} worker processes of one torch thread; runs done now "
        f"{r['runs_done_now']} in {r['runs_wall_s'] / 60:.1f} min, whole command {r['wall_s'] / 60:.1f} min; load "
        f"average {r['load_start']} at the start, {r['load_end']} at the end (the machine is shared).",
        "",
        f"- Photos: {p['source']} (manifest sha256 {p['manifest_sha256']}). Generators train on {p['training_tiles']} "
        f"tiles of the train split ({', '.join(p['train'])}); everything below is measured on the whole images of "
        f"the **validation** split: {val}. "
        "The held-out test photos are not read.",
        f"- One stage-1 L1 generator ({r['stage1']['iters']} iterations, {r['stage1']['gt_size']}² crops), then per "
        f"variant, configuration and seed ({', '.join(map(str, r['settings']['seeds']))}): {r['settings']['iters']} "
        f"iterations, batch {r['settings']['batch']}, {r['settings']['gt_size']}² crops, L1 + each head at weight "
        f"{r['settings']['head_weight']} (Feat-D only and Feat-D + TG-D alike), D lr {r['settings']['d_lr']}, Feat-D "
        f"width {r['settings']['feat_mid']}, {r['settings']['n_ctx']} TG-D context tokens, CLIP `quality-tiny-rn` "
        f"({r['clip']}); the bake-off's optimisers, EMA and per-seed batch order.",
        "- Measures per validation image: PSNR-Y (border 4, ↑), NIQE (BasicSR's, Y, whole image, ↓), realism: "
        "held-out accuracy of a classifier two-sample test of HR against SR patches, cross-validated across the "
        "validation scenes (sfd_lab.bakeoff.realism; 0.5 = indistinguishable, ↓).",
        "- Intervals: 95 % two-way bootstrap over scenes × seeds (sfd_lab.bakeoff.stats); Δ = variant − default, "
        "paired by scene and seed; ✓ = shown better than the default, ✗ = shown worse.",
        "",
        "## References (validation images)",
        "",
        "| | PSNR-Y | NIQE | realism |",
        "|---|---|---|---|",
    ]
    for name, ref in r["references"].items():
        psnr = "n/a" if name == "hr" else f"{ref['psnr']:.2f}"
        real = "—" if ref.get("realism") is None else f"{ref['realism']:.3f}"
        lines.append(f"| {name} | {psnr} | {ref['niqe']:.2f} | {real} |")
    for config, rows in r["table"].items():
        lines += [
            "",
            f"## {fs.CONFIGS[config]}",
            "",
            "| variant | what | PSNR-Y | NIQE | realism | Δ PSNR-Y | Δ NIQE | Δ realism | D acc. Feat-D | CPU s/run |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for variant, row in rows.items():
            m, vs = row["mean"], row["vs_default"]
            lines.append(
                f"| {variant} | {row['what']} | {_ci(m['psnr'], '.2f')} | {_ci(m['niqe'], '.2f')} | "
                f"{_ci(m['realism'], '.3f')} | {_delta(vs.get('psnr'), '.2f')} | {_delta(vs.get('niqe'), '.2f')} | "
                f"{_delta(vs.get('realism'), '.3f')} | {row['d_accuracy_feat']:.2f} | {row['cpu_seconds']:.0f} |"
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
    lines += ["", f"Winner: **{d['winner']}**." if d["winner"] else "Winner: none (today's default stays)."]
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
