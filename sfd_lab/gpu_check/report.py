"""Reports of the GPU check (``sfd_lab.gpu_check.run``): the numbers it keeps from each step, the list of
issue 21's targets (value, limit, verdict), its Markdown file and the summary it prints."""

from __future__ import annotations

import json

CHECK_LIMIT_S = 360.0  # issue 21: the whole check, setup included, on one GPU
BENCH_KEYS = (
    "median_s",
    "min_s",
    "spread",
    "host_median_s",
    "gpu_s",
    "launches",
    "host_syncs",
    "verdict",
    "allocator_events_in_timed_loop",
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
D_KEYS = (
    "host_model",
    "wall_ms",
    "spread",
    "host_ms",
    "gpu_ms",
    "launches",
    "graph_launches",
    "host_syncs",
    "verdict",
    "wall_vs_unet",
    "peak_mem_mb",
    "allocator_events_in_timed_loop",
)


def _targets(row: dict) -> list[dict]:
    return [
        {"what": t["what"], "value": t["value"], "target": t["target"], "verdict": t.get("verdict")}
        for t in row.get("targets", [])
    ]


def summarise_benchmark(bench: dict) -> dict:
    """The numbers the GPU check reports from a benchmark JSON (per row: configs and verdicts)."""
    out: dict = {"device": bench["meta"]["device"], "profile": bench["meta"]["profile"]["name"]}
    for row_name, row in bench["rows"].items():
        entry: dict = {"status": row.get("status")}
        if row.get("reason"):
            entry["reason"] = row["reason"]
        if row.get("configs"):
            entry["configs"] = {c["name"]: {k: c[k] for k in BENCH_KEYS if k in c} for c in row["configs"]}
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
        entry["targets"] = _targets(row)
        out[row_name] = entry
    return out


def summarise_d_iteration(result: dict) -> dict:
    """The numbers the GPU check reports from a ``bench_d_iteration`` JSON (its last run: this checkout)."""
    meta = result.get("meta") or {}
    if not result.get("runs"):  # stopped (SIGTERM) before the measurement began
        return {"device": meta.get("device"), "d_iteration": {"status": result.get("status", "stopped"), "configs": {}}}
    run = result["runs"][-1]
    return {
        "device": meta["device"],
        "profile": meta["profile"]["name"],
        "d_iteration": {
            "status": run.get("status", "ok"),
            "configs": {
                c["name"]: {
                    **{k: c.get(k) for k in D_KEYS},
                    "compute_ops": c["dispatched"]["compute_ops"],
                    "casts": c["dispatched"]["casts"],
                    "host_reads": c["dispatched"]["host_reads"],
                    "host_reads_logged": c.get("host_reads_logged"),
                }
                for c in run["configs"]
            },
            "targets": _targets(run),
        },
    }


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x)
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _step(report: dict, name: str) -> dict:
    return next((s for s in report["steps"] if s["step"] == name), {"step": name, "status": "missing"})


def _judged(what: str, value, limit: str, met: bool | None, gpu: bool) -> dict:
    verdict = "not judged (CPU rehearsal)" if not gpu else {True: "met", False: "missed", None: "not measured"}[met]
    return {"what": what, "value": value, "target": limit, "verdict": verdict}


