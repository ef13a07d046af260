"""``make gpu-decide`` (issue 31): one five-minute GPU run decides whether ``network_d.fast_path: auto``
becomes the default. ``scripts/gpu_decide.sh`` (= ``gpu_check.sh --plan decide``) installs the carried
wheels and calls :func:`run_decide`, which runs the steps below in this order, the decision first, each
as its own process with a time limit (SIGTERM at the limit, each step's JSON written then too):

1. ``env``: torch, CUDA, device, versions;
2. ``equality``: gradients of ``auto`` vs eager at real size (RN50 and ViT-B/16, batch 16, 256²,
   bf16 and fp16, the SRGAN / ESRGAN (retain_graph) / traiNNer orders, ``reuse_features`` on and
   off; sfd_lab/gpu_check/equality.py);
3. ``ab``: 200 SFDModel iterations, fast_path off vs auto, same seed (ab_training.py);
4. ``d_iteration_resnet`` / ``d_iteration_vit``: one discriminator iteration in SFDModel, eager beside
   auto (wall, GPU time, launches, graph launches, syncs, peak memory; bench_d_iteration.py);
5. ``ddp``: two ranks on the one GPU with ``fast_path: auto``, ranks equal;
6. ``cuda_tests``: the other CUDA-marked tests.

The summary prints one verdict line, ``fast_path default: auto is SAFE`` or ``... NOT SAFE (reason)``
(SAFE only when the gradient equality passed in every case for both models and the A/B agreed, on
CUDA), then the D-iteration table, and writes ``<out>/gpu-decide-<date>.{json,md}``. ``--cpu`` is
the rehearsal: the same step list at tiny sizes with the graphs emulated (its verdict is never SAFE).
"""

from __future__ import annotations

import datetime
import os

from sfd_lab.gpu_check import steps as S
from sfd_lab.gpu_check.runner import CPU_SCALE, REPORT_RESERVE_S, Runner, publish, run_plan

SCHEMA = "sfd-basicsr-gpu-decide/1"
BUDGET_S = {"gpu": 300.0, "cpu": 2400.0}  # the whole run, setup (wheels) included
SETUP_RESERVE_S = 25.0  # the wheels' install took 13 s on a bare H200
MARGIN_S = 20.0  # the steps' caps sum to at most BUDGET - SETUP_RESERVE - REPORT_RESERVE - MARGIN
CUDA_TESTS_RUN_ELSEWHERE = "real_size or ab_200"  # CUDA tests whose work the equality / ab steps did


def _equality_step(runner: Runner, sizes: dict, cap: float) -> dict:
    e = sizes["equality"]
    action = ["equality", "--models", ",".join(e["models"]), "--batch", str(e["batch"]), "--size", str(e["size"])]
    action += ["--amps", ",".join(e["amps"]), "--iterations", str(e["iterations"])]
    return S._json_program_step(runner, "equality", action, cap)


def _ab_step(runner: Runner, sizes: dict, cap: float) -> dict:
    a = sizes["ab"]
    action = ["ab", "--clip", a["clip"], "--size", str(a["size"]), "--batch", str(a["batch"])]
    action += ["--iterations", str(a["iterations"]), "--amp", a["amp"]]
    return S._json_program_step(runner, "ab", action, cap)


def _d_step(index: int, name: str):
    def step(runner: Runner, sizes: dict, cap: float) -> dict:
        d = sizes["d_iteration"]
        args = ["--profile", d["profile"], "--clip-models", d["clip_models"][index], *d["extra"]]
        return S.bench_step(runner, name, "bench_d_iteration.py", args, cap)

    return step


def _cuda_tests(runner: Runner, sizes: dict, cap: float) -> dict:
    return S.cuda_tests_step(runner, sizes, cap, skip=CUDA_TESTS_RUN_ELSEWHERE)


# (step, function, cap s on a GPU, floor s: what the steps after a step keep for themselves)
PLAN = (
    ("env", S.env_step, 15, 8),
    ("equality", _equality_step, 70, 35),
    ("ab", _ab_step, 35, 20),
    ("d_iteration_resnet", _d_step(0, "d_iteration_resnet"), 35, 20),
    ("d_iteration_vit", _d_step(1, "d_iteration_vit"), 30, 15),
    ("ddp", S.ddp_step, 30, 15),
    ("cuda_tests", _cuda_tests, 25, 10),
)
STEPS = tuple(name for name, *_ in PLAN)
SIZES = {
    "gpu": {
        "equality": {
            "models": ("RN50", "ViT-B-16"),
            "batch": 16,
            "size": 256,
            "amps": ("bf16", "fp16"),
            "iterations": 2,
        },
        "ab": {"clip": "RN50", "size": 64, "batch": 2, "iterations": 200, "amp": "bf16"},
        "d_iteration": {"profile": "decide", "clip_models": ("RN50", "ViT-B-16"), "extra": []},
        "ddp_iters": 3,
    },
    "cpu": {
        "equality": {
            "models": ("tiny-rn", "tiny-vit"),
            "batch": 2,
            "size": 64,
            "amps": ("bf16", "fp16"),
            "iterations": 1,
        },
        "ab": {"clip": "tiny-rn", "size": 64, "batch": 2, "iterations": 20, "amp": "none"},
        "d_iteration": {
            "profile": "smoke",
            "clip_models": ("tiny-rn", "tiny-vit"),
            "extra": ["--only-sfd", "--emulate-graphs"],
        },
        "ddp_iters": 2,
    },
}


