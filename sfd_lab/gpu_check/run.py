"""The GPU check (issues 18, 21): every CUDA path and GPU number of the project in one run, inside a budget.

``scripts/gpu_check.sh`` sets up (wheels carried in ``.whl/``) and calls ``run`` here, which runs
each step as its own process (group) with a time limit taken from what is left of the budget (the
whole check, setup included: 360 s by default), records a failing, stopped or skipped step and goes
on with the next one, then writes ``<out>/gpu-<date>.{json,md}`` and prints a summary that ends with
each of issue 21's targets: value, limit, met / missed. Steps, the most important numbers first:

1. ``env``: torch / CUDA / device / package versions;
2. ``d_iteration``: one discriminator iteration as the hosts run it (SFD RN50 / ViT-B-16 in
   SFDModel, SFD in SRGANModel, UNet-D in RealESRGANModel; b16, 256², bf16): wall, GPU time, kernel
   launches, host time, verdict GPU-bound / launch-bound (``scripts/bench_d_iteration.py``);
3. ``gan_step``: the benchmark's GPU profile, row ``gan_step`` (SFD step time, peak memory and
   spread vs RealESRGANModel + UNetDiscriminatorSN);
4. ``iqa``: SFD-IQA throughput at 512² in bf16 vs the bare CLIP forward it needs;
5. ``cuda_tests``: ``pytest -m cuda`` over every test file holding CUDA-marked tests;
6. ``components``: the step piece by piece (RN50 and the baseline);
7. ``ddp``: two ranks of ``torchrun`` sharing the one GPU (gloo) through our training entry on a
   tiny recipe; the ranks' heads, prompts and generators must stay equal;
8. ``csud``: CSUDModel on the GPU (a few bf16 iterations) and tiled derain inference;
9. ``clip_full``: full-size RN50 / ViT-B-16 / ViT-L-14 forward+backward to the input in bf16.

``--mode cpu`` is the rehearsal: the same steps, commands and file handling at tiny sizes on CPU
(smoke profiles, tiny CLIP configs, DDP with gloo on the CPU), so a GPU run cannot fail on a typo.
A test runs it.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import time

from sfd_lab.gpu_check import steps as S
from sfd_lab.gpu_check.report import summary_lines, targets_of, to_markdown
from sfd_lab.gpu_check.runner import Runner

ROOT = S.ROOT
SCHEMA = "sfd-basicsr-gpu-check/2"
DEFAULT_BUDGET = {"gpu": 360.0, "cpu": 2400.0}  # whole check, setup included (CPU: a shared 2-core machine)
REPORT_RESERVE_S = 5.0  # kept back for writing the report
# (step, function, cap s on a GPU, floor s: what the steps after a step keep for themselves)
PLAN = (
    ("env", S.env_step, 30, 8),
    ("d_iteration", S.d_iteration_step, 75, 30),
    ("gan_step", S.benchmark_rows_step("gan_step", "gan_step"), 80, 40),
    ("iqa", S.benchmark_rows_step("iqa", "iqa"), 45, 20),
    ("cuda_tests", S.cuda_tests_step, 75, 30),
    ("components", S.benchmark_rows_step("components", "components", "components_args"), 60, 25),
    ("ddp", S.ddp_step, 60, 25),
    ("csud", S.csud_step, 40, 15),
    ("clip_full", S.clip_step, 45, 15),
)
STEPS = tuple(name for name, *_ in PLAN)
CPU_SCALE = 6  # caps and floors on the CPU rehearsal (tiny sizes, but a slow shared machine)
SIZES = {
    "gpu": {
        "bench_profile": "gpu",
        "d_profile": "gpu",
        "components_args": ["--clip-models", "RN50", "--repeats", "5", "--warmup", "2"],
        "clip_models": ("RN50", "ViT-B-16", "ViT-L-14"),
        "clip_size": 256,
        "clip_batch": 16,
        "clip_repeats": 5,
        "amp": "bf16",
        "ddp_iters": 3,
        "csud": {"networks": "authors", "size": 256, "batch": 2, "iters": 5, "image": 1024, "tile": 512},
    },
    "cpu": {
        "bench_profile": "smoke",
        "d_profile": "smoke",
        "components_args": ["--clip-models", "tiny-rn", "--repeats", "1", "--warmup", "1"],
        "clip_models": ("tiny-rn", "tiny-vit"),
        "clip_size": 64,
        "clip_batch": 2,
        "clip_repeats": 2,
        "amp": "bf16",
        "ddp_iters": 2,
        "csud": {"networks": "tiny", "size": 64, "batch": 2, "iters": 2, "image": 192, "tile": 96},
    },
}


def gpu_count() -> int:
    """GPUs listed by ``nvidia-smi -L`` (0 without the tool)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def run_steps(runner: Runner, sizes: dict, only: tuple[str, ...] | None = None) -> list[dict]:
    """Every step of PLAN in order (``only``: those named; the others are recorded as not selected)."""
    scale = 1 if runner.mode == "gpu" else CPU_SCALE
    records = []
    for i, (name, fn, cap, _) in enumerate(PLAN):
        if only and name not in only:
            records.append(runner.skipped(name, "not selected (--steps)"))
            continue
        runner.floors_after = scale * sum(f for n, *_, f in PLAN[i + 1 :] if not only or n in only)
        try:
            records.append(fn(runner, sizes, scale * cap))
        except Exception as err:  # a broken step body is that step's failure, never the check's
            records.append({"step": name, "status": "failed", "reason": f"{type(err).__name__}: {err}", "wall_s": 0.0})
    return records


