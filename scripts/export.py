"""Export a trained generator to <name>.safetensors (plain state dict + metadata) and <name>.onnx.

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
Exit status: 0 on success, 2 for a missing file, unknown architecture, a checkpoint that is not a
generator or does not fit, or an output file that exists (one `error:` line).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)  # before torch is imported: --help and usage errors stay fast
    from sfd_utils.compat import install

    install()
    from sfd_tools.export import export_checkpoint
    from sfd_utils.sr_inference import parse_arch_opts

    report = export_checkpoint(
        a.model,
        a.output or os.path.dirname(os.path.abspath(a.model)),
        name=a.name,
        arch=a.arch,
        arch_opt=parse_arch_opts(a.arch_opt),
        opt_file=a.opt,
        param_key=a.param_key,
        formats=a.format,
        opset=a.opset,
        fp16=a.fp16,
        check=not a.no_check,
        overwrite=a.overwrite,
    )
    meta = report["metadata"]
    print(
        f"{meta['architecture']} x{meta['scale']} from {meta['source_checkpoint']} "
        f"(param key {meta['param_key'] or 'none: raw state dict'})"
    )
    for path in report["files"]:
        err = report["onnx_max_error"].get(path)
        print(f"wrote {path}" + (f"  (onnxruntime CPU vs torch: max abs error {err:.2e})" if err is not None else ""))
    if meta["spandrel_architecture"]:
        print(f"spandrel loads it as {meta['spandrel_architecture']}")
    for why in report["spandrel_limits"]:
        print(f"note: spandrel cannot load it: {why}")
    return 0


if __name__ == "__main__":
    from sfd_utils.cli import run_cli

    sys.exit(run_cli(main))
