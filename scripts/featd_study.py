"""Feat-D design study (issue 30 item 7): which CLIP layers, feature normalisation, head receptive field and
generator term make Feat-D help a generator, judged on the validation photos. Writes report.md / report.json.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_lab.bakeoff.featd_run.run_featd_study_cli``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.bakeoff.featd_cli import featd_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(featd_parser, "sfd_lab.bakeoff.featd_run:run_featd_study_cli", argv)


if __name__ == "__main__":
    sys.exit(main())
