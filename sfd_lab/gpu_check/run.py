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
import os
import shutil
import sys

from sfd_lab.gpu_check import steps as S
from sfd_lab.gpu_check.report import summary_lines, targets_of, to_markdown
from sfd_lab.gpu_check.runner import publish, run_plan

ROOT = S.ROOT
SCHEMA = "sfd-basicsr-gpu-check/2"
DEFAULT_BUDGET = {"gpu": 360.0, "cpu": 2400.0}  # whole check, setup included (CPU: a shared 2-core machine)
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


def run_check(args) -> int:
    """``gpu_check.sh``'s main part: the steps, the files and the summary; 0 when no step failed.

    Writes ``<out>/gpu-<date>.json/.md`` (CPU rehearsal: ``gpu-check-cpu-rehearsal-<date>``) and the
    benchmark steps' full results as ``<stem>-<step>.json/.md``; logs and step outputs go to ``args.work``.
    """
    sizes = SIZES[args.mode]
    steps, meta = run_plan(args, PLAN, sizes, DEFAULT_BUDGET[args.mode], "gpu-check-work", ROOT)
    date = datetime.date.today().isoformat()
    report = {
        "schema": SCHEMA,
        "meta": meta,
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
                shutil.copy(os.path.join(meta["work"], rel), f"{stem}-{step['step']}{ext}")
                step.setdefault("copied", []).append(os.path.basename(f"{stem}-{step['step']}{ext}"))
    publish(report, stem, to_markdown(report), summary_lines(report))
    return 1 if report["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    from sfd_lab.gpu_check.cli import gpu_check_parser

    args = gpu_check_parser().parse_args(argv)
    if args.action == "run":
        if args.plan == "decide":
            from sfd_lab.gpu_check.decide import run_decide

            return run_decide(args)
        return run_check(args)
    return run_program(args)


def run_program(args) -> int:
    """One step's program: its JSON (``--json``) is written at the start, as results come in, and at once
    on SIGTERM (status 'stopped', exit status 3); exit status 1 when the step's check failed."""
    from sfd_lab.bench.stop import ResultFile, StopRequested

    result = ResultFile(args.json, {"step": args.action})
    if args.action != "pytest":  # pytest: its own handler (it stops its session cleanly)
        result.stop_on_sigterm()
    if args.action in ("equality", "ab"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before the first cuBLAS call
    try:
        from sfd_utils.compat import install

        install()
        from sfd_lab.gpu_check import probes

        return _program(args, result, probes)
    except StopRequested:
        return 3


def _program(args, result, probes) -> int:
    amp = None if getattr(args, "amp", None) in (None, "none") else args.amp
    if args.action == "pytest":
        rc = probes.run_pytest(result, [a for a in args.args if a != "--"])
        return 0 if rc in (0, 5) else 1
    if args.action == "env":
        result.update(status="ok", **probes.environment())
        return 0
    if args.action in ("equality", "ab", "clip"):
        import open_clip

        from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS

        open_clip.add_model_config(TINY_CLIP_CONFIGS)
    if args.action == "equality":
        from sfd_lab.gpu_check.equality import run_equality

        models, amps = args.models.split(","), args.amps.split(",")
        out = run_equality(models, args.batch, args.size, amps, iterations=args.iterations, on_case=_progress(result))
        ok = out["passed"]
    elif args.action == "ab":
        from sfd_lab.gpu_check.ab_training import run_ab

        out = run_ab(args.clip, args.size, args.batch, args.iterations, amp, on_progress=_progress(result))
        ok = out["passed"]
    elif args.action == "clip":
        out = probes.clip_forward_backward(args.models.split(","), args.size, args.batch, args.repeats, amp)
        ok = not any(r.get("error") for r in out["models"])
    else:
        out = probes.csud_check(args.networks, args.size, args.batch, args.iters, amp, args.image, args.tile)
        ok = out["ok"]
    result.update(status="ok" if ok else "failed", **out)
    return 0 if ok else 1


def _progress(result):
    def update(partial: dict) -> None:
        result.update(**partial)

    return update


if __name__ == "__main__":
    sys.exit(main())
