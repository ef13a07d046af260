"""Command line of the bake-off (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse

BAKEOFF_DOC = """Bake-off at CPU scale: one stage-1 L1 generator fine-tuned with identical generator losses, budget
and data order against Real-ESRGAN's U-Net, ESRGAN's VGG-style, a PatchGAN, SFD (Feat-D + TG-D) on the
quality-aware tiny CLIP, SFD on random weights of that CLIP, Feat-D only and TG-D only, for several seeds;
judged on held-out crops by PSNR/SSIM-Y, NIQE and an independent zero-shot quality CLIP; plus the SFD-IQA
ranking of the SFD run's discriminator next to NIQE. Writes report.md/json, a perception-distortion plot
and a montage under --out (and bakeoff-<date>.* under --results-dir).

Examples:
  python scripts/bakeoff.py --quick                                # toy sizes, about a minute
  python scripts/bakeoff.py --jobs 2 --results-dir benchmarks/results   # the full run (about an hour on 2 cores)
"""
# the keys of sfd_lab.bakeoff.contestants.CONTESTANTS (a test keeps them equal; this module imports no torch)
BAKEOFF_CONTESTANTS = ("unet", "vgg", "patchgan", "sfd", "sfd_random", "feat_d", "tg_d")


def bakeoff_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=BAKEOFF_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="results/bakeoff", help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="toy sizes (seeds 0 1, 2 iterations): a rehearsal")
    p.add_argument("--results-dir", help="also write bakeoff-<date>.{md,json} and the PNGs here")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default: 0 1 2; --quick: 0 1)")
    p.add_argument("--iters", type=int, help="fine-tuning iterations per run (default: 300)")
    p.add_argument("--batch", type=int, help="batch size (default: 4)")
    p.add_argument("--gan-weight", type=float, help="total adversarial weight next to L1 1 (default: 0.1)")
    p.add_argument("--d-lr", type=float, help="discriminator Adam learning rate (default: 1e-3)")
    p.add_argument("--d-width", type=int, help="base width of the stock discriminators (default: 32)")
    p.add_argument("--contestants", nargs="+", choices=BAKEOFF_CONTESTANTS, help="a subset (default: all)")
    p.add_argument(
        "--data", default="datasets/demo_sr", help="demo-layout data, written if absent (default: %(default)s)"
    )
    p.add_argument(
        "--clip-pretrained", help="the contestants' quality-aware tiny CLIP file (default: trained once and cached)"
    )
    p.add_argument(
        "--judge-pretrained",
        help="the judge's CLIP file (default: trained once with seed 1 on the colour training photos, never an "
        "evaluation photo, and cached; --quick: the contestants' CLIP, labelled)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads of the main process (default: torch's choice)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="fine-tuning runs in parallel, in worker processes of one torch thread each (default: %(default)s; "
        "on a 2-core machine 2 avoids the threads' synchronisation cost, which grows when the cores are shared)",
    )
    return p


def bakeoff_command(a: argparse.Namespace) -> str:
    """The command line that reproduces a parsed bake-off namespace (every option that was given)."""
    import shlex

    parts = ["python", "scripts/bakeoff.py"]
    defaults = vars(bakeoff_parser().parse_args([]))
    for key, value in vars(a).items():
        if value == defaults.get(key) or value is None or key not in defaults:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)
