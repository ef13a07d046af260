"""Export a trained generator to <name>.safetensors (plain state dict + metadata) and <name>.onnx.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.sr.export.run_export``.
Installed from a wheel, the same program is the console script ``sfd-export``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.console import export_main as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
