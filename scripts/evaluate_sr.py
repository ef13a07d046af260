"""Compare an SR folder with a GT folder: PSNR/SSIM (Y, crop = scale), NIQE, LPIPS, DISTS, SFD-IQA.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.sr.evaluation.run_evaluate``.
Installed from a wheel, the same program is the console script ``sfd-evaluate``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.console import evaluate_main as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