# -- the verdict -----------------------------------------------------------------------------------------
def _step(report: dict, name: str) -> dict:
    return next((s for s in report["steps"] if s["step"] == name), {"step": name, "status": "missing"})


def _equality_reasons(step: dict, models: tuple[str, ...]) -> list[str]:
    result = step.get("result") or {}
    cases = result.get("cases") or []
    if not cases:
        return [f"gradient equality did not run ({step['status']})"]
    failed = [c for c in cases if not c["passed"]]
    out = []
    if failed:
        c = failed[0]
        out.append(
            f"gradient equality failed in {len(failed)} of {len(cases)} cases, first {c['model']} {c['amp']} "
            f"{c['order']} reuse {'on' if c['reuse_features'] else 'off'}: {'; '.join(c['problems'])[:300]}"
        )
    missing = [m for m in models if m not in (result.get("models_done") or [])]
    if missing:
        out.append(f"gradient equality not finished for {', '.join(missing)} ({step['status']})")
    return out


def _ab_reasons(step: dict, iterations: int) -> list[str]:
    result = step.get("result") or {}
    if "passed" not in result:
        return [f"the A/B of {iterations} iterations did not finish ({step['status']})"]
    if not result["passed"]:
        return ["the A/B loss curves differ: " + "; ".join(result["problems"])[:300]]
    return []


def verdict(report: dict) -> str:
    """The one verdict line: ``fast_path default: auto is SAFE`` or ``... NOT SAFE (reason)``."""
    sizes = report["meta"]["sizes"]
    reasons = _equality_reasons(_step(report, "equality"), tuple(sizes["equality"]["models"]))
    reasons += _ab_reasons(_step(report, "ab"), sizes["ab"]["iterations"])
    if report["meta"]["mode"] != "gpu":
        passed = "equality and A/B passed" if not reasons else "and: " + "; ".join(reasons)
        reasons = [f"CPU rehearsal, graphs emulated: only a CUDA run decides; {passed}"]
    elif (_step(report, "equality").get("result") or {}).get("graphs") != "CUDA":
        reasons.insert(0, "the equality step did not run CUDA graphs")
    return (
        "fast_path default: auto is SAFE"
        if not reasons
        else f"fast_path default: auto is NOT SAFE ({'; '.join(reasons)})"
    )


# -- the D-iteration table: eager beside auto ---------------------------------------------------------
TABLE = (
    ("wall ms", "wall_ms", 1),
    ("GPU ms", "gpu_ms", 1),
    ("launches / iter", "launches", 0),
    ("graph launches / iter", "graph_launches", 1),
    ("syncs / iter", "host_syncs", 1),
    ("peak MB", "peak_mem_mb", 0),
    ("host reads (not logged)", "host_reads", 0),
    ("host reads (logged iter)", "host_reads_logged", 0),
)


