"""Does SFD-IQA rank quality? Trains the SFD discriminator alone (fixed bicubic generator, tiny CLIP,
CPU) unless --checkpoint is given, then scores graded degradations of held-out scikit-image photos
next to BasicSR NIQE and writes report.md / report.json (path printed)."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()  # before anything imports basicsr
from sfd_iqa_tools.ranking import run_ranking_report, train_ranking_discriminator  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/iqa_ranking", help="output folder (default: %(default)s)")
    p.add_argument("--checkpoint", default=None, help="score this SFD discriminator checkpoint; no training")
    p.add_argument(
        "--clip-pretrained",
        default=None,
        help="with --checkpoint: override the recorded CLIP weights; when training: CLIP weights to train "
        "with (default: a random, BatchNorm-calibrated CLIP saved to a file)",
    )
    p.add_argument("--tile", type=int, default=None, help="SFD-IQA tile (default: the training crop, or 256)")
    p.add_argument("--iters", type=int, default=400, help="training iterations (default: %(default)s)")
    p.add_argument("--batch", type=int, default=16, help="training batch (default: %(default)s)")
    p.add_argument("--crop", type=int, default=96, help="training HR crop size (default: %(default)s)")
    p.add_argument("--clip-model", default="tiny-rn", help="CLIP to train with (default: %(default)s)")
    p.add_argument("--device", default=None, help="scoring device (default: cuda if available)")
    p.add_argument("--no-niqe", action="store_true", help="skip BasicSR NIQE")
    p.add_argument("--no-speed", action="store_true", help="skip the CPU images/s comparison")
    a = p.parse_args()
    training = None
    checkpoint, clip, tile = a.checkpoint, a.clip_pretrained, a.tile
    if checkpoint is None:
        training = train_ranking_discriminator(a.out, a.iters, a.batch, a.crop, a.clip_model, a.clip_pretrained)
        checkpoint, clip, tile = training["checkpoint"], None, tile or a.crop
    path = run_ranking_report(
        checkpoint, clip, a.out, tile, a.device, niqe=not a.no_niqe, speed=not a.no_speed, training=training
    )
    print(open(path, encoding="utf-8").read())
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
