"""Derain images with a trained CSUD derainer (or an official NAFNet/CSUD checkpoint) and score them.

- Checkpoints: BasicSR ``net_g_*.pth`` (``params_ema`` preferred, then ``params``) or a bare state
  dict; a ``module.`` prefix is dropped. The NAFNet width and block counts are read from the keys
  unless a network is given (``network_g`` of a recipe, or a dict).
- Tiling: images larger than ``tile`` pixels on a side are processed in overlapping tiles whose
  results are averaged (NAFNet's channel attention pools over the whole input, so tiled output
  differs slightly from whole-image output; ``tile=0`` always uses the whole image).
- Metrics: PSNR/SSIM on RGB and on Y (BasicSR's ``calculate_psnr/ssim``, uint8, no border crop)
  against a GT folder matched by file stem, for the derained output and for the rainy input.
- Unreadable inputs or GT files are reported by name, skipped and counted; the run goes on.
"""

from __future__ import annotations

import argparse
import csv
import os
import os.path as osp
import sys
import time

import numpy as np
import torch
from torch import nn

from sfd_data.unpaired_rain_dataset import list_images, read_image

METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")


def _state_dict(checkpoint: dict) -> dict:
    for key in ("params_ema", "params", "state_dict"):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return {(k[7:] if k.startswith("module.") else k): v for k, v in checkpoint.items()}