def run_check(args) -> int:
    """``gpu_check.sh``'s main part: the steps, the files and the summary; 0 when no step failed.

    Writes ``<out>/gpu-<date>.json/.md`` (CPU rehearsal: ``gpu-check-cpu-rehearsal-<date>``) and the
    benchmark steps' full results as ``<stem>-<step>.json/.md``; logs and step outputs go to ``args.work``.
    """
    sizes = SIZES[args.mode]
    os.makedirs(args.out, exist_ok=True)
    work = args.work or os.path.join(args.out, "gpu-check-work")
    os.makedirs(work, exist_ok=True)
    started = time.time()
    setup_s = args.setup_seconds or 0.0
    budget = DEFAULT_BUDGET[args.mode] if args.budget is None else args.budget
    runner = Runner(work, budget - setup_s, args.mode, ROOT, reserve_s=REPORT_RESERVE_S)
    gpus = gpu_count()
    only = tuple(s.strip() for s in args.steps.split(",")) if args.steps else None
    unknown = set(only or ()) - set(STEPS)
    if unknown:
        raise SystemExit(f"--steps: unknown step(s) {sorted(unknown)}; choose from {list(STEPS)}")
    steps = run_steps(runner, sizes, only)
    env = steps[0].get("result") or {}
    date = datetime.date.today().isoformat()
    report = {
        "schema": SCHEMA,
        "meta": {
            "mode": args.mode,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": args.command or " ".join(sys.argv),
            "device": (env.get("devices") or ["cpu"])[0] if env else None,
            "gpus": gpus,
            "budget_s": budget,
            "setup": args.setup,
            "setup_s": setup_s,
            "sizes": sizes,
            "work": work,
            "wall_s": time.time() - started + setup_s,
        },
        "steps": steps,
        "failed": [s["step"] for s in steps if s["status"] in ("failed", "timeout")],
        "not_finished": [s["step"] for s in steps if s["status"] != "ok"],
    }
    if args.setup.startswith("failed"):
        report["failed"].insert(0, "setup")
    report["targets"] = targets_of(report)
    stem = os.path.join(args.out, f"gpu-{date}" if args.mode == "gpu" else f"gpu-check-cpu-rehearsal-{date}")
    for step in steps:  # each benchmark step's full tables next to the check's own files
        for rel in step.get("files", []):
            ext = os.path.splitext(rel)[1]
            if ext in (".json", ".md"):
                shutil.copy(os.path.join(work, rel), f"{stem}-{step['step']}{ext}")
                step.setdefault("copied", []).append(os.path.basename(f"{stem}-{step['step']}{ext}"))
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=1, default=str)
    with open(stem + ".md", "w") as f:
        f.write(to_markdown(report))
    print("\n".join(summary_lines(report)))
    print(f"wrote {stem}.json and {stem}.md")
    return 1 if report["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    from sfd_lab.gpu_check.cli import gpu_check_parser

    args = gpu_check_parser().parse_args(argv)
    if args.action == "run":
        return run_check(args)
    from sfd_utils.compat import install

    install()
    from sfd_lab.gpu_check import probes

    amp = None if args.amp == "none" else args.amp
    if args.action == "clip":
        result = probes.clip_forward_backward(args.models.split(","), args.size, args.batch, args.repeats, amp)
        failed = any(r.get("error") for r in result["models"])
    else:
        result = probes.csud_check(args.networks, args.size, args.batch, args.iters, amp, args.image, args.tile)
        failed = not result["ok"]
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
