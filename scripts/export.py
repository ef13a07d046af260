"""Export a trained generator to <name>.safetensors (plain state dict + metadata) and <name>.onnx.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.export.run_export``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.cli import export_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(export_parser, "sfd_tools.export:run_export", argv)


if __name__ == "__main__":
    sys.exit(main())
