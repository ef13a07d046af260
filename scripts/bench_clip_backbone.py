"""Forward+backward time of the frozen CLIP backbone per 256² image (gradient to the input only),
RN50 and ViT-B-16 with random weights, side by side in one process. Writes JSON + Markdown.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_lab.bench.clip_backbone.run_clip_backbone``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.bench.cli import clip_backbone_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(clip_backbone_parser, "sfd_lab.bench.clip_backbone:run_clip_backbone", argv)


if __name__ == "__main__":
    sys.exit(main())
