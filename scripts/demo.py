"""`make demo`: SFD training on the photos scikit-image ships, on CPU, in a few minutes.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.demo.run.run_demo_cli``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.demo.cli import demo_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(demo_parser, "sfd_tools.demo.run:run_demo_cli", argv)


if __name__ == "__main__":
    sys.exit(main())
