"""Write the CSUD demo data set: synthetic streak rain on scikit-image's photos (no download).

Layout: <root>/train/rain (unpaired rainy crops), <root>/train/clean (crops of other photos),
<root>/test/rain + <root>/test/clean (held-out photos, paired by file name).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
from sfd_data.synthetic_rain import CLEAN_FROM, RainStyle, make_synthetic_rain  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="datasets/csud_synthetic", help="output folder (default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="training crop size (default: %(default)s)")
    parser.add_argument("--test-size", type=int, default=128, help="test crop size (default: %(default)s)")
    parser.add_argument("--per-photo", type=int, default=16, help="training crops per photo (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--clean-from", choices=CLEAN_FROM, default="other_halves", help="clean set source (default: %(default)s)"
    )
    default = RainStyle()
    parser.add_argument(
        "--density", type=float, nargs=2, default=default.density, help="streaks per 1000 px, min max (%(default)s)"
    )
    parser.add_argument(
        "--strength", type=float, nargs=2, default=default.strength, help="streak intensity, min max (%(default)s)"
    )
    args = parser.parse_args()
    style = RainStyle(density=tuple(args.density), strength=tuple(args.strength))
    counts = make_synthetic_rain(
        args.root, args.size, args.test_size, args.per_photo, seed=args.seed, style=style, clean_from=args.clean_from
    )
    print(", ".join(f"{k}: {v}" for k, v in counts.items()), f"(under {args.root})")


if __name__ == "__main__":
    main()
