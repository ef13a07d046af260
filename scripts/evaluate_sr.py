"""Compare an SR folder with a GT folder: PSNR/SSIM (Y, crop = scale), NIQE, LPIPS, DISTS, SFD-IQA.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.evaluation.run_evaluate``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.cli import evaluate_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(evaluate_parser, "sfd_tools.evaluation:run_evaluate", argv)


if __name__ == "__main__":
    sys.exit(main())
