"""Forward+backward time of the frozen CLIP backbone per 256² image (gradient to the input only),
RN50 and ViT-B-16 with random weights, side by side in one process. Writes JSON + Markdown."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
from sfd_bench.clip_backbone import main  # noqa: E402

if __name__ == "__main__":
    main()
