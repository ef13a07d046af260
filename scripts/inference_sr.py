"""Upscale an image or a folder with any registered generator and a checkpoint.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.sr_inference.run_inference``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.cli import inference_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(inference_parser, "sfd_tools.sr_inference:run_inference", argv)


if __name__ == "__main__":
    sys.exit(main())
