"""Upscale an image or a folder with any registered generator and a checkpoint.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_tools.sr.inference.run_inference``.
Installed from a wheel, the same program is the console script ``sfd-infer``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_tools.console import inference_main as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
