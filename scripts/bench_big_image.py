"""Peak memory of tiled SR inference on one big photo: scripts/inference_sr.py in a subprocess, peak
RSS against baseline + 2 x the output array. Writes JSON + Markdown to benchmarks/results/.

Example:
  python scripts/bench_big_image.py --size 6000x4000 --tile 256 --before-root /tmp/sfd_base
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
from sfd_bench.big_image import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
