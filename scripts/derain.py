"""Derain an image or a folder with a CSUD derainer checkpoint; with --gt, PSNR/SSIM (RGB and Y) and a CSV.

Example: python scripts/derain.py -i datasets/csud_synthetic/test/rain --gt datasets/csud_synthetic/test/clean \\
             -w experiments/demo_CSUD_cpu/models/net_g_latest.pth -o results/demo_CSUD_cpu
Start-up problems (missing or unfit checkpoint, bad option, output folder that is the input or GT
folder, two inputs with the same output name) are printed as one ``error:`` line, exit status 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
from csud_tools.derain import main  # noqa: E402
from sfd_utils.cli import run_cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
