"""CLIP passes per iteration in every GAN host, and one iteration of the stock ESRGANModel drop-in
(feature reuse off / on) vs SFDModel, side by side. Writes JSON + Markdown (sfd_lab.bench.host_cost).

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_lab.bench.host_cost.run_hosts``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.bench.cli import hosts_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(hosts_parser, "sfd_lab.bench.host_cost:run_hosts", argv)


if __name__ == "__main__":
    sys.exit(main())
