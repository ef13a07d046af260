"""Command line of the Feat-D design study (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse
import shlex

FEATD_DOC = """Feat-D design study (issue 30 item 7), one factor at a time from the first design (the variant
"default": feat_norm rms): CLIP layers (early / late), feat_norm (rms / none / channel), the heads' receptive field
(pointwise / deep) and the generator's term (vanilla / relativistic / feature matching). Each variant fine-tunes the
same stage-1 generator against SFD with Feat-D only and with Feat-D + TG-D, for every seed, on tiles of the photo
set's train split; judged on the whole validation images (never the held-out test photos) by PSNR-Y, NIQE and the
realism test, paired with the default by image and seed. Resumable: every run is kept under --out and skipped on
rerun.

Examples:
  python scripts/featd_study.py --quick                               # toy sizes: a rehearsal
  nice -n 10 python scripts/featd_study.py --results-dir benchmarks/results   # the study (2 workers)
"""
# the keys of sfd_lab.bakeoff.featd_study.VARIANTS / CONFIGS (a test keeps them equal; no torch here)
FEATD_VARIANTS = (
    "default",
    "layers_early",
    "layers_late",
    "norm_none",
    "norm_channel",
    "head_pointwise",
    "head_deep",
    "g_relativistic",
    "g_feature_matching",
)
FEATD_CONFIGS = ("feat", "sfd")


def featd_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=FEATD_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="results/featd_study", help="output folder, kept for reruns (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="toy sizes (3 variants, 2 iterations): a rehearsal")
    p.add_argument("--results-dir", help="also write featd_study-<date>.{md,json} here")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default: 0 1)")
    p.add_argument("--iters", type=int, help="fine-tuning iterations per run (default: 300)")
    p.add_argument("--variants", nargs="+", choices=FEATD_VARIANTS, help="a subset (default: all; default is added)")
    p.add_argument("--configs", nargs="+", choices=FEATD_CONFIGS, help="feat = Feat-D only, sfd = Feat-D + TG-D")
    p.add_argument("--clip-pretrained", help="the quality-aware tiny CLIP file (default: trained once and cached)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one torch thread each (default: %(default)s)")
    return p


def featd_command(a: argparse.Namespace) -> str:
    """The command that reproduces a parsed namespace (the options given)."""
    defaults = vars(featd_parser().parse_args([]))
    parts = ["python", "scripts/featd_study.py"]
    for key, value in vars(a).items():
        if key not in defaults or value == defaults[key] or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, *map(str, value if isinstance(value, list) else [value])]
    return shlex.join(parts)
