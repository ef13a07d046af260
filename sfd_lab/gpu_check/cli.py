"""Command line of the GPU check (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse

GPU_CHECK_DOC = """The GPU check (issues 18, 21, 31), normally started by scripts/gpu_check.sh (which installs the
carried wheels first). 'run --plan check': one D iteration, GPU benchmark rows, SFD-IQA, CUDA tests, components,
DDP on one GPU, CSUD, full-size CLIP, inside a time budget; writes <out>/gpu-<date>.json and .md and prints each
target. 'run --plan decide' (scripts/gpu_decide.sh): whether network_d.fast_path auto may become the default
(gradient equality, A/B training, D iteration eager vs auto, DDP, the CUDA tests), in 5 minutes. The other
actions are one step's program each (SIGTERM: its JSON is written with status 'stopped')."""


def gpu_check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, description=GPU_CHECK_DOC)
    sub = p.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", allow_abbrev=False, help="all steps")
    run.add_argument("--mode", choices=("gpu", "cpu"), default="gpu", help="cpu: the rehearsal at tiny sizes")
    run.add_argument("--out", default="benchmarks/results", help="folder for gpu-<date>.json/.md and the step logs")
    run.add_argument(
        "--work", default=None, help="folder for the step logs and outputs (default: <out>/gpu-check-work)"
    )
    run.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds for the whole check, setup included (default: 360 on a GPU, 2400 for the CPU rehearsal)",
    )
    run.add_argument("--steps", default=None, help="comma list of steps to run (default: all)")
    run.add_argument(
        "--plan",
        choices=("check", "decide"),
        default="check",
        help="check: every CUDA path and GPU number (make gpu-check); decide: whether fast_path auto may become "
        "the default, the decision first (make gpu-decide, docs/gpu-check.md)",
    )
    run.add_argument(
        "--cap",
        action="append",
        default=[],
        metavar="STEP=SECONDS",
        help="a step's time limit instead of the plan's (repeatable; e.g. to rehearse a step stopped at its cap)",
    )
    run.add_argument("--setup", default="not run", help="what the shell script's setup did (recorded)")
    run.add_argument("--setup-seconds", type=float, default=0.0, help="how long the setup took (recorded)")
    run.add_argument("--command", default=None, help="the command line to record")
    clip = sub.add_parser("clip", allow_abbrev=False, help="frozen CLIP forward+backward to the input, per model")
    clip.add_argument("--models", required=True, help="comma list of open_clip names, e.g. RN50,ViT-B-16,ViT-L-14")
    clip.add_argument("--size", type=int, default=256)
    clip.add_argument("--batch", type=int, default=16)
    clip.add_argument("--repeats", type=int, default=5)
    clip.add_argument("--amp", choices=("bf16", "fp16", "none"), default="bf16")
    clip.add_argument("--json", required=True, help="where to write the result")
    csud = sub.add_parser(
        "csud", allow_abbrev=False, help="CSUDModel iterations under autocast, then tiled derain inference"
    )
    csud.add_argument("--networks", choices=("tiny", "authors"), default="authors")
    csud.add_argument("--size", type=int, default=256, help="training crop")
    csud.add_argument("--batch", type=int, default=2, help="images per domain (at most 4)")
    csud.add_argument("--iters", type=int, default=5)
    csud.add_argument("--amp", choices=("bf16", "fp16", "none"), default="bf16")
    csud.add_argument("--image", type=int, default=1024, help="side of the rainy photo derained in tiles")
    csud.add_argument("--tile", type=int, default=512)
    csud.add_argument("--json", required=True, help="where to write the result")
    env = sub.add_parser("env", allow_abbrev=False, help="torch, CUDA, device and package versions")
    env.add_argument("--json", required=True, help="where to write the result")
    eq = sub.add_parser(
        "equality", allow_abbrev=False, help="fast_path auto vs eager: gradients per tensor, per host order"
    )
    eq.add_argument("--models", required=True, help="comma list of open_clip models, e.g. RN50,ViT-B-16")
    eq.add_argument("--batch", type=int, default=16)
    eq.add_argument("--size", type=int, default=256)
    eq.add_argument("--amps", default="bf16,fp16", help="comma list of autocast dtypes (bf16, fp16, fp32)")
    eq.add_argument("--iterations", type=int, default=2, help="host iterations per case")
    eq.add_argument("--json", required=True, help="where to write the result")
    ab = sub.add_parser("ab", allow_abbrev=False, help="same-seed A/B of SFDModel training, fast_path off vs auto")
    ab.add_argument("--clip", default="RN50")
    ab.add_argument("--size", type=int, default=64)
    ab.add_argument("--batch", type=int, default=2)
    ab.add_argument("--iterations", type=int, default=200)
    ab.add_argument("--amp", choices=("bf16", "fp16", "none"), default="bf16")
    ab.add_argument("--json", required=True, help="where to write the result")
    pt = sub.add_parser(
        "pytest", allow_abbrev=False, help="pytest with each test's outcome written to a JSON as it finishes"
    )
    pt.add_argument("--json", required=True, help="where to write the result")
    pt.add_argument("args", nargs=argparse.REMAINDER, help="pytest's arguments (after --)")
    return p
