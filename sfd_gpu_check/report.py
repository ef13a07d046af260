"""Reports of the GPU check (``sfd_gpu_check.run``): the numbers it keeps from each benchmark step,
its Markdown file and the summary it prints."""

from __future__ import annotations

import json


def summarise_benchmark(bench: dict) -> dict:
    """The numbers the GPU check reports from a benchmark JSON (per row: configs and verdicts)."""
    out: dict = {"device": bench["meta"]["device"], "profile": bench["meta"]["profile"]["name"]}
    keys = (
        "median_s",
        "min_s",
        "spread",
        "time_ratio",
        "time_ratio_min",
        "time_ratio_max",
        "peak_mem_mb",
        "mem_ratio",
        "frozen_clip_mb",
        "frozen_clip_dtype",
        "speedup_vs_naive",
        "precision",
    )
    for row_name, row in bench["rows"].items():
        entry: dict = {"status": row.get("status")}
        if row.get("configs"):
            entry["configs"] = {c["name"]: {k: c[k] for k in keys if k in c} for c in row["configs"]}
        if row_name == "iqa" and row.get("sweep"):
            entry["images_per_s"] = {
                str(s["batch_images"]): {
                    n: round(s[n]["images_per_s"], 1) for n in ("sfd_iqa", "sfd_iqa_text_once", "clip_floor") if n in s
                }
                for s in row["sweep"]
            }
            entry["precision"] = row.get("precision")
        if row_name == "components" and row.get("tables"):
            entry["ms_and_share"] = {
                t["config"]: {r["component"]: [round(r["ms"], 2), round(r["share"] or 0.0, 3)] for r in t["rows"]}
                for t in row["tables"]
            }
        entry["targets"] = [
            {"what": t["what"], "value": t["value"], "target": t["target"], "verdict": t.get("verdict")}
            for t in row.get("targets", [])
        ]
        out[row_name] = entry
    return out


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def to_markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [
        f"# GPU check ({meta['mode']} mode) on {meta.get('device') or 'unknown device'}",
        "",
        f"- date {meta['date']}, budget {meta['budget_s']:.0f} s, wall {meta['wall_s']:.0f} s; GPUs listed: "
        f"{meta['gpus']}; setup: {meta['setup']}",
        f"- command: `{meta['command']}`",
    ]
    if meta["mode"] == "cpu":
        lines.append("- **CPU rehearsal: tiny sizes; checks every step's machinery, its numbers mean nothing**")
    lines += ["", "| step | status | wall s | note |", "|---|---|---|---|"]
    for s in report["steps"]:
        note = s.get("reason") or (
            "see " + s["log"] if s.get("status") not in ("ok", "skipped") and s.get("log") else ""
        )
        lines.append(f"| {s['step']} | {s['status']} | {_fmt(s.get('wall_s'), 1)} | {note} |")
    env = next((s.get("result") for s in report["steps"] if s["step"] == "env"), None)
    if env:
        lines += [
            "",
            f"Environment: torch {env.get('torch')} (CUDA {env.get('cuda')}), devices {env.get('devices')}, "
            f"bf16 {env.get('bf16_supported')}, versions {env.get('versions')}.",
        ]
    for s in report["steps"]:
        result = s.get("result")
        if s["step"] in ("gan_step", "iqa", "bench_extra") and result:
            lines += ["", f"## {s['step']} ({result['profile']} profile)"]
            for row_name, row in result.items():
                if not isinstance(row, dict):
                    continue
                if row.get("configs"):
                    lines += [
                        "",
                        f"`{row_name}`:",
                        "",
                        "| config | s/iter | spread | time × | peak MB | mem × | frozen CLIP |",
                        "|---|---|---|---|---|---|---|",
                    ]
                    for cname, c in row["configs"].items():
                        frozen = (
                            "-"
                            if c.get("frozen_clip_mb") is None
                            else f"{c['frozen_clip_mb']:.0f} MB {c.get('frozen_clip_dtype')}"
                        )
                        lines.append(
                            f"| {cname} | {_fmt(c.get('median_s'))} | {_fmt(c.get('spread'), 2)} | "
                            f"{_fmt(c.get('time_ratio'), 2)} | "
                            f"{_fmt(c.get('peak_mem_mb'), 0)} | {_fmt(c.get('mem_ratio'), 2)} | {frozen} |"
                        )
                if row.get("ms_and_share"):
                    lines += ["", f"`{row_name}` (ms, share of the step; full table in the step's copied .md):"]
                    for cname, parts in row["ms_and_share"].items():
                        body = ", ".join(f"{k} {v[0]:.1f} ms ({100 * v[1]:.0f} %)" for k, v in parts.items())
                        lines.append(f"- {cname}: {body}")
                if row.get("images_per_s"):
                    lines += [
                        "",
                        f"`{row_name}` images/s ({row.get('precision')}) by batch: {json.dumps(row['images_per_s'])}",
                    ]
                if row.get("targets"):
                    lines += [""] + [
                        f"- {t['what']}: {_fmt(t['value'])} ({t['target']}): {t['verdict']}" for t in row["targets"]
                    ]
        if s["step"] == "clip_full" and result:
            lines += [
                "",
                "## Full-size CLIP forward + backward to the input (random weights)",
                "",
                "| model | input | amp | s/batch | images/s | peak MB (activations) | weights |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in result["models"]:
                if r.get("error"):
                    lines.append(
                        f"| {r['model']} | {r['size']}² ×{r['batch']} | {r['amp']} | error: {r['error'][:80]} | | | |"
                    )
                    continue
                lines.append(
                    f"| {r['model']} | {r['size']}² ×{r['batch']} | {r['amp']} | {_fmt(r['median_s'])} | "
                    f"{_fmt(r['images_per_s'], 1)} | "
                    f"{_fmt(r['peak_mem_mb'], 0)} | {r['weights_mb']:.0f} MB {r['weights_dtype']} |"
                )
        if s["step"] == "ddp" and result:
            lines += [
                "",
                f"DDP smoke ({result['backend']}): world size 2 seen: {result['world_size_2']}, "
                f"checkpoint written: {result['checkpoint']}.",
            ]
    return "\n".join(lines) + "\n"


def summary_lines(report: dict) -> list[str]:
    lines = [f"GPU check ({report['meta']['mode']}): {report['meta']['wall_s']:.0f} s"]
    for s in report["steps"]:
        lines.append(f"  {s['step']:<12} {s['status']:<8} {_fmt(s.get('wall_s'), 1):>6} s  {s.get('reason', '')}")
    for s in report["steps"]:
        for row in (s.get("result") or {}).values() if s["step"] in ("gan_step", "iqa", "bench_extra") else ():
            if isinstance(row, dict):
                for t in row.get("targets", []):
                    lines.append(f"  {t['what']}: {_fmt(t['value'])} ({t['target']}) {t['verdict']}")
        if s["step"] == "clip_full" and s.get("result"):
            for r in s["result"]["models"]:
                lines.append(
                    f"  CLIP {r['model']}: "
                    + (
                        r["error"]
                        if r.get("error")
                        else f"{_fmt(r['median_s'])} s per {r['batch']}×{r['size']}², "
                        f"peak {_fmt(r['peak_mem_mb'], 0)} MB"
                    )
                )
    return lines
