"""Upscale images with any registered generator: tiling, half precision, gray/RGBA/16-bit, folders.

Conventions follow Real-ESRGAN's ``RealESRGANer`` (tile + tile_pad, alpha upscaled separately,
output keeps the input's mode and bit depth, ``<name>_<suffix>.<ext>``), with two differences:
16-bit input is recognised by its dtype (Real-ESRGAN guesses from ``max > 256``, which turns a dark
16-bit image into an 8-bit one), and a file that cannot be read or processed is reported and
skipped instead of ending the run.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sfd_tools.sr.generator_files import ExportMetadataError, exported_network_options
from sfd_utils.checkpoint import (
    EXTRA_VALUES,
    CheckpointError,
    build_bounded,
    extract_state_dict,
    infer_rrdb_options,
    load_generator_weights,
    read_checkpoint,
    stored_values,
)
from sfd_utils.files import display, output_file, plain_name
from sfd_utils.files import output_dir as make_output_dir
from sfd_utils.images import read_image, write_image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Formats that hold neither an alpha channel nor 16 bits with OpenCV: such outputs are written as PNG.
EIGHT_BIT_ONLY = ("jpg", "jpeg", "bmp", "webp")


# -- building the network --------------------------------------------------------------------------------
def parse_arch_opts(items: Sequence[str] | None) -> dict:
    """``["num_block=23", "scale=4", "upsampler=pixelshuffle"]`` -> dict with YAML-typed values (read as
    data: a python tag is refused in one line, as in recipes)."""
    from sfd_utils.recipe import parse_value

    opts = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"--arch-opt expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        opts[key.strip()] = parse_value(value, f"--arch-opt {key.strip()}")
    return opts


def network_options(
    arch: str | None = None, arch_opt: dict | None = None, opt_file: str | None = None, checkpoint: str | None = None
) -> dict:
    """The generator's ``{'type': ..., **kwargs}``, from (in this order of precedence):
    ``arch`` + ``arch_opt``; ``network_g`` of a BasicSR/our training YAML (``opt_file``, with
    ``arch_opt`` overriding single keys); or the checkpoint itself: the metadata of a
    ``scripts/export.py`` safetensors file, or the keys of an RRDBNet (CheckpointError otherwise).
    """
    if arch:
        return {"type": arch, **(arch_opt or {})}
    if opt_file:
        from sfd_utils.recipe import network_section

        return {**network_section(opt_file), **(arch_opt or {})}  # read as data (sfd_utils.recipe)
    if checkpoint:
        exported = exported_network_options(checkpoint)
        if exported is not None:
            return {**exported, **(arch_opt or {})}
        state_dict, _ = extract_state_dict(read_checkpoint(checkpoint))
        return {**infer_rrdb_options(state_dict), **(arch_opt or {})}
    raise ValueError("give --arch (with --arch-opt), --opt <training yml>, or an RRDBNet checkpoint")


def arch_class(name: str) -> type:
    """The class registered in BasicSR's ARCH_REGISTRY under ``name`` (ours and basicsr's)."""
    from basicsr.utils.registry import ARCH_REGISTRY

    import sfd_arch  # noqa: F401  (registers our architectures together with basicsr's)

    try:
        return ARCH_REGISTRY.get(name)
    except KeyError:
        ours = sorted(k for k in ARCH_REGISTRY._obj_map if k.startswith(("SFD", "CSUD")))
        raise KeyError(f"unknown architecture {name!r}; sfd-basicsr registers {ours} besides basicsr's") from None


def build_generator(
    net_opt: dict, checkpoint: str | None = None, param_key: str | None = None, max_values: int | None = None
) -> torch.nn.Module:
    """Instantiate ``net_opt['type']`` with the other keys as arguments and load the weights.

    The network may hold at most ``max_values`` parameter and buffer elements (default: what the
    checkpoint stores plus room for buffers; none for a network without a checkpoint): options naming
    a bigger one are refused before it is built (sfd_utils.checkpoint.build_bounded). Returns the
    network in eval mode on CPU. Raises KeyError for an unknown type, CheckpointError / ValueError
    for options that do not build or do not fit.
    """
    opts = dict(net_opt)
    name = opts.pop("type", None)
    if not isinstance(name, str):
        raise ValueError(f"the network options name no architecture (type: {name!r})")
    if max_values is None:
        max_values = EXTRA_VALUES + (stored_values(checkpoint) if checkpoint else 0)
    cls = arch_class(name)
    try:
        what = f"{checkpoint + ': ' if checkpoint else ''}{name} with {str(opts)[:200]}"
        net = build_bounded(lambda: cls(**opts), max_values, what)
    except TypeError as err:  # missing/unknown constructor arguments
        raise ValueError(f"cannot build {name} with {opts}: {err} (set them with --arch-opt KEY=VALUE)") from err
    if checkpoint:
        load_generator_weights(net, checkpoint, param_key)
    return net.eval()


def network_scale(net_opt: dict, default: int = 4) -> int:
    """The upscaling factor named in the options (``scale`` or SwinIR's ``upscale``)."""
    return int(net_opt.get("scale", net_opt.get("upscale", default)))


def input_multiple(net_opt: dict) -> int:
    """Side lengths the network needs its input divisible by (pixel-unshuffle, SwinIR windows)."""
    name = net_opt.get("type", "")
    if name in ("RRDBNet", "SFDRRDBNet") and network_scale(net_opt) in (1, 2):
        return 4 if network_scale(net_opt) == 1 else 2
    if "window_size" in net_opt:
        return int(net_opt["window_size"])
    return 1


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` = CUDA when available, else CPU; a CUDA request without CUDA falls back to CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"{device} requested but CUDA is not available: running on CPU", stacklevel=2)
        return torch.device("cpu")
    return dev


# -- the upscaler ----------------------------------------------------------------------------------------
@dataclass
class Upscaler:
    """Runs a generator on numpy images, whole or in overlapping tiles.

    Args:
        net: generator mapping (1, C, h, w) in [0, 1] to (1, C', h*scale, w*scale).
        scale: the network's upscaling factor (checked against its output).
        tile: LR tile side in pixels; 0 = whole image at once.
        tile_pad: LR context added on each side of a tile and cut from its output (the overlap).
        multiple: pad inputs (reflect) to a multiple of this (pixel-unshuffle / window size).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        precision: ``fp32``, ``fp16`` or ``bf16``; fp16 on CPU falls back to fp32.
        in_channels: channels the network takes (1 = gray networks, 3 = RGB).
        alpha_upsampler: ``model`` (the network on the replicated alpha, like Real-ESRGAN) or ``bilinear``.
        outscale: final output scale if different from ``scale`` (Lanczos resize), as Real-ESRGAN.
    """

    net: torch.nn.Module
    scale: int = 4
    tile: int = 0
    tile_pad: int = 10
    multiple: int = 1
    device: str | torch.device = "auto"
    precision: str = "fp32"
    in_channels: int = 3
    alpha_upsampler: str = "model"
    outscale: float | None = None
    notes: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.alpha_upsampler not in ("model", "bilinear"):
            raise ValueError(f"alpha_upsampler must be 'model' or 'bilinear', got {self.alpha_upsampler!r}")
        if self.tile < 0 or self.tile_pad < 0:
            raise ValueError("tile and tile_pad must be >= 0")
        if self.outscale is not None and not self.outscale > 0:
            raise ValueError(f"outscale must be > 0, got {self.outscale}")
        self.device = pick_device(str(self.device))
        if self.precision == "fp16" and self.device.type == "cpu":
            self.notes.append("fp16 is not supported on CPU: running in fp32")
            self.precision = "fp32"
        self.dtype = PRECISIONS[self.precision]
        self.net = self.net.to(self.device, self.dtype).eval()

    # tensor level ---------------------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """(1, C, h, w) on the device -> (1, C', h*scale, w*scale) float32 on the CPU."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:  # reflect needs the pad smaller than the side; replicate covers tiny inputs
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
        with torch.no_grad():  # not inference_mode: callers may edit the output in place
            out = self.net(x.to(self.device, self.dtype))
        expect = ((h + ph) * self.scale, (w + pw) * self.scale)
        if tuple(out.shape[-2:]) != expect:
            raise ValueError(
                f"the network turned {h + ph}x{w + pw} into {out.shape[-2]}x{out.shape[-1]}, not x{self.scale}: "
                "set --scale (or the network's scale option) to the network's real factor"
            )
        return out[..., : h * self.scale, : w * self.scale].float().cpu()

    def boxes(self, height: int, width: int) -> list[Box]:
        """The pieces an image of ``height`` x ``width`` (LR) is run in: one box when untiled."""
        if self.tile <= 0 or (height <= self.tile and width <= self.tile):
            return [Box(0, height, 0, width, 0, height, 0, width)]
        return tile_boxes(height, width, self.tile, self.tile_pad)

    def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(1, C, H, W) float in [0, 1] -> (1, C', H*scale, W*scale) float32 (unclamped) on the CPU.

        With ``tile > 0`` the image is cut into tile×tile pieces, each run with ``tile_pad`` pixels of
        context on every side (clipped at the border); only each piece's own area is kept, so the
        result equals the untiled one wherever the receptive field fits inside ``tile_pad``.
        The whole result is one float tensor: :meth:`enhance` streams into integers instead.
        """
        _, _, height, width = x.shape
        boxes = self.boxes(height, width)
        if len(boxes) == 1:
            return self._forward(x)
        s, out = self.scale, None
        for b in boxes:
            piece = self._forward(x[:, :, b.ya : b.yb, b.xa : b.xb])
            if out is None:
                out = torch.zeros(1, piece.shape[1], height * s, width * s)
            out[:, :, b.y0 * s : b.y1 * s, b.x0 * s : b.x1 * s] = piece[0, :, b.inner(s)[0], b.inner(s)[1]]
        return out

    def _run_rgb(self, img: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 RGB in [0, 1] -> (sh, sw, 3) float32 RGB in [0, 1] (a writable view)."""
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
        if self.in_channels == 1:
            x = x.mean(dim=1, keepdim=True)  # a gray network gets the gray image (never colour)
        y = self._forward(x).clamp_(0, 1)[0].numpy().transpose(1, 2, 0)
        return np.repeat(y, 3, axis=2) if y.shape[2] == 1 else y

    # image level ----------------------------------------------------------------------------------------
    def enhance(self, img: np.ndarray, progress: bool = False) -> tuple[np.ndarray, str]:
        """Upscale an image as ``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` returns it.

        Each piece (see :meth:`boxes`) is converted to float, run, clamped to [0, 1], rounded and
        written straight into the preallocated integer output, so memory holds the input, the output
        and a few float tiles, never the whole float image (unless untiled).

        Args:
            img: (H, W) gray, (H, W, 1) gray, (H, W, 3) BGR or (H, W, 4) BGRA; uint8 or uint16.
            progress: a per-tile progress bar (tqdm) when the image has more than one tile.

        Returns:
            (output with the same channel layout and dtype, of size (H*outscale, W*outscale),
            mode: ``L``, ``RGB`` or ``RGBA``; with a ``-16`` suffix for 16-bit input).
        """
        from tqdm import tqdm

        if img.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"unsupported image dtype {img.dtype} (8- or 16-bit images only)")
        max_value = 65535.0 if img.dtype == np.uint16 else 255.0
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if img.ndim == 2:
            mode = "L"
        elif img.shape[2] in (3, 4):
            mode = "RGBA" if img.shape[2] == 4 else "RGB"
        else:
            raise ValueError(f"unsupported number of channels: {img.shape[2]}")

        h, w = img.shape[:2]
        s = self.scale
        out = np.empty((h * s, w * s, *img.shape[2:]), dtype=img.dtype)
        boxes = self.boxes(h, w)
        model_alpha = mode == "RGBA" and self.alpha_upsampler == "model"
        total = len(boxes) * (2 if model_alpha else 1)
        bar = tqdm(total=total, unit="tile", leave=False, disable=not progress or len(boxes) < 2)
        for b in boxes:
            piece = img[b.ya : b.yb, b.xa : b.xb].astype(np.float32)
            piece /= max_value
            if mode == "L":
                rgb = np.repeat(piece[:, :, None], 3, axis=2)
            else:
                rgb = piece[:, :, 2::-1]  # BGR(A) -> RGB
            y = self._run_rgb(rgb)[b.inner(s)]
            y = cv2.cvtColor(y, cv2.COLOR_RGB2GRAY) if mode == "L" else y[:, :, ::-1]  # back to OpenCV's BGR
            rows, cols = slice(b.y0 * s, b.y1 * s), slice(b.x0 * s, b.x1 * s)
            quantise_into(out[rows, cols] if mode == "L" else out[rows, cols, :3], y, max_value)
            bar.update()
        if mode == "RGBA":
            for b in boxes:
                quantise_into(
                    out[b.y0 * s : b.y1 * s, b.x0 * s : b.x1 * s, 3], self._alpha(img, b, max_value), max_value
                )
                bar.update(1 if model_alpha else 0)
        bar.close()
        if self.outscale is not None and self.outscale != self.scale:
            size = (int(round(w * self.outscale)), int(round(h * self.outscale)))
            out = cv2.resize(out, size, interpolation=cv2.INTER_LANCZOS4)
        return out, mode + ("-16" if img.dtype == np.uint16 else "")

    def _alpha(self, img: np.ndarray, b: Box, max_value: float) -> np.ndarray:
        """The upscaled alpha of box ``b`` (float in [0, 1]): the network on the alpha as a gray image,
        or bilinear (run on the box with 2 pixels of context, which equals resizing the whole plane)."""
        s = self.scale
        if self.alpha_upsampler == "model":
            alpha = img[b.ya : b.yb, b.xa : b.xb, 3].astype(np.float32)
            alpha /= max_value
            return self._run_rgb(np.repeat(alpha[:, :, None], 3, axis=2))[b.inner(s)].mean(axis=2)
        h, w = img.shape[:2]
        c = Box(b.y0, b.y1, b.x0, b.x1, max(b.y0 - 2, 0), min(b.y1 + 2, h), max(b.x0 - 2, 0), min(b.x1 + 2, w))
        alpha = img[c.ya : c.yb, c.xa : c.xb, 3].astype(np.float32)
        alpha /= max_value
        up = cv2.resize(alpha, ((c.xb - c.xa) * s, (c.yb - c.ya) * s), interpolation=cv2.INTER_LINEAR)
        return up[c.inner(s)]


class Box(NamedTuple):
    """One piece of a tiled image (LR pixels): its own area [y0, y1) x [x0, x1) and the area run
    through the network, [ya, yb) x [xa, xb), which adds up to ``tile_pad`` of context per side."""

    y0: int
    y1: int
    x0: int
    x1: int
    ya: int
    yb: int
    xa: int
    xb: int

    def inner(self, scale: int) -> tuple[slice, slice]:
        """Rows and columns of the box's own area inside the network output of its context area."""
        top, left = (self.y0 - self.ya) * scale, (self.x0 - self.xa) * scale
        return slice(top, top + (self.y1 - self.y0) * scale), slice(left, left + (self.x1 - self.x0) * scale)


def tile_boxes(height: int, width: int, tile: int, pad: int) -> list[Box]:
    """Row-major tile×tile pieces covering an image (the last row/column shorter), each with ``pad``
    pixels of context per side, clipped at the border."""
    return [
        Box(
            y0,
            min(y0 + tile, height),
            x0,
            min(x0 + tile, width),
            max(y0 - pad, 0),
            min(y0 + tile + pad, height),
            max(x0 - pad, 0),
            min(x0 + tile + pad, width),
        )
        for y0 in range(0, height, tile)
        for x0 in range(0, width, tile)
    ]


def quantise_into(target: np.ndarray, values: np.ndarray, max_value: float) -> None:
    """``target[...] = clip(round(values * max_value), 0, max_value)`` as integers, computed in place
    in ``values`` (a float array the caller no longer needs), so no second float copy is made."""
    np.multiply(values, max_value, out=values)
    np.round(values, out=values)
    np.clip(values, 0, max_value, out=values)
    target[...] = values


def load_upscaler(
    checkpoint: str | None,
    arch: str | None = None,
    arch_opt: dict | None = None,
    opt_file: str | None = None,
    param_key: str | None = None,
    scale: int | None = None,
    **upscaler_kwargs,
) -> Upscaler:
    """Network options (see :func:`network_options`) + weights -> a ready :class:`Upscaler`.

    ``scale`` fills the architecture's ``scale`` argument when the options leave it out, and must
    agree with it otherwise. ``checkpoint`` may be None only for parameter-free networks (e.g.
    ``SFDBicubicUpsampler``, a bicubic baseline). A checkpoint without a recipe whose network
    neither its metadata nor RRDBNet keys name (traiNNer-redux's ``net_g_*.safetensors``, say) is
    recognised by spandrel. Remaining keyword arguments go to :class:`Upscaler`.
    """
    import inspect

    if checkpoint and not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    try:
        net_opt = network_options(arch, arch_opt, opt_file, checkpoint)
    except CheckpointError as err:
        if arch or opt_file or not checkpoint or isinstance(err, ExportMetadataError):
            raise  # spandrel is asked only about files that say nothing of their network
        return _spandrel_upscaler(checkpoint, arch_opt, param_key, scale, **upscaler_kwargs)
    named = net_opt.get("scale", net_opt.get("upscale"))
    if scale is not None and named is not None and int(named) != int(scale):
        raise ValueError(f"--scale {scale} disagrees with the network options (scale {named})")
    if scale is not None and named is None and "scale" in inspect.signature(arch_class(net_opt["type"])).parameters:
        net_opt["scale"] = int(scale)
    net = build_generator(net_opt, checkpoint, param_key)
    if checkpoint is None and any(True for _ in net.parameters()):
        raise ValueError(f"{net_opt['type']} has weights: give the checkpoint (--model)")
    in_ch = int(net_opt.get("num_in_ch", net_opt.get("in_chans", 3)))
    return Upscaler(
        net,
        scale=int(scale if scale is not None else network_scale(net_opt)),
        multiple=input_multiple(net_opt),
        in_channels=in_ch,
        **upscaler_kwargs,
    )


def _spandrel_upscaler(checkpoint: str, arch_opt: dict | None, param_key: str | None, scale: int | None, **kwargs):
    from sfd_tools.sr.generator_files import spandrel_network

    if arch_opt:
        raise ValueError(f"--arch-opt needs --arch or --opt: {checkpoint} is read by spandrel, which sets the options")
    net, info = spandrel_network(checkpoint, param_key)
    if scale is not None and int(scale) != info["scale"]:
        raise ValueError(f"--scale {scale} disagrees with the network ({info['architecture']}, x{info['scale']})")
    return Upscaler(net, scale=info["scale"], multiple=info["multiple"], in_channels=info["in_channels"], **kwargs)


# -- files -----------------------------------------------------------------------------------------------
def list_images(path: str) -> list[str]:
    """A file -> [it]; a folder -> every entry whose name ends in an image extension, sorted.

    Entries that are not regular files (a folder named ``x.png``, a link loop) are listed too, so the
    run names them as skipped instead of passing over them. FileNotFoundError when ``path`` does not
    exist, ValueError naming the folder when no name in it is an image's.
    """
    if not os.path.isdir(path):
        if os.path.lexists(path):
            return [path]  # a file, or something read_image names as unreadable
        raise FileNotFoundError(f"input not found: {display(path)}")
    found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTS))
    if not found:
        raise ValueError(f"input folder {display(path)} holds no images ({', '.join(IMAGE_EXTS)})")
    return found


