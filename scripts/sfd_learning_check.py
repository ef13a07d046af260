"""SFD learning check on CPU: train Feat-D + TG-D against bicubic upsampling, test on held-out photos,
then train a tiny generator against the frozen discriminator. Writes report.md / report.json."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
from sfd_bench.learning_check import run_learning_check  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="results/learning_check", help="output folder (default: %(default)s)")
    p.add_argument("--d-iters", type=int, default=1000, help="discriminator iterations (default: %(default)s)")
    p.add_argument("--g-iters", type=int, default=60, help="generator iterations (default: %(default)s)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default: %(default)s)")
    p.add_argument("--crop", type=int, default=96, help="HR crop size (default: %(default)s)")
    p.add_argument("--clip-model", default="tiny-rn", help="open_clip model (default: %(default)s)")
    p.add_argument(
        "--clip-pretrained",
        default=None,
        help="CLIP weights (tag in the local cache or file); default: random, BN-calibrated",
    )
    a = p.parse_args()
    r = run_learning_check(a.out, a.d_iters, a.g_iters, a.batch, a.crop, a.clip_model, a.clip_pretrained)
    print(open(os.path.join(a.out, "report.md")).read())
    print(f"report: {os.path.join(a.out, 'report.md')}  discriminator: {r['discriminator_checkpoint']}")


if __name__ == "__main__":
    main()
