"""Write the SR demo data set from scikit-image's photos into datasets/demo_sr (no download)."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
from sfd_tools.demo_data import prepare_demo_sr  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="datasets/demo_sr", help="output folder (default: %(default)s)")
    parser.add_argument("--scale", type=int, default=4, help="LR downscaling factor (default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="HR crop size (default: %(default)s)")
    args = parser.parse_args()
    counts = prepare_demo_sr(args.root, args.scale, args.size, args.size)
    print(f"wrote {counts['train']} training and {counts['val']} validation pairs under {args.root}")


if __name__ == "__main__":
    main()