def output_name(path: str, suffix: str, ext: str, mode: str) -> tuple[str, str | None]:
    """``<stem>_<suffix>.<ext>`` (no ``_`` when the suffix is empty); ext ``auto`` = the input's.

    Returns (file name, note or None): RGBA and 16-bit outputs are written as PNG when the chosen
    format cannot hold them.
    """
    stem, in_ext = os.path.splitext(os.path.basename(path))
    ext = (in_ext[1:] if ext == "auto" else ext).lower().lstrip(".")
    note = None
    if ext in EIGHT_BIT_ONLY and (mode.startswith("RGBA") or mode.endswith("-16")):
        note = f"{display(os.path.basename(path))}: {mode} cannot be stored as .{ext}; writing .png"
        ext = "png"
    return f"{stem}_{suffix}.{ext}" if suffix else f"{stem}.{ext}", note


@dataclass
class RunSummary:
    """What :func:`upscale_paths` did: written files, failures ``(path, reason)``, notes."""

    written: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def check_name_options(suffix: str, ext: str) -> None:
    """``--suffix`` and ``--ext`` end up in output file names: plain names only (InputFileError)."""
    if suffix:
        plain_name(suffix, "--suffix")
    if ext != "auto":
        if not (ext.lstrip(".").isascii() and ext.lstrip(".").isalnum()):
            raise ValueError(f"--ext {display(ext)!r}: an image extension such as png, jpg, webp, tif")
        if not cv2.haveImageWriter(f"x.{ext.lower().lstrip('.')}"):
            raise ValueError(f"--ext {ext}: OpenCV cannot write this format (use png, jpg, webp, tif, bmp...)")


