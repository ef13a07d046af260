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


# -- scripts/prepare_photos.py (the photo set the bake-off and the studies use: sfd_lab.photos) ----------
PREPARE_DOC = """Prepare the lab's real photographs (train / val / test split by scene) under --root.

By default fetches the Debian wallpaper packages the committed manifest (benchmarks/photos/manifest.json)
names, without root (apt-get download + dpkg-deb -x), checks each photo's SHA-256, downsamples x2 (area)
and writes <root>/<split>/<name>.png. About 110 MB of packages; under a minute with a fast mirror.

Examples:
  python scripts/prepare_photos.py                               # datasets/photos from Debian
  python scripts/prepare_photos.py --debs-dir ~/debs             # .deb files you already have
  python scripts/prepare_photos.py --from-folder ~/DIV2K_valid_HR --root datasets/photos_div2k
"""


def prepare_photos_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=PREPARE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    p.add_argument("--root", help="output folder (default: datasets/photos in the repository)")
    p.add_argument("--debs-dir", help="folder holding the packages' .deb files (default: apt-get download)")
    p.add_argument("--allow-changed", action="store_true", help="use files whose SHA-256 differs from the manifest")
    p.add_argument("--from-folder", help="prepare this folder of your own photos instead (one scene per file)")
    p.add_argument("--val", type=int, default=2, help="--from-folder: validation scenes (default: %(default)s)")
    p.add_argument("--test", type=int, default=8, help="--from-folder: held-out scenes (default: %(default)s)")
    return p
