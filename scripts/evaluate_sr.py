"""Compare an SR folder with a GT folder: PSNR/SSIM (Y, crop = scale), NIQE, LPIPS, DISTS, SFD-IQA.

Examples:
  python scripts/evaluate_sr.py --sr results/demo_SFD_cpu --gt datasets/demo_sr/val/hr --sr-suffix _out \\
      --scale 4 --out results/eval --name demo_SFD_cpu
  # + LPIPS from local files (nothing is downloaded), SFD-IQA from an SFD discriminator checkpoint
  python scripts/evaluate_sr.py --sr SR --gt GT --metrics psnr ssim niqe lpips sfd_iqa \\
      --lpips-weights weights/lpips_alex.pth --lpips-trunk weights/alexnet-owt-7be5be79.pth \\
      --sfd-iqa-checkpoint experiments/demo_SFD_cpu/models/net_d_latest.pth
Writes <out>/<name>.json, <name>_per_image.csv and <name>_mean.csv. Unpaired names, unreadable files
and size mismatches are listed, not dropped. Exit status 1 if nothing could be evaluated, or (with
--strict) if anything was left out; 2 if it could not start (missing folder or weight file).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
from sfd_tools.evaluation import evaluate_folders, format_summary, n_problems, write_results  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sr", required=True, help="folder of SR images")
    p.add_argument("--gt", required=True, help="folder of ground-truth HR images")
    p.add_argument("--scale", type=int, default=4, help="SR scale; crop border defaults to it (default: 4)")
    p.add_argument("--crop-border", type=int, help="pixels cut from each edge for PSNR/SSIM/NIQE (default: scale)")
    p.add_argument("--metrics", nargs="+", default=["psnr", "ssim", "niqe"], help="psnr ssim niqe lpips dists sfd_iqa")
    p.add_argument("--sr-suffix", default="", help="literal end of SR names to remove, e.g. _out")
    p.add_argument("--gt-suffix", default="", help="literal end of GT names to remove")
    p.add_argument("--sr-suffix-regex", help=r"regex instead, e.g. '_\d+' for BasicSR visualization names")
    p.add_argument("--gt-suffix-regex", help="regex for GT names")
    p.add_argument("--lpips-weights", help="LPIPS linear layers (lpips/weights/v0.1/alex.pth) or a full LPIPS file")
    p.add_argument("--lpips-trunk", help="torchvision alexnet-owt-7be5be79.pth / vgg16-397923af.pth")
    p.add_argument("--lpips-net", choices=["alex", "vgg"], default="alex")
    p.add_argument("--dists-weights", help="DISTS alpha/beta (DISTS_pytorch/weights.pt) or a full DISTS file")
    p.add_argument("--dists-trunk", help="torchvision vgg16-397923af.pth")
    p.add_argument("--sfd-iqa-checkpoint", help="SFD discriminator checkpoint (net_d_<iter>.pth) for sfd_iqa")
    p.add_argument("--sfd-iqa-clip", help="local CLIP weights overriding the ones recorded in that checkpoint")
    p.add_argument("--device", default="auto", help="for LPIPS/DISTS/SFD-IQA (default: %(default)s)")
    p.add_argument("--label", help="method name stored in the results (default: SR folder name)")
    p.add_argument("--out", default="results/eval", help="output folder (default: %(default)s)")
    p.add_argument("--name", help="file name stem (default: the label)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any image was left out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)

    if "sfd_iqa" not in a.metrics and a.sfd_iqa_checkpoint:
        a.metrics.append("sfd_iqa")
    result = evaluate_folders(
        a.sr,
        a.gt,
        scale=a.scale,
        crop_border=a.crop_border,
        metrics=a.metrics,
        sr_suffix=a.sr_suffix,
        gt_suffix=a.gt_suffix,
        sr_regex=a.sr_suffix_regex,
        gt_regex=a.gt_suffix_regex,
        label=a.label,
        progress=not a.quiet,
        lpips_weights=a.lpips_weights,
        lpips_trunk=a.lpips_trunk,
        lpips_net=a.lpips_net,
        dists_weights=a.dists_weights,
        dists_trunk=a.dists_trunk,
        sfd_iqa_checkpoint=a.sfd_iqa_checkpoint,
        sfd_iqa_clip=a.sfd_iqa_clip,
        device=a.device,
    )
    paths = write_results(result, a.out, a.name or result["label"])
    print(format_summary(result))
    print(f"results: {paths['json']}, {paths['per_image_csv']}, {paths['mean_csv']}")
    if result["count"] == 0:
        print("nothing was evaluated: check the folders and --sr-suffix/--gt-suffix", file=sys.stderr)
        return 1
    return 1 if a.strict and n_problems(result) else 0


def run(argv=None) -> int:
    """main() with known failures (missing file, bad option, unfit checkpoint) as one line, exit 2."""
    from sfd_utils.cli import run_cli

    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(run())
