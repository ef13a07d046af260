"""Command lines of the learning checks (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse

LEARNING_CHECK_DOC = """SFD learning check on CPU: train Feat-D + TG-D against bicubic upsampling, test on held-out
photos, then train a tiny generator against the frozen discriminator. Writes report.md / report.json."""
QUALITY_CLIP_DOC = """Train the quality-aware tiny CLIP (open_clip `quality-tiny-rn`) on CPU from scikit-image's
training photos (or, --photos photo-set, the train split of the lab's photographs that scripts/prepare_photos.py
prepared), then report its zero-shot quality accuracy on held-out photos. Writes an ordinary open_clip
state_dict (use it as `clip_model: quality-tiny-rn`, `clip_pretrained: <file>`) and a JSON sidecar. With
--photos photo-set --results-dir DIR, also compares it with the scikit-image one, zero-shot on held-out crops."""

ODD_INPUTS_DOC = """Run every program of a checkout against the odd inputs of issue 28 (image bombs, link loops,
folders named like images, sparse files, hostile weights, output paths that are files or climb out
of their root) and write a table of exit status, traceback, peak memory and escaped files."""


def learning_check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, description=LEARNING_CHECK_DOC)
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
    p.add_argument(
        "--clip-input-size", type=int, default=None, help="run CLIP at this short side (network_d.clip_input_size)"
    )
    p.add_argument(
        "--feat-norm",
        choices=("channel", "rms", "none"),
        help="Feat-D's network_d.feat_norm (default: the architecture's, channel; the numbers of 2026-11-30 are rms)",
    )
    return p


def quality_clip_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, description=QUALITY_CLIP_DOC)
    p.add_argument(
        "--out",
        default="experiments/pretrained_models/quality_clip_tiny.pt",
        help="weights file to write; the sidecar is <stem>.json (default: %(default)s)",
    )
    p.add_argument("--steps", type=int, default=300, help="optimiser steps (default: %(default)s)")
    p.add_argument("--batch", type=int, default=128, help="images per step, half sharp (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--photos",
        choices=("scikit-image", "photo-set"),
        default="scikit-image",
        help="training photos: scikit-image's (default; the bake-off's CLIP) or the photo set's train split",
    )
    p.add_argument(
        "--results-dir",
        default=None,
        help="write the before/after comparison quality_clip_photos-<date>.{json,md} here (e.g. benchmarks/results)",
    )
    return p


def quality_clip_command(a: argparse.Namespace) -> str:
    """The command that reproduces a parsed ``scripts/train_quality_clip.py`` namespace (options given)."""
    defaults = vars(quality_clip_parser().parse_args([]))
    given = [f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items() if k in defaults and v != defaults[k]]
    return " ".join(["python scripts/train_quality_clip.py", *given])


def odd_inputs_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, description=ODD_INPUTS_DOC)
    p.add_argument("--repo", default=".", help="checkout whose scripts/ to run (default: this one)")
    p.add_argument("--out", default="results/odd_inputs", help="report folder (default: %(default)s)")
    p.add_argument("--sparse-gb", type=int, default=8, help="size of the sparse files (default: %(default)s)")
    p.add_argument("--bomb-side", type=int, default=16384, help="side of the PNG bomb (default: %(default)s)")
    p.add_argument("--kill-above-mb", type=float, default=3000, help="watchdog memory limit (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per case (default: %(default)s)")
    p.add_argument("--only", nargs="*", default=[], help="run only cases whose name contains one of these")
    return p
