"""Derain images with a trained CSUD derainer (or an official NAFNet/CSUD checkpoint) and score them.

- Checkpoints: BasicSR ``net_g_*.pth`` (``params_ema`` preferred, then ``params``) or a bare state
  dict; a ``module.`` prefix is dropped. The NAFNet width and block counts are read from the keys
  unless a network is given (``network_g`` of a recipe, or a dict).
- Tiling: images larger than ``tile`` pixels on a side are processed in overlapping tiles whose
  results are averaged (NAFNet's channel attention pools over the whole input, so tiled output
  differs slightly from whole-image output; ``tile=0`` always uses the whole image).
- Metrics: PSNR/SSIM on RGB and on Y (BasicSR's ``calculate_psnr/ssim``, uint8, no border crop)
  against a GT folder matched by file stem, for the derained output and for the rainy input.
- Images: 8- or 16-bit, gray, RGB or RGBA; the output PNG keeps the input's bit depth and channel
  layout (the alpha channel is copied unchanged). Metrics are computed on 8-bit RGB.
- Outputs are ``<out_dir>/<stem>.png``; a run that would write into the input or GT folder, or
  write two inputs to the same file (``a.jpg`` and ``a.png``), is refused before any work.
- Unreadable inputs or GT files are reported by name, skipped and counted; the run goes on.
"""

from __future__ import annotations

import csv
import os.path as osp
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from sfd_data.unpaired_rain_dataset import IMG_EXTENSIONS, list_images
from sfd_utils.files import display, output_dir, output_file, output_path
from sfd_utils.images import UnreadableImage, write_image
from sfd_utils.images import read_image as read_any_image

METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")


def _examples(keys: list[str], n: int = 2) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def _mismatch_message(weights: str, net_type: str, problems: dict) -> str:
    parts = []
    if problems["missing"]:
        parts.append(f"{len(problems['missing'])} missing keys (e.g. {_examples(problems['missing'])})")
    if problems["unexpected"]:
        parts.append(f"{len(problems['unexpected'])} unexpected keys (e.g. {_examples(problems['unexpected'])})")
    if problems["shape"]:
        parts.append(f"{len(problems['shape'])} shape mismatches (e.g. {problems['shape'][0]})")
    hint = "the derainer is saved as net_g_*.pth (net_t_* is the rain generator, net_d_* the discriminator)"
    return f"{weights} does not match the derainer architecture {net_type}: {'; '.join(parts)}; {hint}"


