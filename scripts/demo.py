"""`make demo`: SFD training on the photos scikit-image ships, on CPU, in a few minutes."""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from sfd_utils.compat import install  # noqa: E402

install()
from sfd_tools.demo import run_demo  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=None, help="override train.total_iter of the demo recipe")
    sys.exit(run_demo(ROOT, parser.parse_args().iters))
