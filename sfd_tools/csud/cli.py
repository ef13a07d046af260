"""Command lines of the CSUD programs (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse

from sfd_utils.cli import MAX_PIXELS_HELP, pixel_count

DERAIN_DOC = """Derain an image or a folder with a CSUD derainer checkpoint; with --gt, PSNR/SSIM (RGB and Y) and a CSV.

Example: python scripts/derain.py -i datasets/csud_synthetic/test/rain --gt datasets/csud_synthetic/test/clean \\
             -w experiments/demo_CSUD_cpu/models/net_g_latest.pth -o results/demo_CSUD_cpu
Start-up problems (missing or unfit checkpoint, bad option, output folder that is the input or GT
folder, two inputs with the same output name) are printed as one ``error:`` line, exit status 2.
"""
SYNTHETIC_RAIN_DOC = """Write the CSUD demo data set: synthetic streak rain on scikit-image's photos (no download).

Layout: <root>/train/rain (unpaired rainy crops), <root>/train/clean (clean crops: by default from
the other half of each training photo, never the same pixels; --clean-from other_photos: crops of
other photos), <root>/test/rain + <root>/test/clean (held-out photos, paired by file name).
The four split folders must be empty or absent; --overwrite empties them first (nothing else under
<root> is touched). Exit status 2 when nothing could be written (bad option, crop larger than the
photos, output not empty).
"""
CLEAN_FROM = ("other_halves", "other_photos")
DEFAULT_DENSITY = (1.0, 2.0)  # streaks per 1000 px (sfd_tools.csud.synthetic_rain.RainStyle)
DEFAULT_STRENGTH = (0.5, 0.9)


class _DerainParser(argparse.ArgumentParser):
    def parse_args(self, args=None, namespace=None):
        args = super().parse_args(args, namespace)
        if args.tile < 0:
            self.error(f"--tile must be >= 0 (0 = whole image), got {args.tile}")
        if args.overlap is None:
            args.overlap = min(32, args.tile // 4)
        if args.overlap < 0:
            self.error(f"--overlap must be >= 0, got {args.overlap}")
        if args.tile and args.overlap >= args.tile:
            self.error(f"--overlap {args.overlap} must be smaller than --tile {args.tile}")
        return args


class _RainParser(argparse.ArgumentParser):
    def parse_args(self, args=None, namespace=None):
        args = super().parse_args(args, namespace)
        for option, value in (("--size", args.size), ("--test-size", args.test_size), ("--per-photo", args.per_photo)):
            if value < 1:
                self.error(f"{option} must be >= 1, got {value}")
        for option, (lo, hi) in (("--density", args.density), ("--strength", args.strength)):
            if lo < 0 or lo > hi:
                self.error(f"{option} takes MIN MAX with 0 <= MIN <= MAX, got {lo:g} {hi:g}")
        return args


def derain_parser() -> argparse.ArgumentParser:
    parser = _DerainParser(
        allow_abbrev=False,
        description=DERAIN_DOC.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Unreadable inputs and inputs without a usable GT are named and skipped (exit status 1); none\n"
        "derained, or a run that cannot start (missing file, unfit checkpoint, bad option, output folder =\n"
        "input/GT folder, output name clash): one error: line, exit status 2.",
    )
    parser.add_argument("-i", "--input", required=True, help="an image or a folder of images")
    parser.add_argument(
        "-w",
        "--weights",
        required=True,
        help="derainer checkpoint (net_g_*.pth, official NAFNet, or export.py's .safetensors)",
    )
    parser.add_argument("-o", "--output", default=None, help="folder for the derained PNGs (default: none written)")
    parser.add_argument("--gt", default=None, help="folder of clean images (same file stems) to score against")
    parser.add_argument("--csv", default=None, help="per-image CSV report (default: <output>/metrics.csv with --gt)")
    parser.add_argument("--opt", default=None, help="recipe whose network_g to build (default: read from the keys)")
    parser.add_argument(
        "--tile", type=int, default=1024, help="tile side for larger images; 0 = whole image (default: %(default)s)"
    )
    parser.add_argument(
        "--overlap", type=int, default=None, help="tile overlap in pixels (default: 32, at most a quarter tile)"
    )
    parser.add_argument("--device", default="auto", help="auto (= cuda if available) | cpu | cuda:N")
    parser.add_argument("--max-pixels", type=pixel_count, default=None, metavar="N", help=MAX_PIXELS_HELP)
    return parser


def synthetic_rain_parser() -> argparse.ArgumentParser:
    parser = _RainParser(
        allow_abbrev=False, description=SYNTHETIC_RAIN_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="datasets/csud_synthetic", help="output folder (default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="training crop size (default: %(default)s)")
    parser.add_argument("--test-size", type=int, default=128, help="test crop size (default: %(default)s)")
    parser.add_argument("--per-photo", type=int, default=16, help="training crops per photo (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--clean-from",
        choices=CLEAN_FROM,
        default="other_halves",
        help="train/clean source: other_halves = the other half of each training photo, other_photos = "
        "a separate group of photos (default: %(default)s)",
    )
    parser.add_argument(
        "--density", type=float, nargs=2, default=DEFAULT_DENSITY, help="streaks per 1000 px, min max (%(default)s)"
    )
    parser.add_argument(
        "--strength", type=float, nargs=2, default=DEFAULT_STRENGTH, help="streak intensity, min max (%(default)s)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="empty the train/test rain/clean folders under --root first"
    )
    return parser
