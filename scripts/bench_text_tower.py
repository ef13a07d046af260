"""Cost of the frozen-CLIP options (truncated text tower, CLIP input size, frozen-weight dtype):
writes benchmarks/results/text_tower-<device>-<date>.{json,md}. See sfd_lab.bench/text_tower.py.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_lab.bench.text_tower.run_text_tower``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.bench.cli import text_tower_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(text_tower_parser, "sfd_lab.bench.text_tower:run_text_tower", argv)


if __name__ == "__main__":
    sys.exit(main())