def targets_of(report: dict) -> list[dict]:
    """Issue 21's "done when" list: every target with its value, limit and verdict."""
    gpu = report["meta"]["mode"] == "gpu"
    out = []
    for name, row in (("d_iteration", "d_iteration"), ("gan_step", "gan_step"), ("iqa", "iqa")):
        result = (_step(report, name).get("result") or {}).get(row) or {}
        if not result.get("targets"):
            out.append(_judged(f"{name}: results", _step(report, name)["status"], "step ok", None, gpu))
        out += [{**t, "what": f"{name}: {t['what']}"} for t in result.get("targets", [])]
    tests = _step(report, "cuda_tests")
    counts = tests.get("result") or {}
    total = sum(counts.get(k, 0) for k in ("passed", "failed", "errors", "skipped"))
    passed = counts.get("passed", 0)
    value = f"{passed}/{total} passed" if counts else tests["status"]
    met = None if not counts else (tests["status"] == "ok" and total > 0 and passed == total)
    out.append(_judged("every CUDA test passes", value, "all passed", met, gpu))
    ddp = _step(report, "ddp").get("result") or {}
    out.append(
        _judged(
            "DDP, two ranks on one GPU: heads, prompts and generator equal across ranks, trained",
            ddp.get("ok"),
            "True",
            ddp.get("ok") if ddp else None,
            gpu,
        )
    )
    csud = _step(report, "csud").get("result") or {}
    out.append(_judged("CSUD on CUDA: bf16 iterations and tiled derain", csud.get("ok"), "True", csud.get("ok"), gpu))
    unfinished = report.get("not_finished", [])
    out.append(_judged("every step finished", ", ".join(unfinished) or "all", "all", not unfinished, gpu))
    wall = report["meta"]["wall_s"]
    out.append(
        _judged(
            "the whole check, setup included (s)", round(wall, 1), f"<= {CHECK_LIMIT_S:g}", wall <= CHECK_LIMIT_S, gpu
        )
    )
    return out


