"""Command line of the GPU check (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse

GPU_CHECK_DOC = """The GPU check (issues 18, 21), normally started by scripts/gpu_check.sh (which installs the carried
wheels first). 'run': one D iteration, GPU benchmark rows, SFD-IQA, CUDA tests, components, DDP on one GPU,
CSUD, full-size CLIP, inside a time budget; writes <out>/gpu-<date>.json and .md and prints each target.
'clip' / 'csud': one of those steps alone."""


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
    return p
