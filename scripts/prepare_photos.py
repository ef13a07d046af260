"""Prepare the lab's real photographs (train / val / test split by scene) for the bake-off and studies.

Thin entry point: the arguments are parsed before anything heavy is imported (``--help`` answers at
once); the program is ``sfd_lab.photos.run_prepare_cli``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.bakeoff.cli import prepare_photos_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(prepare_photos_parser, "sfd_lab.photos:run_prepare_cli", argv, needs=("numpy", "cv2"))


if __name__ == "__main__":
    sys.exit(main())
