"""Command lines of the SR programs (standard library only: ``--help`` never imports torch).

One parser per ``scripts/*.py`` entry; the programs take the parsed namespace (``run_*(args)``).
"""

from __future__ import annotations

import argparse

from sfd_utils.cli import MAX_PIXELS_HELP, pixel_count

INFERENCE_DOC = """Upscale an image or a folder with any registered generator and a checkpoint.

Examples:
  # our training output (network read from the recipe)
  python scripts/inference_sr.py -i datasets/demo_sr/val/lr_x4 -o results/demo_SFD_cpu \\
      --model experiments/demo_SFD_cpu/models/net_g_latest.pth --opt options/demo_SFD_cpu.yml
  # official SFD x4 / x2 RRDBNet release (architecture read from the checkpoint)
  python scripts/inference_sr.py -i inputs -o results/sfd_x4 --model SFD_RRDB_x4.pth
  # a scripts/export.py file (network read from its metadata) or traiNNer-redux's net_g (spandrel reads it)
  python scripts/inference_sr.py -i inputs -o results/mine --model net_g_latest.safetensors
  # a bicubic baseline (parameter-free network, no checkpoint)
  python scripts/inference_sr.py -i inputs -o results/bicubic --arch SFDBicubicUpsampler --arch-opt scale=4
  # any architecture
  python scripts/inference_sr.py -i inputs -o out --model net.pth --arch SwinIR \\
      --arch-opt upscale=4 window_size=8 img_size=64 embed_dim=180 --tile 256
Images that cannot be read or processed are skipped and listed at the end (exit status 1); if none
could be upscaled, or the run cannot start (missing file, unknown architecture, checkpoint that does
not fit), one error: line and exit status 2.
"""
EVALUATE_DOC = """Compare an SR folder with a GT folder: PSNR/SSIM (Y, crop = scale), NIQE, LPIPS, DISTS, SFD-IQA.

Examples:
  python scripts/evaluate_sr.py --sr results/demo_SFD_cpu --gt datasets/demo_sr/val/hr --sr-suffix _out \\
      --scale 4 --out results/eval --name demo_SFD_cpu
  # + LPIPS (linear layers from the lpips package or --lpips-weights; the AlexNet trunk from torch
  # hub's cache, downloaded on first use, or --lpips-trunk), SFD-IQA from an SFD discriminator checkpoint
  python scripts/evaluate_sr.py --sr SR --gt GT --metrics psnr ssim niqe lpips sfd_iqa \\
      --lpips-weights weights/lpips_alex.pth --lpips-trunk weights/alexnet-owt-7be5be79.pth \\
      --sfd-iqa-checkpoint experiments/demo_SFD_cpu/models/net_d_latest.pth
Writes <out>/<name>.json, <name>_per_image.csv and <name>_mean.csv. Unpaired names, unreadable files
and size mismatches are listed, not dropped (exit status 1); nothing evaluated, a missing folder or
weight file: one error: line and exit status 2.
"""
PLOT_PD_DOC = """Draw the perception-distortion plane (PSNR vs LPIPS / NIQE / DISTS / SFD-IQA) from evaluation results.

Example:
  python scripts/plot_pd.py results/eval/bicubic.json results/eval/demo_SFD_cpu.json \\
      --label Bicubic SFD --y niqe --out results/pd_niqe
Writes <out>.png and <out>.svg: one labelled point per method, the better corner marked.
"""
EXPORT_DOC = """Export a trained generator to <name>.safetensors (plain state dict + metadata) and <name>.onnx.

Examples:
  # our training output (network read from the recipe); writes next to the checkpoint by default
  python scripts/export.py --model experiments/train_SFD_RRDB_x4/models/net_g_latest.pth \\
      --opt options/train_SFD_RRDB_x4.yml
  # official SFD x4 / x2 RRDBNet or a NAFNet derainer (architecture read from the keys)
  python scripts/export.py --model SFD_RRDB_x2.pth -o exported --name sfd_rrdb_x2
  # any registered architecture, the non-EMA weights, an extra fp16 ONNX file
  python scripts/export.py --model net_g_5000.pth --arch SwinIR --arch-opt upscale=4 window_size=8 \\
      img_size=64 embed_dim=180 --param-key params --fp16
The safetensors file loads in spandrel (chaiNNer, traiNNer-redux) and back into sfd-basicsr; the
ONNX file takes (B, C, H, W) in [0, 1] with any batch, H and W. See docs/export.md.
A missing file, an unknown architecture, a checkpoint that is not a generator or does not fit, or
an output file that exists: one `error:` line and exit status 2.
"""


