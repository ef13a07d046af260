"""Command line of the GPU check (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse

GPU_CHECK_DOC = """The GPU check (issue 18), normally started by scripts/gpu_check.sh (which installs the carried wheels
first). 'run': CUDA tests, GPU benchmark rows, SFD-IQA at 512² bf16, full-size CLIP fwd+bwd, DDP smoke,
inside a time budget; writes <out>/gpu-<date>.json and .md. 'clip': the full-size CLIP step alone."""


def gpu_check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=GPU_CHECK_DOC)
    sub = p.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="all steps")
    run.add_argument("--mode", choices=("gpu", "cpu"), default="gpu", help="cpu: the rehearsal at tiny sizes")
    run.add_argument("--out", default="benchmarks/results", help="folder for gpu-<date>.json/.md and the step logs")
    run.add_argument(
        "--work", default=None, help="folder for the step logs and outputs (default: <out>/gpu-check-work)"
    )
    run.add_argument("--budget", type=float, default=420.0, help="seconds for all steps (default: %(default)s)")
    run.add_argument("--setup", default="not run", help="what the shell script's setup did (recorded)")
    run.add_argument("--setup-seconds", type=float, default=0.0, help="how long the setup took (recorded)")
    run.add_argument("--command", default=None, help="the command line to record")
    clip = sub.add_parser("clip", help="frozen CLIP forward+backward to the input, per model")
    clip.add_argument("--models", required=True, help="comma list of open_clip names, e.g. RN50,ViT-B-16,ViT-L-14")
    clip.add_argument("--size", type=int, default=256)
    clip.add_argument("--batch", type=int, default=16)
    clip.add_argument("--repeats", type=int, default=5)
    clip.add_argument("--amp", choices=("bf16", "fp16", "none"), default="bf16")
    clip.add_argument("--json", required=True, help="where to write the result")
    return p
