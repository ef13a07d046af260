"""Export a trained generator for use outside sfd-basicsr: ``.safetensors`` with metadata, and ONNX.

Where the files go next:

- ``<name>.safetensors``: a plain state dict (no ``params``/``params_ema`` wrapper) with the
  network's own key names: BasicSR ``RRDBNet`` / ``SwinIR`` names, the official old-ESRGAN names
  for ``SFDRRDBNetOfficialX2``, the public NAFNet names for ``CSUDNAFNet``. These are the names
  spandrel (the loader of chaiNNer and traiNNer-redux) detects, so those programs load the file as
  it is. The metadata (strings, see :func:`generator_metadata`) lets :func:`load_safetensors`
  rebuild the identical network here.
- ``<name>.onnx``: opset 17 by default, fp32 (optionally a ``_fp16`` copy), input ``input``
  (B, C, H, W) in [0, 1], output ``output`` (B, C', H*scale, W*scale), not clamped; batch, H and W
  are dynamic. Networks that need H and W divisible by N (SwinIR's window, BasicSR's ×2/×1
  pixel-unshuffle) reflect-pad inside the graph and crop the output, as ``inference_sr.py`` does,
  so any side >= N is accepted.

ONNX files are written with torch's TorchScript-based exporter (``dynamo=False``): the dynamo
exporter needs onnxscript and turns SwinIR's ``input_resolution == x_size`` test into a fixed-size
guard. For BasicSR's SwinIR two things are changed while exporting (and restored after): the
attention mask is always computed from the input size (export with a non-square dummy input, so
the traced branch is the size-dependent one), and ``window_reverse`` derives the batch with integer
shape arithmetic instead of ``int()`` of a float (which the tracer freezes to the dummy batch).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sfd_tools.sr.generator_files import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, exported_network_options
from sfd_tools.sr.inference import arch_class, build_generator, input_multiple, network_options
from sfd_utils.checkpoint import (
    EXTRA_VALUES,
    CheckpointError,
    detect_rrdb_layout,
    extract_state_dict,
    is_safetensors_file,
    load_generator_weights,
    read_checkpoint,
    safetensors_metadata,
    stored_values,
)
from sfd_utils.downloads import sha256_file
from sfd_utils.files import output_dir, output_file, plain_name

FORMAT = EXPORT_FORMAT  # safetensors metadata "format" (inference_sr.py and derain.py read it back)
FORMAT_VERSION = EXPORT_FORMAT_VERSION
DEFAULT_OPSET = 17
# Our network type -> spandrel's architecture id for the same weights.
SPANDREL_IDS = {
    "RRDBNet": "ESRGAN",
    "SFDRRDBNet": "ESRGAN",
    "SFDRRDBNetOfficialX2": "ESRGAN",
    "SwinIR": "SwinIR",
    "CSUDNAFNet": "NAFNet",
}
# Discriminators and CSUD's rain generator, saved next to net_g_* by our training.
NOT_GENERATOR_PREFIXES = {"net_d_": "a discriminator", "net_t_": "the CSUD rain generator"}


class ExportError(ValueError):
    """A checkpoint or option that cannot be exported; the message names the file or option."""


@dataclass
class Generator:
    """A generator loaded from a training checkpoint, with what the exported files record.

    ``net`` is in eval mode on the CPU, fp32; ``net_opt`` is ``{'type': ..., **constructor kwargs}``;
    ``param_key`` the checkpoint entry used (``params_ema``, ``params``, or None for a raw state dict).
    """

    net: nn.Module
    net_opt: dict
    param_key: str | None
    source: str
    sha256: str
    scale: int

    @property
    def in_channels(self) -> int:
        return input_channels(self.net_opt)

    @property
    def multiple(self) -> int:
        return input_multiple(self.net_opt)


def _require(module: str):
    """Import an export dependency; ImportError naming the extras that install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{module} is not installed (pip install -e '.[export]')") from None