def _d_iteration_md(row: dict) -> list[str]:
    lines = [
        "",
        "| config | host | wall ms | spread | host ms | GPU ms | launches | syncs | verdict | compute ops | × UNet-D |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in row["configs"].items():
        lines.append(
            f"| {name} | {c['host_model']} | {_fmt(c['wall_ms'], 1)} | {_fmt(c['spread'], 2)} | "
            f"{_fmt(c['host_ms'], 1)} | {_fmt(c['gpu_ms'], 1)} | {_fmt(c['launches'], 0)} | "
            f"{_fmt(c['host_syncs'], 1)} | {c['verdict']} | {c['compute_ops']} | {_fmt(c['wall_vs_unet'], 2)} |"
        )
    return lines


def _bench_md(name: str, result: dict) -> list[str]:
    lines = ["", f"## {name} ({result['profile']} profile)"]
    for row_name, row in result.items():
        if not isinstance(row, dict):
            continue
        if row.get("status") not in (None, "ok"):
            lines += ["", f"`{row_name}`: {row['status']} {row.get('reason', '')}"]
        if row_name == "d_iteration" and row.get("configs"):
            lines += _d_iteration_md(row)
        elif row.get("configs"):
            lines += [
                "",
                f"`{row_name}`:",
                "",
                "| config | s/iter | spread | host s | GPU s | launches | verdict | time × | peak MB | mem × "
                "| frozen CLIP |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for cname, c in row["configs"].items():
                frozen = (
                    "-"
                    if c.get("frozen_clip_mb") is None
                    else f"{c['frozen_clip_mb']:.0f} MB {c.get('frozen_clip_dtype')}"
                )
                lines.append(
                    f"| {cname} | {_fmt(c.get('median_s'))} | {_fmt(c.get('spread'), 2)} | "
                    f"{_fmt(c.get('host_median_s'))} | {_fmt(c.get('gpu_s'))} | {_fmt(c.get('launches'), 0)} | "
                    f"{c.get('verdict', 'n/a')} | {_fmt(c.get('time_ratio'), 2)} | "
                    f"{_fmt(c.get('peak_mem_mb'), 0)} | {_fmt(c.get('mem_ratio'), 2)} | {frozen} |"
                )
        if row.get("ms_and_share"):
            lines += ["", f"`{row_name}` (ms, share of the step; full table in the step's copied .md):"]
            for cname, parts in row["ms_and_share"].items():
                body = ", ".join(f"{k} {v[0]:.1f} ms ({100 * v[1]:.0f} %)" for k, v in parts.items())
                lines.append(f"- {cname}: {body}")
        if row.get("images_per_s"):
            lines += ["", f"`{row_name}` images/s ({row.get('precision')}) by batch: {json.dumps(row['images_per_s'])}"]
    return lines


def _clip_md(result: dict) -> list[str]:
    lines = [
        "",
        "## Full-size CLIP forward + backward to the input (random weights)",
        "",
        "| model | input | amp | s/batch | images/s | peak MB (activations) | weights |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["models"]:
        if r.get("error"):
            lines.append(f"| {r['model']} | {r['size']}² ×{r['batch']} | {r['amp']} | error: {r['error'][:80]} | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['size']}² ×{r['batch']} | {r['amp']} | {_fmt(r['median_s'])} | "
            f"{_fmt(r['images_per_s'], 1)} | {_fmt(r['peak_mem_mb'], 0)} | "
            f"{r['weights_mb']:.0f} MB {r['weights_dtype']} |"
        )
    return lines


def to_markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [
        f"# GPU check ({meta['mode']} mode) on {meta.get('device') or 'unknown device'}",
        "",
        f"- date {meta['date']}, budget {meta['budget_s']:.0f} s (setup included), wall {meta['wall_s']:.0f} s "
        f"(setup {meta['setup_s']:.0f} s); GPUs listed: {meta['gpus']}; setup: {meta['setup']}",
        f"- command: `{meta['command']}`",
    ]
    if meta["mode"] == "cpu":
        lines.append("- **CPU rehearsal: tiny sizes; checks every step's machinery, its numbers mean nothing**")
    lines += ["", "| step | status | wall s | limit s | note |", "|---|---|---|---|---|"]
    for s in report["steps"]:
        note = s.get("reason") or (
            "see " + s["log"] if s.get("status") not in ("ok", "skipped") and s.get("log") else ""
        )
        lines.append(
            f"| {s['step']} | {s['status']} | {_fmt(s.get('wall_s'), 1)} | {_fmt(s.get('limit_s'), 0)} | {note} |"
        )
    lines += ["", "## Targets (issue 21)", "", "| target | value | limit | verdict |", "|---|---|---|---|"]
    lines += [
        f"| {t['what']} | {_fmt(t['value'])} | {t['target']} | {t['verdict']} |" for t in report.get("targets", [])
    ]
    env = _step(report, "env").get("result")
    if env:
        lines += [
            "",
            f"Environment: torch {env.get('torch')} (CUDA {env.get('cuda')}), devices {env.get('devices')}, "
            f"bf16 {env.get('bf16_supported')}, versions {env.get('versions')}.",
        ]
    for s in report["steps"]:
        result = s.get("result")
        if not result:
            continue
        if s["step"] in ("d_iteration", "gan_step", "iqa", "components"):
            lines += _bench_md(s["step"], result)
        elif s["step"] == "clip_full":
            lines += _clip_md(result)
        elif s["step"] == "cuda_tests":
            lines += [
                "",
                f"CUDA tests ({', '.join(result['files'])}): "
                + ", ".join(f"{result[k]} {k}" for k in ("passed", "failed", "errors", "skipped")),
            ]
        elif s["step"] == "ddp":
            lines += ["", f"DDP, two ranks ({result['backend']}): " + ", ".join(f"{k} {v}" for k, v in result.items())]
        elif s["step"] == "csud":
            d = result.get("derain", {})
            lines += [
                "",
                f"CSUD ({result['networks']} networks, {result['size']}² ×{result['batch']}, {result['amp']}, "
                f"{result['iters']} iterations): {_fmt(result.get('s_per_iter'))} s/iter, losses finite "
                f"{result.get('losses_finite')}, weights moved {result.get('weights_moved')}; tiled derain of "
                f"{d.get('image')} in {d.get('tile')}² tiles: {_fmt(d.get('seconds'))} s, output {d.get('output')}.",
            ]
    return "\n".join(lines) + "\n"


def summary_lines(report: dict) -> list[str]:
    lines = [f"GPU check ({report['meta']['mode']}): {report['meta']['wall_s']:.0f} s, setup included"]
    for s in report["steps"]:
        lines.append(f"  {s['step']:<12} {s['status']:<8} {_fmt(s.get('wall_s'), 1):>6} s  {s.get('reason', '')}")
    lines.append("Targets (issue 21):")
    for t in report.get("targets", []):
        lines.append(f"  {t['what']}: {_fmt(t['value'])} (limit {t['target']}): {t['verdict']}")
    return lines
