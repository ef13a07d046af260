"""Draw the perception-distortion plane (PSNR vs LPIPS / NIQE / DISTS / SFD-IQA) from evaluation results.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.plot_pd.run_plot_pd``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.cli import plot_pd_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(plot_pd_parser, "sfd_tools.plot_pd:run_plot_pd", argv, needs=("numpy", "matplotlib"))


if __name__ == "__main__":
    sys.exit(main())