def input_channels(net_opt: dict) -> int:
    """Channels the network takes (RRDBNet ``num_in_ch``, SwinIR ``in_chans``, NAFNet ``img_channel``)."""
    for key in ("num_in_ch", "in_chans", "img_channel"):
        if key in net_opt:
            return int(net_opt[key])
    return 3


def package_version() -> str:
    """The installed sfd-basicsr version, or ``unknown`` when running from an uninstalled tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sfd-basicsr")
    except PackageNotFoundError:
        return "unknown"


def spandrel_limits(net_opt: dict) -> list[str]:
    """Why spandrel would not rebuild this network from its weights (empty list: it does).

    spandrel reads most sizes from key shapes but assumes a few constructor arguments.
    """
    name = net_opt.get("type")
    if name not in SPANDREL_IDS:
        return [f"spandrel has no architecture for {name}"]
    limits = []
    if SPANDREL_IDS[name] == "ESRGAN" and int(net_opt.get("num_grow_ch", 32)) != 32:
        limits.append(f"spandrel's ESRGAN assumes num_grow_ch 32, this network has {net_opt['num_grow_ch']}")
    if name == "SwinIR":
        window, img_range = int(net_opt.get("window_size", 7)), float(net_opt.get("img_range", 1.0))
        assumed = 255.0 if window == 7 else 1.0  # spandrel: window 7 = the JPEG models, range 255
        if img_range != assumed:
            limits.append(
                f"spandrel assumes img_range {assumed:g} for window_size {window}, this network has {img_range:g}"
            )
        if net_opt.get("ape") or not net_opt.get("patch_norm", True) or not net_opt.get("qkv_bias", True):
            limits.append("spandrel assumes SwinIR ape=False, patch_norm=True, qkv_bias=True")
    if name == "CSUDNAFNet":
        if int(net_opt.get("dw_expand", 2)) != 2 or int(net_opt.get("ffn_expand", 2)) != 2:
            limits.append("spandrel's NAFNet assumes dw_expand 2 and ffn_expand 2")
        enc, dec = list(net_opt.get("enc_blk_nums", [2, 2, 4, 8])), list(net_opt.get("dec_blk_nums", [2, 2, 2, 2]))
        if int(net_opt.get("middle_blk_num", 12)) < 1 or not enc or enc[0] < 1 or dec[0] < 1:
            limits.append(
                "spandrel detects NAFNet by middle_blks.0, encoders.0.0 and decoders.0.0: each needs >= 1 block"
            )
    return limits


# -- reading a training checkpoint ---------------------------------------------------------------------------
def _refuse_non_generator(path: str, state_dict: dict) -> None:
    """ExportError for an SFD discriminator file (its state dict carries the SFD config)."""
    extra = [v for k, v in state_dict.items() if k.endswith("_extra_state")]
    if extra:
        from sfd_arch.sfd_discriminator_arch import decode_config

        try:
            decode_config(extra[0])
        except ValueError:
            return
        raise ExportError(f"{path} is an SFD discriminator checkpoint (network_d): export the generator net_g_*.pth")


def _inferred_options(path: str, state_dict: dict) -> dict:
    """Network options read from the keys: RRDBNet (either naming) or NAFNet; ExportError otherwise."""
    if detect_rrdb_layout(state_dict) is not None:
        return network_options(checkpoint=path)
    from sfd_arch.nafnet_arch import nafnet_options_from_state_dict

    try:
        return {"type": "CSUDNAFNet", **nafnet_options_from_state_dict(state_dict)}
    except KeyError:
        raise ExportError(
            f"{path}: cannot infer the architecture from the keys (neither RRDBNet nor NAFNet); "
            "give the training recipe (--opt) or --arch with --arch-opt"
        ) from None


def load_training_checkpoint(
    path: str,
    arch: str | None = None,
    arch_opt: dict | None = None,
    opt_file: str | None = None,
    param_key: str | None = None,
) -> Generator:
    """A generator checkpoint (BasicSR ``net_g_*.pth``, raw state dict, official SFD/ESRGAN/NAFNet
    file) built into its network, as ``inference_sr.py`` does.

    The network comes from ``arch`` + ``arch_opt``, else ``network_g`` of ``opt_file``, else the keys
    (RRDBNet in BasicSR or old-ESRGAN naming, NAFNet). ``param_key`` None prefers ``params_ema``.
    Raises FileNotFoundError, ExportError / CheckpointError (both ValueError) with one-line reasons.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state_dict, used_key = extract_state_dict(read_checkpoint(path), param_key)
    _refuse_non_generator(path, state_dict)
    if arch or opt_file:
        net_opt = network_options(arch, arch_opt, opt_file)
    else:
        net_opt = {**_inferred_options(path, state_dict), **(arch_opt or {})}
    stored = sum(v.numel() for v in state_dict.values() if isinstance(v, torch.Tensor))
    # KeyError naming the registered types for an unknown one; CheckpointError for options that
    # name a network bigger than the file (refused before it is built)
    net = build_generator(net_opt, max_values=stored + EXTRA_VALUES)
    try:
        load_generator_weights(net, path, param_key)
    except CheckpointError as err:
        base = os.path.basename(path)
        what = next((w for prefix, w in NOT_GENERATOR_PREFIXES.items() if base.startswith(prefix)), None)
        hint = f" ({base} is {what}; export net_g_*.pth)" if what else ""
        raise ExportError(f"{err}{hint}") from None
    net = net.float().eval()
    scale = measured_scale(net, input_channels(net_opt), input_multiple(net_opt))
    return Generator(net, net_opt, used_key, path, sha256_file(path), scale)