def upscale_paths(
    inputs: Iterable[str],
    output_dir: str,
    upscaler: Upscaler,
    suffix: str = "out",
    ext: str = "auto",
    progress: bool = True,
    max_pixels: int | None = None,
) -> RunSummary:
    """Upscale every image in ``inputs`` into ``output_dir``; failures are reported and skipped.

    A file that cannot be read (see :func:`sfd_utils.images.read_image`: not an image, over the
    ``max_pixels`` limit, a folder, a link loop), has an unsupported layout, or fails in the network
    (e.g. out of memory: use tiling) is recorded in ``summary.failed`` with the reason, and the run
    goes on. Refuses to overwrite an input file with its own output; writes only inside ``output_dir``.
    """
    from tqdm import tqdm

    check_name_options(suffix, ext)
    make_output_dir(output_dir, "-o/--output")
    summary = RunSummary(notes=list(upscaler.notes))
    paths = list(inputs)
    sources: dict[str, str] = {}  # output file -> the input it came from in this run
    bar = tqdm(paths, unit="img", disable=not progress)
    for path in bar:
        bar.set_postfix_str(display(os.path.basename(path)))
        try:
            img = read_image(path, max_pixels=max_pixels)
            out, mode = upscaler.enhance(img, progress=progress)
            del img  # a big input need not stay while the output is encoded
            name, note = output_name(path, suffix, ext, mode)
            target = output_file(output_dir, name, "output")
            if os.path.abspath(target) == os.path.abspath(path):
                raise ValueError("output would overwrite the input (give a --suffix or another output folder)")
            if os.path.abspath(target) in sources:
                raise ValueError(
                    f"output {display(name)} was already written for {display(sources[os.path.abspath(target)])} "
                    "(same file stem; run the two in separate folders or with --ext auto)"
                )
            write_image(target, out)
            del out
            sources[os.path.abspath(target)] = os.path.basename(path)
            if note:
                summary.notes.append(note)
            summary.written.append(target)
        except (ValueError, RuntimeError, cv2.error, OSError) as err:  # report and go on with the next file
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            if isinstance(err, torch.cuda.OutOfMemoryError):
                reason += " (try --tile 256)"
            summary.failed.append((path, reason))
            if progress:
                tqdm.write(f"skipped {display(path)}: {reason}")
    return summary


