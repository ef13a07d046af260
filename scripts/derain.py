"""Derain an image or a folder with a CSUD derainer checkpoint; with --gt, PSNR/SSIM (RGB and Y) and a CSV.

Example: python scripts/derain.py -i datasets/csud_synthetic/test/rain --gt datasets/csud_synthetic/test/clean \\
             -w experiments/demo_CSUD_cpu/models/net_g_latest.pth -o results/demo_CSUD_cpu
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
from sfd_utils.cli import run_cli  # noqa: E402
from sfd_utils.derain import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
