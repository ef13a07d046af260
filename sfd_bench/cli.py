"""Command lines of the benchmarks and learning checks (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse

BENCHMARK_DOC = """Benchmark SFD against BasicSR's discriminators side by side (issue 8); see sfd_bench/run.py.

    python scripts/benchmark.py                      # auto: the GPU profile when CUDA is present, else CPU
    python scripts/benchmark.py --profile smoke      # seconds: tiny networks, checks the machinery
    python scripts/benchmark.py --profile cpu-real --rows gan_step,components   # batch 4 at 256² on CPU
    python scripts/benchmark.py --rows 1,2 --out /tmp/bench

Writes <out>/<device>-<date>.json and .md (ratios, command, versions, device, threads, date).
"""
BENCHMARK_CSUD_DOC = """CSUD training step on CPU: s/iter and peak memory of CSUDModel vs the released code's order of
forwards (with its retain_graph), same networks and batch, one process. Writes JSON + Markdown."""
LEARNING_CHECK_DOC = """SFD learning check on CPU: train Feat-D + TG-D against bicubic upsampling, test on held-out
photos, then train a tiny generator against the frozen discriminator. Writes report.md / report.json."""
CLIP_BACKBONE_DOC = """Forward+backward time of the frozen CLIP backbone per 256² image (gradient to the input only),
RN50 and ViT-B-16 with random weights, side by side in one process. Writes JSON + Markdown."""
# Kept equal to sfd_bench.profiles.PROFILES / ROWS and sfd_bench.csud.PROFILES (tests check it).
PROFILE_NAMES = ("smoke", "cpu", "cpu-real", "gpu")
ROW_NAMES = ("gan_step", "clip_cost", "precision", "iqa", "csud", "components")
CSUD_PROFILE_NAMES = ("tiny", "cpu", "full")


def benchmark_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=BENCHMARK_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="auto", choices=[*PROFILE_NAMES, "auto"], help="sizes (default: auto)")
    parser.add_argument(
        "--rows", default="all", help=f"comma list of 1-{len(ROW_NAMES)} or names {', '.join(ROW_NAMES)}"
    )
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown files")
    parser.add_argument(
        "--no-trace", action="store_true", help="do not torch.profiler configurations that miss a target"
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: the profile's, else one per core)")
    parser.add_argument("--notes", help="Markdown file appended to the table (findings)")
    parser.add_argument(
        "--max-spread",
        type=float,
        help="a time target whose repeats spread more than this ((max - min) / median) reads 'unstable' "
        "instead of met / missed (default: the profile's, 0.15)",
    )
    parser.add_argument("--tag", help="appended to the file names (e.g. run1, run2 for repeated runs on one day)")
    return parser


def benchmark_csud_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=BENCHMARK_CSUD_DOC)
    parser.add_argument("--profile", default="cpu", choices=sorted(CSUD_PROFILE_NAMES), help="(default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results", help="output folder (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    return parser


def learning_check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=LEARNING_CHECK_DOC)
    p.add_argument("--out", default="results/learning_check", help="output folder (default: %(default)s)")
    p.add_argument("--d-iters", type=int, default=1000, help="discriminator iterations (default: %(default)s)")
    p.add_argument("--g-iters", type=int, default=60, help="generator iterations (default: %(default)s)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default: %(default)s)")
    p.add_argument("--crop", type=int, default=96, help="HR crop size (default: %(default)s)")
    p.add_argument("--clip-model", default="tiny-rn", help="open_clip model (default: %(default)s)")
    p.add_argument(
        "--clip-pretrained",
        default=None,
        help="CLIP weights (tag in the local cache or file); default: random, BN-calibrated",
    )
    return p


def clip_backbone_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=CLIP_BACKBONE_DOC)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results")
    return p
