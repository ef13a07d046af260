"""SFD learning check on CPU: train Feat-D + TG-D against bicubic upsampling, test on held-out photos,
then train a tiny generator against the frozen discriminator. Writes report.md / report.json.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_lab.checks.learning_check.run_learning_check_cli``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.checks.cli import learning_check_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(learning_check_parser, "sfd_lab.checks.learning_check:run_learning_check_cli", argv)


if __name__ == "__main__":
    sys.exit(main())