def d_table(report: dict) -> list[str]:
    """Markdown table: a column per configuration (each CLIP model eager, then auto), a row per measure."""
    configs = {}
    for name in ("d_iteration_resnet", "d_iteration_vit"):
        configs.update(((_step(report, name).get("result") or {}).get("d_iteration") or {}).get("configs") or {})
    if not configs:
        return ["(no D-iteration configuration finished)"]
    names = list(configs)
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, key, digits in TABLE:
        cells = []
        for n in names:
            v = configs[n].get(key)
            cells.append("n/a" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def d_targets(report: dict) -> list[dict]:
    out = []
    for name in ("d_iteration_resnet", "d_iteration_vit"):
        row = (_step(report, name).get("result") or {}).get("d_iteration") or {}
        out += [t for t in row.get("targets", []) if "spread" not in t["what"]]
    return out


# -- the run ---------------------------------------------------------------------------------------------
def caps_fit(budget: float = BUDGET_S["gpu"]) -> bool:
    """Whether the GPU caps leave the setup reserve, the report's time and the margin inside ``budget``."""
    return sum(cap for _, _, cap, _ in PLAN) <= budget - SETUP_RESERVE_S - REPORT_RESERVE_S - MARGIN_S


def run_decide(args) -> int:
    """``gpu_check.sh --plan decide``'s main part; 0 when the run finished (whatever the verdict says),
    1 when a step failed or did not finish."""
    sizes = SIZES[args.mode]
    steps, meta = run_plan(args, PLAN, sizes, BUDGET_S[args.mode], "gpu-decide-work", S.ROOT)
    meta["device"] = meta["device"] or "cpu"
    meta["caps_s"] = {n: (c if args.mode == "gpu" else CPU_SCALE * c) for n, _, c, _ in PLAN}
    report = {
        "schema": SCHEMA,
        "meta": meta,
        "steps": steps,
        "not_finished": [s["step"] for s in steps if s["status"] != "ok"],
    }
    report["verdict"] = verdict(report)
    report["d_iteration_targets"] = d_targets(report)
    stem = os.path.join(args.out, f"gpu-decide-{datetime.date.today().isoformat()}")
    if args.mode != "gpu":
        stem = stem.replace("gpu-decide-", "gpu-decide-cpu-rehearsal-")
    publish(report, stem, to_markdown(report), summary_lines(report))
    return 1 if report["not_finished"] or args.setup.startswith("failed") else 0


def _value(v) -> str:
    return "n/a" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def summary_lines(report: dict) -> list[str]:
    meta = report["meta"]
    lines = [f"GPU decide ({meta['mode']}, {meta['device']}): {meta['wall_s']:.0f} s, setup included"]
    for s in report["steps"]:
        note = s.get("reason") or ("" if s["status"] == "ok" else f"see {s.get('log', '')}")
        lines.append(f"  {s['step']:<20} {s['status']:<8} {s.get('wall_s', 0.0):>6.1f} s  {note}")
    lines += [report["verdict"], "D iteration in SFDModel, eager beside auto:"]
    lines += ["  " + line for line in d_table(report)]
    for t in report["d_iteration_targets"]:
        lines.append(f"  {t['what']}: {_value(t['value'])} ({t['target']}): {t['verdict']}")
    return lines


def _case_rows(result: dict) -> list[str]:
    rows = [
        "| model | amp | order | reuse | gradients | outputs | state | vs cached eager | regions: replays/recomputes "
        "| passed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in result.get("cases") or []:
        w = c["worst"]
        short = {n: "tower" if "tower" in n else "text" if "text" in n else "spectral" for n in c["regions"]}
        regions = ", ".join(f"{short[n]} {v['replays']}/{v['recomputes']}" for n, v in c["regions"].items())
        rows.append(
            f"| {c['model']} | {c['amp']} | {c['order']} | {'on' if c['reuse_features'] else 'off'} | "
            f"{w.get('gradient', {}).get('rel_l2', 0):.1e} | {w.get('output', {}).get('rel_l2', 0):.1e} | "
            f"{w.get('state', {}).get('rel_l2', 0):.1e} | {c['vs_cached_eager_worst']:.1e} | {regions} | "
            f"{'yes' if c['passed'] else 'NO: ' + '; '.join(c['problems'])[:120]} |"
        )
    return rows


def to_markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [
        f"# GPU decide ({meta['mode']} mode) on {meta['device']}",
        "",
        f"**{report['verdict']}**",
        "",
        f"- date {meta['date']}, budget {meta['budget_s']:.0f} s (setup included), wall {meta['wall_s']:.0f} s "
        f"(setup {meta['setup_s']:.0f} s); GPUs listed: {meta['gpus']}; setup: {meta['setup']}",
        f"- command: `{meta['command']}`",
        "- random CLIP weights in the real layout (no download: equality and timing do not need trained weights)",
    ]
    if meta["mode"] != "gpu":
        lines.append("- **CPU rehearsal: tiny sizes, graphs emulated; checks every step's machinery, decides nothing**")
    lines += ["", "| step | status | wall s | limit s | JSON | note |", "|---|---|---|---|---|---|"]
    for s in report["steps"]:
        lines.append(
            f"| {s['step']} | {s['status']} | {s.get('wall_s', 0.0):.1f} | {s.get('limit_s', 0)} | "
            f"{s.get('json') or ', '.join(s.get('files', [])[:1]) or '-'} | {s.get('reason', '')} |"
        )
    lines += ["", "## D iteration in SFDModel, eager beside auto", ""] + d_table(report) + [""]
    lines += [
        f"- {t['what']}: {_value(t['value'])} ({t['target']}): {t['verdict']}" for t in report["d_iteration_targets"]
    ]
    eq = _step(report, "equality").get("result") or {}
    lines += ["", f"## Gradient equality ({eq.get('graphs', 'not run')}; tolerance {eq.get('tolerance')})", ""]
    lines += [f"settings: {eq.get('settings')}; sizes: {eq.get('sizes')}", ""] + _case_rows(eq)
    ab = _step(report, "ab").get("result") or {}
    lines += ["", f"## A/B training ({ab.get('graphs', 'not run')}): {ab.get('sizes')}", ""]
    if ab.get("terms"):
        lines += ["| term | first iteration | worst window | passed |", "|---|---|---|---|"]
        for k, t in ab["terms"].items():
            lines.append(f"| {k} | {t.get('first_rel', 0):.1e} | {t.get('worst_window_rel', 0):.1e} | {t['passed']} |")
        lines.append(f"\nfinal weights relative L2 difference: {ab.get('final_weights_rel_l2', 0):.2e}")
    ddp = _step(report, "ddp").get("result") or {}
    tests = _step(report, "cuda_tests").get("result") or {}
    lines += [
        "",
        f"DDP, two ranks: {ddp}",
        "",
        "CUDA tests: " + ", ".join(f"{tests.get(k, 0)} {k}" for k in ("passed", "failed", "errors", "skipped")),
    ]
    return "\n".join(lines) + "\n"
