"""Upscale an image or a folder with any registered generator and a checkpoint.

Examples:
  # our training output (network read from the recipe)
  python scripts/inference_sr.py -i datasets/demo_sr/val/lr_x4 -o results/demo_SFD_cpu \\
      --model experiments/demo_SFD_cpu/models/net_g_latest.pth --opt options/demo_SFD_cpu.yml
  # official SFD x4 / x2 RRDBNet release (architecture read from the checkpoint)
  python scripts/inference_sr.py -i inputs -o results/sfd_x4 --model SFD_RRDB_x4.pth
  # a bicubic baseline (parameter-free network, no checkpoint)
  python scripts/inference_sr.py -i inputs -o results/bicubic --arch SFDBicubicUpsampler --arch-opt scale=4
  # any architecture
  python scripts/inference_sr.py -i inputs -o out --model net.pth --arch SwinIR \\
      --arch-opt upscale=4 window_size=8 img_size=64 embed_dim=180 --tile 256
Exit status: 0 when every image was written, 1 when some were skipped (listed at the end), 2 when
the run could not start (missing file, unknown architecture, checkpoint that does not fit).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
from sfd_tools.sr_inference import list_images, load_upscaler, parse_arch_opts, upscale_paths  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-i", "--input", required=True, help="image file or folder")
    p.add_argument("-o", "--output", default="results/inference", help="output folder (default: %(default)s)")
    p.add_argument("--model", help="generator checkpoint (.pth): ours, Real-ESRGAN, official SFD (none for bicubic)")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)

    upscaler = load_upscaler(
        a.model,
        arch=a.arch,
        arch_opt=parse_arch_opts(a.arch_opt),
        opt_file=a.opt,
        param_key=a.param_key,
        scale=a.scale,
        tile=a.tile,
        tile_pad=a.tile_pad,
        device=a.device,
        precision=a.precision,
        alpha_upsampler=a.alpha_upsampler,
        outscale=a.outscale,
    )
    paths = list_images(a.input)
    print(f"{len(paths)} image(s), x{upscaler.scale}, {upscaler.device} {upscaler.precision}, tile {a.tile}")
    summary = upscale_paths(paths, a.output, upscaler, a.suffix, a.ext, progress=not a.quiet)
    for note in summary.notes:
        print(f"note: {note}")
    print(f"wrote {len(summary.written)} image(s) to {a.output}; skipped {len(summary.failed)}")
    for path, reason in summary.failed:
        print(f"  skipped {path}: {reason}")
    return 0 if summary.ok else 1


def run(argv=None) -> int:
    """main() with known failures (missing file, bad option, unfit checkpoint) as one line, exit 2."""
    from sfd_utils.cli import run_cli

    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(run())
