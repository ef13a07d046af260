"""Derain an image or a folder with a CSUD derainer checkpoint; with --gt, PSNR/SSIM (RGB and Y) and a CSV.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.csud.derain.run_derain``.
Installed from a wheel, the same program is the console script ``sfd-derain``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.console import derain_main as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
