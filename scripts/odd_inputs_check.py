"""Every program against the odd inputs of issue 28: exit status, traceback, peak memory, escaped files.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the check is ``sfd_lab.checks.odd_inputs.run_odd_inputs``. ``--repo DIR`` runs another checkout's
scripts (e.g. an older commit extracted with ``git archive <rev> | tar -x -C DIR``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.checks.cli import odd_inputs_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(odd_inputs_parser, "sfd_lab.checks.odd_inputs:run_odd_inputs", argv)


if __name__ == "__main__":
    sys.exit(main())
