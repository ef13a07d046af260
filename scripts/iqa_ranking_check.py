"""Does SFD-IQA rank quality? Trains the SFD discriminator alone (fixed bicubic generator, tiny CLIP,
CPU) unless --checkpoint is given, then scores graded degradations of held-out scikit-image photos
next to BasicSR NIQE and writes report.md / report.json (path printed).

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.iqa.ranking.run_ranking_check``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.iqa.cli import ranking_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(ranking_parser, "sfd_tools.iqa.ranking:run_ranking_check", argv)


if __name__ == "__main__":
    sys.exit(main())