def load_derainer(weights: str, network: dict | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Derainer in eval mode with ``weights`` loaded strictly.

    ``weights``: our training's ``net_g_*.pth``, a raw state dict, or a ``.safetensors`` file
    (``scripts/export.py``'s, or a plain state dict); read without unpickling code.
    ``network``: a BasicSR network dict (``{'type': 'CSUDNAFNet', 'width': 32, ...}``); default: the
    network recorded by ``scripts/export.py``, else a CSUDNAFNet shaped after the checkpoint's keys.
    """
    from basicsr.archs import build_network

    from sfd_arch.nafnet_arch import nafnet_options_from_state_dict
    from sfd_tools.sr.generator_files import exported_network_options
    from sfd_utils.checkpoint import (
        EXTRA_VALUES,
        CheckpointError,
        build_bounded,
        compare_keys,
        extract_state_dict,
        read_checkpoint,
    )

    if not osp.isfile(weights):
        raise FileNotFoundError(f"weights: checkpoint {weights!r} does not exist")
    try:  # read_checkpoint names the file when it is not a (weights-only) torch checkpoint
        sd, _ = extract_state_dict(read_checkpoint(weights))
    except CheckpointError as err:
        raise CheckpointError(str(err) if weights in str(err) else f"{weights}: {err}") from None
    if network is None:
        network = exported_network_options(weights)  # an export.py file names its network
    if network is None:
        try:
            network = {"type": "CSUDNAFNet", **nafnet_options_from_state_dict(sd)}
        except KeyError as err:
            hint = "; net_g_*.pth is the derainer" if osp.basename(weights).startswith(("net_t_", "net_d_")) else ""
            why = str(err.args[0]).split(": ", 1)[-1]
            raise ValueError(
                f"{weights}: not a NAFNet checkpoint ({why}); give the network (--opt recipe){hint}"
            ) from None
    if not isinstance(network, dict):
        raise ValueError(f"{weights}: the network options are not a table ({type(network).__name__})")
    limit = EXTRA_VALUES + sum(v.numel() for v in sd.values() if isinstance(v, torch.Tensor))
    try:  # refused before it is built when the options name a network bigger than the file
        net = build_bounded(lambda: build_network(dict(network)), limit, f"{weights}: network {network.get('type')}")
    except TypeError as err:
        raise ValueError(f"{weights}: cannot build the network {network.get('type')!r}: {err}") from None
    problems = compare_keys(sd, net)
    if any(problems.values()):
        raise CheckpointError(_mismatch_message(weights, type(net).__name__, problems))
    net.load_state_dict(sd, strict=True)
    return net.to(device).eval()


def _positions(size: int, tile: int, step: int) -> list[int]:
    """Tile origins covering [0, size), the last one aligned to the border."""
    if size <= tile:
        return [0]
    pos = list(range(0, size - tile, step))
    return pos + [size - tile]


@torch.no_grad()
def _derain_bands(
    net: nn.Module,
    read: Callable[[int, int, int, int], torch.Tensor],
    h: int,
    w: int,
    tile: int,
    overlap: int,
    bar=None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Tiled deraining one band of rows at a time: yields (top, bottom, (1, 3, bottom - top, w) in [0, 1]).

    ``read(top, bottom, left, right)`` gives the (1, 3, h', w') input patch on the net's device. Tile
    outputs are summed (row-major order) into a float band ``tile`` rows high and averaged where
    they overlap; rows no later tile reaches are finished and handed out, so a big image never
    exists as a whole float canvas. The values equal a full-size canvas sum (same order of additions).
    """
    step = tile - overlap
    tops, lefts = _positions(h, tile, step), _positions(w, tile, step)
    acc = weight = None  # running sums of the outputs and of the tile counts, rows [base, base + len)
    base = 0
    for i, top in enumerate(tops):
        bottom = min(top + tile, h)
        for left in lefts:
            right = min(left + tile, w)
            patch = read(top, bottom, left, right)
            if acc is None:
                acc = torch.zeros(1, 3, 0, w, device=patch.device)
                weight = torch.zeros(1, 1, 0, w, device=patch.device)
            grow = bottom - base - acc.shape[2]
            if grow > 0:
                acc = torch.cat([acc, acc.new_zeros(1, 3, grow, w)], dim=2)
                weight = torch.cat([weight, weight.new_zeros(1, 1, grow, w)], dim=2)
            acc[..., top - base : bottom - base, left:right] += net(patch)
            weight[..., top - base : bottom - base, left:right] += 1
            if bar is not None:
                bar.update()
        done = tops[i + 1] if i + 1 < len(tops) else h
        yield base, done, (acc[..., : done - base, :] / weight[..., : done - base, :]).clamp(0, 1)
        acc, weight = acc[..., done - base :, :], weight[..., done - base :, :]
        base = done


def _tiled(h: int, w: int, tile: int, overlap: int) -> bool:
    """True when an h x w image is derained in tiles (ValueError for an overlap that leaves no step)."""
    if tile <= 0 or (h <= tile and w <= tile):
        return False
    if overlap >= tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile size {tile}")
    return True


@torch.no_grad()
def derain_tensor(net: nn.Module, x: torch.Tensor, tile: int = 0, overlap: int = 32) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> (1, 3, H, W) in [0, 1]; tiles of ``tile`` px when H or W exceeds it."""
    h, w = x.shape[-2:]
    if not _tiled(h, w, tile, overlap):
        return net(x).clamp(0, 1)
    bands = _derain_bands(net, lambda top, bottom, left, right: x[..., top:bottom, left:right], h, w, tile, overlap)
    return torch.cat([band for _, _, band in bands], dim=2)


def read_image(path: str, max_pixels: int | None = None) -> np.ndarray:
    """An image as stored (``cv2.IMREAD_UNCHANGED``: gray, BGR or BGRA; 8 or 16 bits), read by
    :func:`sfd_utils.images.read_image` (sized from its header first, at most ``max_pixels``).

    UnreadableImage (a ValueError) with the reason when it cannot be read or is neither 8- nor 16-bit.
    """
    img = read_any_image(path, max_pixels=max_pixels)
    if img.dtype not in (np.uint8, np.uint16) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise UnreadableImage(f"unsupported image: {img.dtype} with shape {img.shape} (8/16-bit gray, RGB, RGBA)")
    return img


def to_bgr8(img: np.ndarray) -> np.ndarray:
    """Gray / BGR / BGRA, 8 or 16 bits -> (H, W, 3) uint8 BGR (alpha dropped), for metrics."""
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float32) / 257.0).astype(np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def derain_image(
    net: nn.Module, img: np.ndarray, tile: int = 0, overlap: int = 32, progress: bool | None = False
) -> np.ndarray:
    """Derain an image as :func:`read_image` returns it; the output has its dtype and channel layout.

    (H, W, 3) uint8 BGR -> (H, W, 3) uint8 BGR; 16-bit stays 16-bit, gray stays gray (the network runs
    on the gray image replicated to RGB), and an alpha channel is copied unchanged. Tiled, each band
    of finished rows is rounded straight into the preallocated output (see :func:`_derain_bands`):
    memory holds the input, the output and one float band. ``progress``: a per-tile bar (tqdm; None =
    only on a terminal) when there is more than one tile.
    """
    from tqdm import tqdm

    from sfd_tools.sr.inference import quantise_into

    max_value = 65535.0 if img.dtype == np.uint16 else 255.0
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    gray = img.ndim == 2
    bgr = np.repeat(img[..., None], 3, axis=2) if gray else img[..., :3]
    device = next(net.parameters()).device
    out = np.empty_like(img)
    if not gray and img.shape[2] == 4:
        out[..., 3] = img[..., 3]

    def read(top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        rgb = np.ascontiguousarray(bgr[top:bottom, left:right, ::-1])
        return (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / max_value).to(device)

    def write(top: int, bottom: int, band: torch.Tensor) -> None:
        y = band[0].permute(1, 2, 0).cpu().numpy()
        y = y.mean(axis=2) if gray else y[..., ::-1]  # gray: equal weights, the gray image went in thrice
        quantise_into(out[top:bottom] if gray else out[top:bottom, :, :3], y, max_value)

    h, w = img.shape[:2]
    if not _tiled(h, w, tile, overlap):
        with torch.no_grad():
            write(0, h, net(read(0, h, 0, w)).clamp_(0, 1))
        return out
    step = tile - overlap
    total = len(_positions(h, tile, step)) * len(_positions(w, tile, step))
    disable = True if total < 2 else (None if progress is None else not progress)
    with tqdm(total=total, unit="tile", leave=False, disable=disable) as bar:
        for top, bottom, band in _derain_bands(net, read, h, w, tile, overlap, bar):
            write(top, bottom, band)
    return out


def image_metrics(img_bgr: np.ndarray, gt_bgr: np.ndarray) -> dict[str, float]:
    """PSNR/SSIM of two uint8 BGR images on RGB and on Y (BasicSR's definitions, no border crop)."""
    from basicsr.metrics import calculate_psnr, calculate_ssim

    return {
        "psnr_rgb": float(calculate_psnr(img_bgr, gt_bgr, 0)),
        "ssim_rgb": float(calculate_ssim(img_bgr, gt_bgr, 0)),
        "psnr_y": float(calculate_psnr(img_bgr, gt_bgr, 0, test_y_channel=True)),
        "ssim_y": float(calculate_ssim(img_bgr, gt_bgr, 0, test_y_channel=True)),
    }


def _folder_images(folder: str, key: str) -> list[str]:
    """The images directly under ``folder``; ValueError naming it (and the option ``key``) when there is none."""
    paths = list_images(folder, key)
    if not paths:
        raise ValueError(f"{key}: folder {folder} holds no images ({', '.join(IMG_EXTENSIONS)})")
    return paths


def _gt_index(gt_dir: str) -> dict[str, str]:
    return {osp.splitext(osp.basename(p))[0]: p for p in _folder_images(gt_dir, "--gt")}


def _same_path(a: str, b: str) -> bool:
    """True when two spellings name the same file or folder (symlinks, ``..``, case on macOS/Windows)."""
    if osp.exists(a) and osp.exists(b):
        return osp.samefile(a, b)
    return osp.normcase(osp.realpath(a)) == osp.normcase(osp.realpath(b))


def check_output_dir(out_dir: str, inputs: list[str], input_path: str | None = None, gt_dir: str | None = None) -> None:
    """ValueError when ``out_dir`` is the folder of the input (``input_path`` or an input image's) or the
    GT folder: the derained PNGs would overwrite or mix with the rainy inputs / the clean references."""
    folders = {osp.dirname(osp.abspath(p)) for p in inputs}
    if input_path and osp.isdir(input_path):
        folders.add(input_path)
    for folder in sorted(folders):
        if _same_path(out_dir, folder):
            raise ValueError(
                f"output would overwrite the input: -o {out_dir} is the input folder {folder}; "
                "choose another output folder"
            )
    if gt_dir and _same_path(out_dir, gt_dir):
        raise ValueError(
            f"output would overwrite the GT: -o {out_dir} is the --gt folder {gt_dir}; choose another output folder"
        )


def output_paths(inputs: list[str], out_dir: str) -> dict[str, str]:
    """Input -> ``<out_dir>/<stem>.png``. ValueError naming the files when two inputs share an output
    (same stem, e.g. ``a.jpg`` and ``a.png``) or an output is an input file itself."""
    targets = {p: osp.join(out_dir, f"{osp.splitext(osp.basename(p))[0]}.png") for p in inputs}
    by_target: dict[str, list[str]] = {}
    for path, target in targets.items():
        by_target.setdefault(osp.normcase(osp.realpath(target)), []).append(path)
    clashes = [paths for paths in by_target.values() if len(paths) > 1]
    if clashes:
        shown = "; ".join(
            f"{' and '.join(osp.basename(p) for p in paths)} -> {osp.basename(targets[paths[0]])}"
            for paths in clashes[:5]
        )
        more = f" (+{len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise ValueError(
            f"{len(clashes)} output name clash(es): {shown}{more}; each would overwrite the other "
            "(outputs are <stem>.png): rename the inputs or derain them separately"
        )
    for path, target in targets.items():
        if _same_path(path, target):
            raise ValueError(f"output would overwrite the input {path}; choose another output folder")
    return targets


def derain_paths(
    net: nn.Module,
    inputs: list[str],
    out_dir: str | None = None,
    gt_dir: str | None = None,
    csv_path: str | None = None,
    tile: int = 0,
    overlap: int = 32,
    log=print,
    progress: bool | None = None,
    max_pixels: int | None = None,
) -> dict:
    """Derain ``inputs`` (image paths), write PNGs to ``out_dir``, score against ``gt_dir``.

    Returns ``{'processed', 'scored', 'skipped': [(input, reason)], 'no_gt': [input], 'gt_problems':
    [(gt, reason)], 'rows': [...], 'mean': {...}}``; ``mean`` averages each metric over the scored
    images (``in_*``: the rainy input against GT). ``progress``: per-tile bars for images of several
    tiles (None = only on a terminal). Images are read at most ``max_pixels`` large (from the header)
    and written only inside ``out_dir``.
    """
    if tile < 0 or overlap < 0:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be >= 0")
    if out_dir:
        check_output_dir(out_dir, inputs, gt_dir=gt_dir)
    targets = output_paths(inputs, out_dir) if out_dir else {}
    gts = _gt_index(gt_dir) if gt_dir else {}
    if out_dir:
        output_dir(out_dir, "-o/--output")
    rows, skipped, no_gt, gt_problems = [], [], [], []
    for path in inputs:
        stem = osp.splitext(osp.basename(path))[0]
        try:
            img = read_image(path, max_pixels)
        except UnreadableImage as err:
            skipped.append((path, str(err)))
            log(f"skipped (unreadable input): {display(path)}: {err}")
            continue
        t0 = time.perf_counter()
        out = derain_image(net, img, tile, overlap, progress)
        row = {"name": osp.basename(path), "height": img.shape[0], "width": img.shape[1]}
        row["seconds"] = round(time.perf_counter() - t0, 4)
        if out_dir:
            try:
                write_image(output_file(out_dir, osp.basename(targets[path]), "-o/--output"), out)
            except (OSError, ValueError) as err:
                skipped.append((path, f"cannot write {display(targets[path])}: {err}"))
                log(f"skipped (cannot write the output): {display(targets[path])}: {err}")
                continue
        if gt_dir:
            gt_path = gts.get(stem)
            gt = None
            if gt_path is None:
                no_gt.append(path)
            else:
                try:
                    gt = to_bgr8(read_image(gt_path, max_pixels))
                except UnreadableImage as err:
                    gt_problems.append((gt_path, str(err)))
                    log(f"no metrics (unreadable GT): {display(gt_path)}: {err}")
                if gt is not None and gt.shape[:2] != img.shape[:2]:
                    gt_problems.append((gt_path, f"GT size {gt.shape[:2]} != input size {img.shape[:2]}"))
                    log(f"no metrics (GT size differs): {display(gt_path)}")
                    gt = None
            if gt is not None:
                row.update(image_metrics(to_bgr8(out), gt))
                row.update({f"in_{k}": v for k, v in image_metrics(to_bgr8(img), gt).items()})
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
    with open(output_path(path, "--csv"), "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
        if mean:
            writer.writerow({"name": "MEAN", **{k: f"{v:.4f}" for k, v in mean.items()}})


def collect_inputs(path: str) -> list[str]:
    """One image file, or every image directly under a folder (sorted; ValueError when it has none)."""
    if osp.isdir(path):
        return _folder_images(path, "--input")
    if osp.isfile(path):
        return [path]
    raise FileNotFoundError(f"input: {path!r} does not exist")


def network_from_recipe(recipe: str) -> dict:
    """``network_g`` of a BasicSR recipe (YAML, read as data: sfd_utils.recipe)."""
    from sfd_utils.recipe import network_section

    return network_section(recipe)


def run_derain(args) -> int:
    """``scripts/derain.py``: the namespace of :func:`sfd_tools.csud.cli.derain_parser`. Exit status
    (sfd_utils.cli): 1 when an input was skipped or (with --gt) not scored, 2 when none was derained."""
    from sfd_utils.cli import skipped_status

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    # Cheap checks first: nothing is loaded or written when the output plan is wrong.
    inputs = collect_inputs(args.input)
    if args.output:
        check_output_dir(args.output, inputs, args.input, args.gt)
        output_paths(inputs, args.output)
        output_dir(args.output, "-o/--output")
    csv_path = args.csv or (osp.join(args.output, "metrics.csv") if args.output and args.gt else None)
    if csv_path:
        output_path(csv_path, "--csv")
    net = load_derainer(args.weights, network_from_recipe(args.opt) if args.opt else None, args.device)
    res = derain_paths(net, inputs, args.output, args.gt, csv_path, args.tile, args.overlap, max_pixels=args.max_pixels)
    print(f"derained {res['processed']} of {len(inputs)} image(s); skipped {len(res['skipped'])} unreadable file(s)")
    for path, reason in res["skipped"]:
        print(f"  skipped: {display(path)}: {reason}")
    if args.gt:
        print(f"scored {res['scored']} against {args.gt}; {len(res['no_gt'])} without GT")
        for path in res["no_gt"]:
            print(f"  not scored (no GT of that name): {display(path)}")
        for path, reason in res["gt_problems"]:
            print(f"  not scored: {display(path)}: {reason}")
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
    if not res["processed"]:
        raise ValueError(f"none of the {len(inputs)} input image(s) could be derained (each is named above)")
    return skipped_status(len(res["skipped"]) + len(res["gt_problems"]) + (len(res["no_gt"]) if args.gt else 0))


def main(argv: list[str] | None = None) -> int:
    """The script's behaviour in-process: parse ``argv``, run, known failures as one ``error:`` line (exit 2)."""
    from sfd_tools.csud.cli import derain_parser
    from sfd_utils.cli import run_cli

    return run_cli(lambda _argv: run_derain(derain_parser().parse_args(argv)))
