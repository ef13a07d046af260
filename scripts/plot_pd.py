"""Draw the perception-distortion plane (PSNR vs LPIPS / NIQE / DISTS / SFD-IQA) from evaluation results.

Example:
  python scripts/plot_pd.py results/eval/bicubic.json results/eval/demo_SFD_cpu.json \\
      --label Bicubic SFD --y niqe --out results/pd_niqe
Writes <out>.png and <out>.svg: one labelled point per method, the better corner marked.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.plot_pd import load_points, plot_pd  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="evaluation JSON files written by evaluate_sr.py (one per method)")
    p.add_argument("--label", nargs="+", help="one label per file (default: the label stored in each file)")
    p.add_argument("--y", default="lpips", help="lpips | niqe | dists | sfd_iqa (default: %(default)s)")
    p.add_argument("--x", default="psnr", help="distortion axis (default: %(default)s)")
    p.add_argument("--title", help="plot title")
    p.add_argument("--out", default="results/pd_plot", help="output path without extension (default: %(default)s)")
    a = p.parse_args(argv)
    points = load_points(a.results, a.label, a.x, a.y)
    for pt in points:
        print(f"{pt['label']:<20} {a.x} {pt['x']:.4f}  {a.y} {pt['y']:.4f}  ({pt['count']} images)")
    if len({pt["count"] for pt in points}) > 1:
        print("warning: the methods were evaluated on different numbers of images; their means are not comparable")
    for path in plot_pd(points, a.y, a.x, a.out, a.title):
        print(f"wrote {path}")
    return 0


def run(argv=None) -> int:
    """main() with known failures (missing file, bad option, unfit checkpoint) as one line, exit 2."""
    from sfd_utils.cli import run_cli

    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(run())