def measured_scale(net: nn.Module, in_channels: int, multiple: int) -> int:
    """The network's upscaling factor, from one forward pass on a small zero input."""
    side = max(multiple, 1) * max(1, 16 // max(multiple, 1))
    with torch.no_grad():
        out = net(torch.zeros(1, in_channels, side, side))
    return int(out.shape[-1] // side)


def generator_metadata(gen: Generator) -> dict[str, str]:
    """The safetensors/ONNX metadata of an exported generator (all values are strings)."""
    opts = {k: v for k, v in gen.net_opt.items() if k != "type"}
    return {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "architecture": gen.net_opt["type"],
        "network_options": json.dumps(opts, sort_keys=True),
        "scale": str(gen.scale),
        "input_channels": str(gen.in_channels),
        "input_multiple": str(gen.multiple),
        "param_key": gen.param_key or "",
        "source_checkpoint": os.path.basename(gen.source),
        "source_sha256": gen.sha256,
        "sfd_basicsr_version": package_version(),
        "spandrel_architecture": SPANDREL_IDS.get(gen.net_opt["type"], "") if not spandrel_limits(gen.net_opt) else "",
    }


# -- safetensors ---------------------------------------------------------------------------------------------
def save_safetensors(gen: Generator, path: str) -> dict[str, str]:
    """Write the generator's plain state dict (its own key names) with metadata; returns the metadata."""
    save_file = _require("safetensors.torch").save_file
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in gen.net.state_dict().items() if torch.is_tensor(v)}
    meta = generator_metadata(gen)
    save_file(tensors, path, metadata=meta)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # safetensors writes 0600; give it the permissions of any new file
    return meta


def read_safetensors_metadata(path: str) -> dict[str, str]:
    """The metadata of an exported file; ExportError when it was not written by :func:`save_safetensors`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"file not found: {path}")
    meta = safetensors_metadata(path) if is_safetensors_file(path) else {}
    if meta.get("format") != FORMAT:
        raise ExportError(f"{path}: no sfd-basicsr metadata (format {meta.get('format')!r}); not written by export.py")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ExportError(f"{path}: format version {meta['format_version']} is newer than this sfd-basicsr")
    return meta


def load_safetensors(path: str) -> tuple[nn.Module, dict[str, str]]:
    """(network in eval mode with the weights loaded strictly, metadata) from an exported file."""
    load_file = _require("safetensors.torch").load_file
    meta = read_safetensors_metadata(path)
    net_opt = exported_network_options(path)  # checked: depth, size, a table of options
    arch_class(net_opt["type"])  # KeyError naming the registered types
    net = build_generator(net_opt, max_values=stored_values(path) + EXTRA_VALUES)
    net.load_state_dict(load_file(path), strict=True)
    return net, meta


# -- ONNX ----------------------------------------------------------------------------------------------------
class PadToMultiple(nn.Module):
    """Reflect-pad H and W up to a multiple of ``multiple``, run ``net``, crop to ``scale`` × the input.

    (B, C, H, W), H and W >= ``multiple`` -> ``net``'s output for the padded input, cropped to
    (B, C', H*scale, W*scale). The pads are computed from the input's shape, so they stay dynamic
    in an exported graph.
    """

    def __init__(self, net: nn.Module, multiple: int, scale: int) -> None:
        super().__init__()
        self.net, self.multiple, self.scale = net, multiple, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % self.multiple, 0, (-h) % self.multiple), mode="reflect")
        return self.net(x)[..., : h * self.scale, : w * self.scale]


def deployable(net: nn.Module, multiple: int, scale: int) -> nn.Module:
    """``net`` itself, or wrapped in :class:`PadToMultiple` when it needs sides divisible by ``multiple``."""
    return PadToMultiple(net, multiple, scale) if multiple > 1 else net


def _window_reverse(windows: torch.Tensor, window_size: int, h: int, w: int) -> torch.Tensor:
    """BasicSR's SwinIR ``window_reverse`` with the batch from integer shape arithmetic (traceable)."""
    b = windows.shape[0] // ((h // window_size) * (w // window_size))
    x = windows.view(b, h // window_size, w // window_size, window_size, window_size, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


@contextlib.contextmanager
def traceable_swinir() -> Iterator[None]:
    """While exporting: SwinIR's ``window_reverse`` keeps the batch dynamic, and the attention mask
    has the blocks' dtype (BasicSR builds it in fp32, which breaks fp16 export)."""
    from basicsr.archs import swinir_arch

    old_reverse, old_mask = swinir_arch.window_reverse, swinir_arch.SwinTransformerBlock.calculate_mask

    def calculate_mask(self, x_size):
        return old_mask(self, x_size).to(self.norm1.weight.dtype)

    swinir_arch.window_reverse = _window_reverse
    swinir_arch.SwinTransformerBlock.calculate_mask = calculate_mask
    try:
        yield
    finally:
        swinir_arch.window_reverse = old_reverse
        swinir_arch.SwinTransformerBlock.calculate_mask = old_mask


def dummy_input(in_channels: int, multiple: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A non-square (1, C, h, h + multiple) trace input whose padded size never equals a square
    ``img_size`` (so SwinIR traces its size-dependent mask branch)."""
    m = max(multiple, 1)
    h = m * -(-24 // m)
    return torch.rand(1, in_channels, h, h + m, generator=torch.Generator().manual_seed(0)).to(dtype)


def export_onnx(
    gen: Generator,
    path: str,
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write ``gen`` as ONNX with dynamic batch/H/W (see the module docstring); ``fp16`` exports a
    half-precision copy (weights, input and output in float16). ``metadata`` goes to the model's
    ``metadata_props``."""
    import copy
    import warnings

    onnx = _require("onnx")
    dtype = torch.float16 if fp16 else torch.float32
    net = deployable(copy.deepcopy(gen.net).to(dtype).eval(), gen.multiple, gen.scale)
    axes = {0: "batch", 2: "height", 3: "width"}
    with traceable_swinir(), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic (intended here)
        torch.onnx.export(
            net,
            (dummy_input(gen.in_channels, gen.multiple, dtype),),
            path,
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": axes, "output": axes},
        )
    model = onnx.load(path)
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def onnx_max_error(path: str, gen: Generator, x: torch.Tensor) -> float:
    """Max |onnxruntime (CPU) - torch fp32| over the outputs for ``x`` (B, C, H, W) in [0, 1]."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = x.numpy().astype(np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32)
    got = session.run(None, {"input": feed})[0].astype(np.float32)
    with torch.no_grad():
        want = deployable(gen.net, gen.multiple, gen.scale)(x.float()).numpy()
    if got.shape != want.shape:
        raise ExportError(f"{path}: ONNX output {got.shape} differs from torch {want.shape}")
    return float(np.abs(got - want).max())


def photo_crop(in_channels: int, height: int, width: int) -> torch.Tensor:
    """(1, C, height, width) crop of the held-out photo ``chelsea`` (300×451) in [0, 1] (gray = channel mean)."""
    from sfd_utils.photos import load_photo

    img = torch.from_numpy(load_photo("chelsea")).permute(2, 0, 1).float() / 255.0
    crop = img[:, 60 : 60 + height, 100 : 100 + width][None]
    return crop.mean(1, keepdim=True).repeat(1, in_channels, 1, 1) if in_channels != 3 else crop


# -- the whole export ----------------------------------------------------------------------------------------
def export_targets(out_dir: str, name: str, formats: Sequence[str], fp16: bool, overwrite: bool) -> list[str]:
    """The files an export writes, all inside ``out_dir`` (created): ``name`` must be a plain file name,
    no target a folder or a link, and none may exist unless ``overwrite`` (ExportError / InputFileError)."""
    plain_name(name, "--name")
    output_dir(out_dir, "-o/--output")
    stems = []
    if "safetensors" in formats:
        stems.append(f"{name}.safetensors")
    if "onnx" in formats:
        stems += [f"{name}.onnx", *([f"{name}_fp16.onnx"] if fp16 else [])]
    targets = [output_file(out_dir, stem, "--name") for stem in stems]
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not overwrite:
        raise ExportError(f"{existing[0]} exists (use --overwrite or another --name / --output)")
    return targets


def export_checkpoint(
    checkpoint: str,
    out_dir: str,
    name: str | None = None,
    arch: str | None = None,
    arch_opt: dict | None = None,
    opt_file: str | None = None,
    param_key: str | None = None,
    formats: Sequence[str] = ("safetensors", "onnx"),
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    check: bool = True,
    overwrite: bool = False,
) -> dict:
    """Export ``checkpoint`` to ``<out_dir>/<name>.safetensors`` / ``<name>.onnx`` (+ ``<name>_fp16.onnx``).

    ``name`` defaults to the checkpoint's file stem. With ``check`` the ONNX files are run with
    onnxruntime on the CPU on a 37×53 photo crop and compared with the torch network.

    Returns ``{'files': [...], 'metadata': {...}, 'onnx_max_error': {path: float}, 'spandrel_limits': [...]}``.
    """
    unknown = set(formats) - {"safetensors", "onnx"}
    if unknown or not formats:
        raise ExportError(f"--format: choose from safetensors, onnx (got {sorted(formats)})")
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    name = name or os.path.splitext(os.path.basename(checkpoint))[0]
    targets = export_targets(out_dir, name, formats, fp16, overwrite)  # checked before the checkpoint is read
    gen = load_training_checkpoint(checkpoint, arch, arch_opt, opt_file, param_key)
    meta = generator_metadata(gen)
    report = {"files": targets, "metadata": meta, "onnx_max_error": {}, "spandrel_limits": spandrel_limits(gen.net_opt)}
    for target in targets:
        if target.endswith(".safetensors"):
            save_safetensors(gen, target)
        else:
            half = target.endswith("_fp16.onnx")
            export_onnx(gen, target, opset, half, {**meta, "precision": "fp16" if half else "fp32"})
            if check:
                x = photo_crop(gen.in_channels, 37, 53)  # odd, non-square, unlike the trace input
                report["onnx_max_error"][target] = onnx_max_error(target, gen, x)
    return report


def run_export(a) -> int:
    """``scripts/export.py``: the namespace of :func:`sfd_tools.sr.cli.export_parser`."""
    from sfd_tools.sr.inference import parse_arch_opts

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
