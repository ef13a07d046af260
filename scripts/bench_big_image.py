"""Peak memory of tiled SR inference on one big photo (``scripts/bench_big_image.py``).

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_lab.bench.big_image.run_big_image``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.bench.cli import big_image_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(big_image_parser, "sfd_lab.bench.big_image:run_big_image", argv)


if __name__ == "__main__":
    sys.exit(main())