def run_inference(a) -> int:
    """``scripts/inference_sr.py``: the namespace of :func:`sfd_tools.sr.cli.inference_parser`. Exit status
    (sfd_utils.cli): 1 when some images were skipped, 2 when none could be upscaled."""
    from sfd_utils.cli import skipped_status

    check_name_options(a.suffix, a.ext)  # cheap checks first: nothing is loaded for a bad output plan
    make_output_dir(a.output, "-o/--output")
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
    summary = upscale_paths(paths, a.output, upscaler, a.suffix, a.ext, not a.quiet, a.max_pixels)
    for note in summary.notes:
        print(f"note: {note}")
    print(f"wrote {len(summary.written)} image(s) to {display(a.output)}; skipped {len(summary.failed)}")
    for path, reason in summary.failed:
        print(f"  skipped {display(path)}: {reason}")
    if paths and not summary.written:
        raise ValueError(f"none of the {len(paths)} image(s) could be upscaled (each is named above)")
    return skipped_status(len(summary.failed))


def main(argv: list[str] | None = None) -> int:
    """The script's behaviour in-process: parse ``argv``, run, known failures as one ``error:`` line (exit 2)."""
    from sfd_tools.sr.cli import inference_parser
    from sfd_utils.cli import run_cli

    return run_cli(lambda _argv: run_inference(inference_parser().parse_args(argv)))