def load_derainer(weights: str, network: dict | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Derainer in eval mode with ``weights`` loaded strictly.

    ``network``: a BasicSR network dict (``{'type': 'CSUDNAFNet', 'width': 32, ...}``); default: a
    CSUDNAFNet shaped after the checkpoint's keys.
    """
    from basicsr.archs import build_network

    from sfd_arch.nafnet_arch import nafnet_options_from_state_dict

    if not osp.isfile(weights):
        raise FileNotFoundError(f"weights: checkpoint {weights!r} does not exist")
    sd = _state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    if network is None:
        try:
            network = {"type": "CSUDNAFNet", **nafnet_options_from_state_dict(sd)}
        except KeyError as err:
            raise ValueError(f"{weights}: not a NAFNet checkpoint ({err}); give the network (--opt recipe)") from err
    net = build_network(dict(network))
    net.load_state_dict(sd, strict=True)
    return net.to(device).eval()


def _positions(size: int, tile: int, step: int) -> list[int]:
    """Tile origins covering [0, size), the last one aligned to the border."""
    if size <= tile:
        return [0]
    pos = list(range(0, size - tile, step))
    return pos + [size - tile]


@torch.no_grad()
def derain_tensor(net: nn.Module, x: torch.Tensor, tile: int = 0, overlap: int = 32) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> (1, 3, H, W) in [0, 1]; tiles of ``tile`` px when H or W exceeds it."""
    h, w = x.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        return net(x).clamp(0, 1)
    if overlap >= tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile size {tile}")
    out = torch.zeros_like(x)
    weight = torch.zeros_like(x[:, :1])
    step = tile - overlap
    for top in _positions(h, tile, step):
        for left in _positions(w, tile, step):
            patch = x[..., top : top + tile, left : left + tile]
            out[..., top : top + tile, left : left + tile] += net(patch)
            weight[..., top : top + tile, left : left + tile] += 1
    return (out / weight).clamp(0, 1)


def derain_image(net: nn.Module, img_bgr: np.ndarray, tile: int = 0, overlap: int = 32) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> derained (H, W, 3) uint8 BGR."""
    device = next(net.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(img_bgr[..., ::-1])).permute(2, 0, 1)[None].float() / 255.0
    y = derain_tensor(net, x.to(device), tile, overlap)[0].permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(np.round(y * 255.0).astype(np.uint8)[..., ::-1])


def image_metrics(img_bgr: np.ndarray, gt_bgr: np.ndarray) -> dict[str, float]:
    """PSNR/SSIM of two uint8 BGR images on RGB and on Y (BasicSR's definitions, no border crop)."""
    from basicsr.metrics import calculate_psnr, calculate_ssim

    return {
        "psnr_rgb": float(calculate_psnr(img_bgr, gt_bgr, 0)),
        "ssim_rgb": float(calculate_ssim(img_bgr, gt_bgr, 0)),
        "psnr_y": float(calculate_psnr(img_bgr, gt_bgr, 0, test_y_channel=True)),
        "ssim_y": float(calculate_ssim(img_bgr, gt_bgr, 0, test_y_channel=True)),
    }


def _gt_index(gt_dir: str) -> dict[str, str]:
    return {osp.splitext(osp.basename(p))[0]: p for p in list_images(gt_dir, "gt")}


def derain_paths(
    net: nn.Module,
    inputs: list[str],
    out_dir: str | None = None,
    gt_dir: str | None = None,
    csv_path: str | None = None,
    tile: int = 0,
    overlap: int = 32,
    log=print,
) -> dict:
    """Derain ``inputs`` (image paths), write PNGs to ``out_dir``, score against ``gt_dir``.

    Returns ``{'processed', 'scored', 'skipped': [(input, reason)], 'no_gt': [input], 'gt_problems':
    [(gt, reason)], 'rows': [...], 'mean': {...}}``; ``mean`` averages each metric over the scored
    images (``in_*``: the rainy input against GT).
    """
    gts = _gt_index(gt_dir) if gt_dir else {}
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    rows, skipped, no_gt, gt_problems = [], [], [], []
    for path in inputs:
        stem = osp.splitext(osp.basename(path))[0]
        try:
            img = read_image(path)
        except OSError as err:
            skipped.append((path, str(err)))
            log(f"skipped (unreadable input): {path}: {err}")
            continue
        t0 = time.perf_counter()
        out = derain_image(net, img, tile, overlap)
        row = {"name": osp.basename(path), "height": img.shape[0], "width": img.shape[1]}
        row["seconds"] = round(time.perf_counter() - t0, 4)
        if out_dir:
            import cv2

            cv2.imwrite(osp.join(out_dir, f"{stem}.png"), out)
        if gt_dir:
            gt_path = gts.get(stem)
            gt = None
            if gt_path is None:
                no_gt.append(path)
            else:
                try:
                    gt = read_image(gt_path)
                except OSError as err:
                    gt_problems.append((gt_path, str(err)))
                    log(f"no metrics (unreadable GT): {gt_path}: {err}")
                if gt is not None and gt.shape != img.shape:
                    gt_problems.append((gt_path, f"GT size {gt.shape[:2]} != input size {img.shape[:2]}"))
                    log(f"no metrics (GT size differs): {gt_path}")
                    gt = None
            if gt is not None:
                row.update(image_metrics(out, gt))
                row.update({f"in_{k}": v for k, v in image_metrics(img, gt).items()})
        rows.append(row)
    scored = [r for r in rows if "psnr_rgb" in r]
    keys = [*METRICS, *(f"in_{m}" for m in METRICS)]
    mean = {k: float(np.mean([r[k] for r in scored])) for k in keys} if scored else {}
    if csv_path:
        _write_csv(csv_path, rows, mean)
    return {
        "processed": len(rows),
        "scored": len(scored),
        "skipped": skipped,
        "no_gt": no_gt,
        "gt_problems": gt_problems,
        "rows": rows,
        "mean": mean,
    }


def _write_csv(path: str, rows: list[dict], mean: dict) -> None:
    fields = ["name", "height", "width", "seconds", *METRICS, *(f"in_{m}" for m in METRICS)]
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
        if mean:
            writer.writerow({"name": "MEAN", **{k: f"{v:.4f}" for k, v in mean.items()}})


def collect_inputs(path: str) -> list[str]:
    """One image file, or every image directly under a folder (sorted)."""
    if osp.isdir(path):
        return list_images(path, "input")
    if osp.isfile(path):
        return [path]
    raise FileNotFoundError(f"input: {path!r} does not exist")


def network_from_recipe(recipe: str) -> dict:
    """``network_g`` of a BasicSR recipe (YAML)."""
    import yaml

    with open(recipe) as f:
        opt = yaml.safe_load(f)
    if not opt.get("network_g"):
        raise KeyError(f"{recipe}: no network_g")
    return opt["network_g"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", "--input", required=True, help="an image or a folder of images")
    parser.add_argument("-w", "--weights", required=True, help="derainer checkpoint (net_g_*.pth or official NAFNet)")
    parser.add_argument("-o", "--output", default=None, help="folder for the derained PNGs (default: none written)")
    parser.add_argument("--gt", default=None, help="folder of clean images (same file stems) to score against")
    parser.add_argument("--csv", default=None, help="per-image CSV report (default: <output>/metrics.csv with --gt)")
    parser.add_argument("--opt", default=None, help="recipe whose network_g to build (default: read from the keys)")
    parser.add_argument("--tile", type=int, default=1024, help="tile side for larger images; 0 = whole image")
    parser.add_argument(
        "--overlap", type=int, default=None, help="tile overlap in pixels (default: 32, at most a quarter tile)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    if args.overlap is None:
        args.overlap = min(32, max(args.tile // 4, 0))
    net = load_derainer(args.weights, network_from_recipe(args.opt) if args.opt else None, args.device)
    inputs = collect_inputs(args.input)
    csv_path = args.csv or (osp.join(args.output, "metrics.csv") if args.output and args.gt else None)
    res = derain_paths(net, inputs, args.output, args.gt, csv_path, args.tile, args.overlap)
    print(f"derained {res['processed']} of {len(inputs)} image(s); skipped {len(res['skipped'])} unreadable file(s)")
    for path, reason in res["skipped"]:
        print(f"  skipped: {path}: {reason}")
    if args.gt:
        print(f"scored {res['scored']} against {args.gt}; {len(res['no_gt'])} without GT")
        for path, reason in res["gt_problems"]:
            print(f"  not scored: {path}: {reason}")
    if res["mean"]:
        m = res["mean"]
        print(
            f"rainy input : PSNR {m['in_psnr_rgb']:.2f} dB / SSIM {m['in_ssim_rgb']:.4f} (RGB), "
            f"{m['in_psnr_y']:.2f} dB / {m['in_ssim_y']:.4f} (Y)"
        )
        print(
            f"derained    : PSNR {m['psnr_rgb']:.2f} dB / SSIM {m['ssim_rgb']:.4f} (RGB), "
            f"{m['psnr_y']:.2f} dB / {m['ssim_y']:.4f} (Y)"
        )
        gain_rgb, gain_y = m["psnr_rgb"] - m["in_psnr_rgb"], m["psnr_y"] - m["in_psnr_y"]
        print(f"gain        : {gain_rgb:+.2f} dB (RGB), {gain_y:+.2f} dB (Y)")
    if csv_path:
        print(f"CSV: {csv_path}")
    return 0 if res["processed"] else 1


if __name__ == "__main__":
    sys.exit(main())
