"""SFD-IQA on an image, a folder or an IQA data set with opinion scores. See --help.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_iqa_tools.evaluate.run_iqa_eval``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_iqa_tools.cli import sfd_iqa_eval_parser  # noqa: E402
from sfd_utils.cli import SCORING, launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(sfd_iqa_eval_parser, "sfd_iqa_tools.evaluate:run_iqa_eval", argv, needs=SCORING)


if __name__ == "__main__":
    sys.exit(main())
