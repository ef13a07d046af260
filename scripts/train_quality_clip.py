"""Train the quality-aware tiny CLIP (open_clip `quality-tiny-rn`) on CPU from the training photos (the photo
set's train split where prepared, else scikit-image's) and report its zero-shot quality accuracy on held-out photos.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_lab.checks.quality_clip_heldout.run_train_quality_clip``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.checks.cli import quality_clip_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(quality_clip_parser, "sfd_lab.checks.quality_clip_heldout:run_train_quality_clip", argv)


if __name__ == "__main__":
    sys.exit(main())
