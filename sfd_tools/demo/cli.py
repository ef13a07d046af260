"""Command lines of the demo programs (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse

PREPARE_DEMO_DOC = """Write the SR demo data set from scikit-image's photos into datasets/demo_sr (no download)."""
DEMO_DOC = """`make demo`: bicubic vs PSNR (L1) training vs SFD fine-tuning on CPU, on the photos scikit-image ships."""


def prepare_demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=PREPARE_DEMO_DOC)
    parser.add_argument("--root", default="datasets/demo_sr", help="output folder (default: %(default)s)")
    parser.add_argument("--scale", type=int, default=4, help="LR downscaling factor (default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="training HR crop size (default: %(default)s)")
    parser.add_argument("--val-size", type=int, default=256, help="held-out HR crop size (default: %(default)s)")
    parser.add_argument("--val-stride", type=int, default=128, help="held-out crop step (default: %(default)s)")
    return parser


def demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=DEMO_DOC)
    parser.add_argument("--iters", type=int, default=None, help="override train.total_iter of the demo recipe")
    return parser
