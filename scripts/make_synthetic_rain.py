"""Write the CSUD demo data set: synthetic streak rain on scikit-image's photos (no download).

Layout: <root>/train/rain (unpaired rainy crops), <root>/train/clean (clean crops: by default from
the other half of each training photo, never the same pixels; --clean-from other_photos: crops of
other photos), <root>/test/rain + <root>/test/clean (held-out photos, paired by file name).
The four split folders must be empty or absent; --overwrite empties them first (nothing else under
<root> is touched). Exit status 2 when nothing could be written (bad option, crop larger than the
photos, output not empty).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
from csud_tools.synthetic_rain import CLEAN_FROM, RainStyle, make_synthetic_rain  # noqa: E402
from sfd_utils.cli import run_cli  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    default = RainStyle()
    parser.add_argument(
        "--density", type=float, nargs=2, default=default.density, help="streaks per 1000 px, min max (%(default)s)"
    )
    parser.add_argument(
        "--strength", type=float, nargs=2, default=default.strength, help="streak intensity, min max (%(default)s)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="empty the train/test rain/clean folders under --root first"
    )
    args = parser.parse_args(argv)
    for option, value in (("--size", args.size), ("--test-size", args.test_size), ("--per-photo", args.per_photo)):
        if value < 1:
            parser.error(f"{option} must be >= 1, got {value}")
    for option, (lo, hi) in (("--density", args.density), ("--strength", args.strength)):
        if lo < 0 or lo > hi:
            parser.error(f"{option} takes MIN MAX with 0 <= MIN <= MAX, got {lo:g} {hi:g}")
    style = RainStyle(density=tuple(args.density), strength=tuple(args.strength))
    counts = make_synthetic_rain(
        args.root,
        args.size,
        args.test_size,
        args.per_photo,
        seed=args.seed,
        style=style,
        clean_from=args.clean_from,
        overwrite=args.overwrite,
    )
    written = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"wrote {sum(counts.values())} image(s) under {args.root}: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
