"""Write the SR demo data set from scikit-image's photos into datasets/demo_sr (no download).

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.demo.data.run_prepare_demo``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.demo.cli import prepare_demo_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(prepare_demo_parser, "sfd_tools.demo.data:run_prepare_demo", argv)


if __name__ == "__main__":
    sys.exit(main())
