"""Bake-off at CPU scale: does SFD beat the discriminators users pick today? One stage-1 generator
fine-tuned against seven discriminators with identical generator losses, budget and data order.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_lab.bakeoff.run.run_bakeoff_cli``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.bakeoff.cli import bakeoff_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(bakeoff_parser, "sfd_lab.bakeoff.run:run_bakeoff_cli", argv)


if __name__ == "__main__":
    sys.exit(main())
