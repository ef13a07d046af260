"""Command lines of the SFD-IQA programs (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse

from sfd_utils.cli import MAX_PIXELS_HELP, pixel_count, positive_int

RANKING_DOC = """Does SFD-IQA rank quality? Trains the SFD discriminator alone (fixed bicubic generator, tiny CLIP,
CPU) unless --checkpoint is given, then scores graded degradations of held-out scikit-image photos
next to BasicSR NIQE and writes report.md / report.json (path printed)."""
BASELINES = ("niqe",)  # baselines sfd_iqa_eval.py can run next to SFD-IQA (no weights to download)


EPILOG = """\
inputs (INPUT, detected automatically unless --dataset is given):
  an image file          scores one image
  a folder               scores every file in it (--recursive for subfolders); files that are not
                         readable images are reported by name and skipped
  a .csv/.tsv/.txt table image name + MOS columns (--name-col, --mos-col; default: the first of
                         image_name/image/name/filename/... and MOS/mos/score); images are looked up
                         in --image-dir (default: the table's folder). Or give a folder + --mos TABLE.
  KonIQ-10k              the folder holding koniq10k_scores_and_distributions.csv (columns image_name,
                         MOS) and 1024x768/ (--image-dir for another resolution)
  LIVE Challenge         the folder holding Data/AllImages_release.mat, Data/AllMOS_release.mat and
                         Images/; the first 7 entries (t1..t7.bmp, the release's training images) are
                         left out (1162 images, the usual protocol) unless --livec-include-train

images: grayscale is replicated to 3 channels; an alpha channel is dropped (not composited); 16-bit
  images are scaled by 1/65535, float images clipped to [0, 1]; EXIF orientation is applied.
  Images smaller than a tile are resized up (bicubic, aspect kept); large images are cut into tiles
  processed --batch-size at a time, so memory does not grow with the image.

scores (higher = better, all in [0, 1]), per tile c of the image:
  q_feat = mean over Feat-D layers and positions of sigmoid(Feat-D logit)
  q_text = sigmoid(TG-D logit of the learnable prompt pair)
  Q      = mean over tiles of alpha*q_feat + (1-alpha)*q_text

outputs (in --out): scores.csv, scores.json (per image + summary + skipped files), report.md and,
  with MOS, scatter.png. With MOS: SROCC, KRCC, PLCC raw, PLCC and RMSE after the 4-parameter
  logistic fit (--logistic 5 or both for the 5-parameter one), for Q, q_feat, q_text and each
  --compare baseline (NIQE is negated so that all correlations are positive when they agree).

examples:
  python scripts/sfd_iqa_eval.py -c experiments/run/models/net_d_latest.pth photo.png
  python scripts/sfd_iqa_eval.py -c net_d.pth /data/koniq10k --compare niqe --device cuda --bf16
  python scripts/sfd_iqa_eval.py -c net_d.pth my_images/ --mos scores.tsv --name-col file --mos-col mean
"""


def sfd_iqa_eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="sfd_iqa_eval.py",
        description="SFD-IQA: opinion-unaware no-reference image quality from a trained SFD discriminator "
        "(Feat-D + learnable prompt pair). Scores images; with opinion scores, reports correlations.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="image, folder, MOS table, KonIQ-10k or LIVE Challenge folder (see below)")
    p.add_argument("-c", "--checkpoint", required=True, help="SFD discriminator checkpoint (net_d_<iter>.pth)")
    p.add_argument(
        "--clip-pretrained",
        default=None,
        help="CLIP weights of the CLIP the discriminator was trained with: a local file, or an open_clip tag "
        "(from the hub cache, downloaded on first use unless SFD_OFFLINE=1); default: what the checkpoint records",
    )
    p.add_argument("-o", "--out", default=None, help="output folder (default: results/sfd_iqa/<input name>)")
    g = p.add_argument_group("data set")
    g.add_argument(
        "--dataset", default="auto", choices=("auto", "image", "folder", "table", "koniq", "livec"), help="layout"
    )
    g.add_argument("--mos", default=None, help="CSV/TSV with image names and MOS for a folder INPUT")
    g.add_argument("--name-col", default=None, help="image name column of the MOS table")
    g.add_argument("--mos-col", default=None, help="MOS column of the MOS table (higher = better)")
    g.add_argument("--image-dir", default=None, help="folder the table's image names are relative to")
    g.add_argument("--split", default=None, help="keep only rows whose 'set' column equals this (e.g. test)")
    g.add_argument("--livec-include-train", action="store_true", help="LIVE Challenge: keep t1..t7.bmp")
    g.add_argument("--recursive", action="store_true", help="folder INPUT: include subfolders")
    g.add_argument("--limit", type=positive_int, default=None, help="score only the first N images")
    g.add_argument("--max-pixels", type=pixel_count, default=None, metavar="N", help=MAX_PIXELS_HELP)
    s = p.add_argument_group("scoring")
    s.add_argument(
        "--tile", type=positive_int, default=None, help="tile size (default: the checkpoint's training crop, else 256)"
    )
    s.add_argument("--stride", type=positive_int, default=None, help="tile step (default: tile; smaller = overlapping)")
    s.add_argument("--alpha", type=float, default=0.5, help="weight of q_feat in Q (default: %(default)s)")
    s.add_argument("--batch-size", type=positive_int, default=16, help="tiles per forward (default: %(default)s)")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    s.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the CLIP/discriminator forward")
    r = p.add_argument_group("report")
    r.add_argument(
        "--compare", action="append", default=[], choices=BASELINES, help="also run this baseline (BasicSR NIQE)"
    )
    r.add_argument("--logistic", default="4", choices=("4", "5", "both"), help="logistic fit(s) for PLCC")
    r.add_argument("--no-plot", action="store_true", help="do not write scatter.png")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def ranking_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=RANKING_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    return p
