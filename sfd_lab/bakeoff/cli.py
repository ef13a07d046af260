"""Command line of the bake-off (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse

BAKEOFF_DOC = """Bake-off at CPU scale: one stage-1 L1 generator fine-tuned with identical generator losses, budget
and data order against an L1-only control (GAN weight 0), Real-ESRGAN's U-Net SN, ESRGAN's VGG-style, a
PatchGAN, SFD (Feat-D + TG-D) on the quality-aware tiny CLIP, SFD on random weights of that CLIP, Feat-D
only and TG-D only (ablations at SFD's per-head weight); SFD and Feat-D only with Feat-D's maps normalised
by their RMS (feat_norm rms, the first default) and per channel (channel, today's default). Both SFDs,
PatchGAN and U-Net SN run at three GAN
weights (a perception-distortion frontier), the others at the middle one; each discriminator's learning
rate is chosen from 1e-4 / 3e-4 / 1e-3 on the validation photos; three seeds. Judged on the whole
held-out photos (real photographs split by scene: scripts/prepare_photos.py; without them scikit-image's
photos, labelled) by PSNR/SSIM-Y, NIQE and a realism test (a from-scratch CNN telling HR from SR
patches, cross-validated across scenes), with paired 95 % intervals over scenes x seeds, sanity rows
(bicubic + noise, unsharp masking) and each discriminator's accuracy. Writes report.md/json, a frontier
plot and a montage under --out (and bakeoff-<date>.* under --results-dir).

Resumable: every finished run, evaluation and realism test is kept under --out/tasks; after an
interruption (exit status 3) the same command continues where it stopped.

Examples:
  python scripts/bakeoff.py --quick --jobs 2   # toy sizes on scikit-image's photos: about 2.5 min on 2 cores
  python scripts/bakeoff.py --jobs 2 --results-dir benchmarks/results   # the full run (see docs/results/bakeoff.md)
"""
# the keys of sfd_lab.bakeoff.contestants.CONTESTANTS (a test keeps them equal; this module imports no torch)
BAKEOFF_CONTESTANTS = (
    "l1", "unet", "vgg", "patchgan", "sfd", "sfd_random", "feat_d", "tg_d", "sfd_channel", "feat_d_channel"
)  # fmt: skip


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def bakeoff_parser() -> argparse.ArgumentParser:
    from sfd_utils.cli import positive_int

    p = argparse.ArgumentParser(
        allow_abbrev=False, description=BAKEOFF_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="results/bakeoff", help="output and resume folder (default: %(default)s)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="toy sizes on scikit-image's photos (seeds 0 1, 2 iterations, 2 learning rates; 124 tasks): a rehearsal "
        "of the code, measured at 146 s with --jobs 2 and the quality CLIP cached (2026-12-07, 2 cores shared with a "
        "running make demo)",
    )
    p.add_argument("--results-dir", help="also write bakeoff-<date>.{md,json} and the PNGs here")
    p.add_argument("--photos", default="datasets/photos", help="prepared photo set (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default: 0 1 2; --quick: 0 1)")
    p.add_argument("--iters", type=positive_int, help="fine-tuning iterations per run (default: 300)")
    p.add_argument("--batch", type=positive_int, help="batch size (default: 4)")
    p.add_argument(
        "--gan-weights", type=_positive_float, nargs="+", help="increasing GAN weights (default: 0.03 0.1 0.3)"
    )
    p.add_argument(
        "--lr-grid", type=_positive_float, nargs="+", help="discriminator learning rates (default: 1e-4 3e-4 1e-3)"
    )
    p.add_argument("--d-width", type=positive_int, help="base width of the stock discriminators (default: 16)")
    p.add_argument("--contestants", nargs="+", choices=BAKEOFF_CONTESTANTS, help="a subset (default: all)")
    p.add_argument(
        "--frontier", nargs="+", choices=BAKEOFF_CONTESTANTS[1:], help="contestants run at every GAN weight "
        "(default: sfd sfd_channel patchgan unet, those of them among --contestants)"
    )  # fmt: skip
    p.add_argument(
        "--clip-pretrained", help="the SFD contestants' quality-aware tiny CLIP file (default: trained once and cached)"
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="tasks in parallel, in worker processes of one torch thread each (default: %(default)s; 2 on a "
        "2-core machine)",
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
