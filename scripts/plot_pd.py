"""Draw the perception-distortion plane (PSNR vs LPIPS / NIQE / DISTS / SFD-IQA) from evaluation results.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.sr.plot_pd.run_plot_pd``.
Installed from a wheel, the same program is the console script ``sfd-plot-pd``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.console import plot_pd_main as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