def inference_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=INFERENCE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-i", "--input", required=True, help="image file or folder")
    p.add_argument("-o", "--output", default="results/inference", help="output folder (default: %(default)s)")
    p.add_argument(
        "--model",
        help="generator checkpoint (.pth or .safetensors): ours, Real-ESRGAN, official SFD, export.py's, "
        "traiNNer-redux's (none for bicubic)",
    )
    p.add_argument("--arch", help="registered architecture name, e.g. RRDBNet, SRVGGNetCompact, SFDRRDBNetOfficialX2")
    p.add_argument("--arch-opt", nargs="*", default=[], metavar="KEY=VALUE", help="architecture arguments")
    p.add_argument("--opt", help="training YAML whose network_g describes the generator")
    p.add_argument("--param-key", help="checkpoint key (params / params_ema); default: params_ema if present")
    p.add_argument("-s", "--scale", type=int, help="network scale (default: from the network options)")
    p.add_argument("--outscale", type=float, help="final scale, resized with Lanczos (default: --scale)")
    p.add_argument("--tile", type=int, default=0, help="LR tile size, 0 = whole image (default: %(default)s)")
    p.add_argument("--tile-pad", type=int, default=10, help="overlap (LR pixels) per tile side (default: %(default)s)")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32", help="fp16/bf16 for GPUs")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: %(default)s)")
    p.add_argument("--alpha-upsampler", choices=["model", "bilinear"], default="model")
    p.add_argument("--suffix", default="out", help="output name <stem>_<suffix>.<ext>; '' for none (default: out)")
    p.add_argument("--ext", default="auto", help="auto (= input's) | png | jpg ... (default: %(default)s)")
    p.add_argument("--max-pixels", type=pixel_count, default=None, metavar="N", help=MAX_PIXELS_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=EVALUATE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    p.add_argument(
        "--lpips-trunk", help="torchvision alexnet-owt-7be5be79.pth / vgg16-397923af.pth (default: torch hub cache)"
    )
    p.add_argument("--lpips-net", choices=["alex", "vgg"], default="alex")
    p.add_argument("--dists-weights", help="DISTS alpha/beta (DISTS_pytorch/weights.pt) or a full DISTS file")
    p.add_argument("--dists-trunk", help="torchvision vgg16-397923af.pth (default: torch hub cache)")
    p.add_argument("--sfd-iqa-checkpoint", help="SFD discriminator checkpoint (net_d_<iter>.pth) for sfd_iqa")
    p.add_argument("--sfd-iqa-clip", help="local CLIP weights overriding the ones recorded in that checkpoint")
    p.add_argument("--device", default="auto", help="for LPIPS/DISTS/SFD-IQA (default: %(default)s)")
    p.add_argument("--label", help="method name stored in the results (default: SR folder name)")
    p.add_argument("--out", default="results/eval", help="output folder (default: %(default)s)")
    p.add_argument("--name", help="file name stem (default: the label)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="kept for old commands: the exit status is now 1 whenever an image was left out",
    )
    p.add_argument("--max-pixels", type=pixel_count, default=None, metavar="N", help=MAX_PIXELS_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def plot_pd_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=PLOT_PD_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("results", nargs="+", help="evaluation JSON files written by evaluate_sr.py (one per method)")
    p.add_argument("--label", nargs="+", help="one label per file (default: the label stored in each file)")
    p.add_argument("--y", default="lpips", help="lpips | niqe | dists | sfd_iqa (default: %(default)s)")
    p.add_argument("--x", default="psnr", help="distortion axis (default: %(default)s)")
    p.add_argument("--title", help="plot title")
    p.add_argument("--out", default="results/pd_plot", help="output path without extension (default: %(default)s)")
    return p


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=EXPORT_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True, help="generator checkpoint (.pth): net_g_*.pth, official SFD, NAFNet")
    p.add_argument("-o", "--output", help="output folder (default: the checkpoint's folder)")
    p.add_argument("--name", help="output file stem (default: the checkpoint's file stem)")
    p.add_argument("--opt", help="training YAML whose network_g describes the generator")
    p.add_argument("--arch", help="registered architecture name, e.g. SwinIR, SFDRRDBNetOfficialX2, CSUDNAFNet")
    p.add_argument("--arch-opt", nargs="*", default=[], metavar="KEY=VALUE", help="architecture arguments")
    p.add_argument("--param-key", help="checkpoint key (params / params_ema); default: params_ema if present")
    p.add_argument(
        "--format",
        nargs="+",
        default=["safetensors", "onnx"],
        choices=["safetensors", "onnx"],
        help="files to write (default: both)",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: %(default)s)")
    p.add_argument("--fp16", action="store_true", help="also write <name>_fp16.onnx (float16 weights and I/O)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-torch comparison")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p
