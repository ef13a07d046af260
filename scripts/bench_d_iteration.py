"""One discriminator iteration as the hosts run it (SFDModel, SFD in SRGANModel, UNet-D in
RealESRGANModel): wall, GPU time, kernel launches, host time, operators dispatched; optionally
side by side with another checkout (``--before-root``). Writes benchmarks/results/d_iteration-*.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_lab.bench.d_iteration.run_d_iteration_cli``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.bench.cli import d_iteration_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(d_iteration_parser, "sfd_lab.bench.d_iteration:run_d_iteration_cli", argv)


if __name__ == "__main__":
    sys.exit(main())
