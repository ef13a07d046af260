"""Generator checkpoints in every layout an SR user meets, loaded safely (``weights_only=True``).

Accepted files:

- BasicSR / our training output: ``{"params": sd, "params_ema": sd}`` (``net_g_<iter>.pth``);
- Real-ESRGAN releases: ``{"params_ema": sd}`` or ``{"params": sd}``;
- raw state dicts (``torch.save(net.state_dict())``), with or without a DataParallel ``module.`` prefix;
- the official SFD / ESRGAN RRDBNet release in the old ESRGAN naming (``RRDB_trunk``, ``trunk_conv``,
  ``upconv1``, ``upconv2``, ``HRconv``). Old ×4 names are renamed to BasicSR's ``RRDBNet`` names
  (and back, for a network that uses the old names). The official ×2 model has one upsampling conv
  and no pixel-unshuffle; it loads into ``SFDRRDBNetOfficialX2`` only;
- ``.safetensors`` files (``scripts/export.py``'s, traiNNer-redux's ``net_g_*.safetensors``): a flat
  state dict, recognised by its header whatever the extension. The format holds only tensors and a
  string-to-string metadata table, so reading it runs no code.

This module imports only torch, so architectures can use it without import cycles.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import OrderedDict
from collections.abc import Mapping

import torch

# Old ESRGAN name -> BasicSR RRDBNet name, applied to dotted key components.
OLD_TO_BASICSR = {
    "RRDB_trunk": "body",
    "RDB1": "rdb1",
    "RDB2": "rdb2",
    "RDB3": "rdb3",
    "trunk_conv": "conv_body",
    "upconv1": "conv_up1",
    "upconv2": "conv_up2",
    "HRconv": "conv_hr",
}
BASICSR_TO_OLD = {v: k for k, v in OLD_TO_BASICSR.items()}
# Keys preferred, in order, when a file holds several state dicts and no key was asked for.
PARAM_KEYS = ("params_ema", "params", "state_dict", "model", "net_g", "generator")

LAYOUT_BASICSR = "basicsr_rrdbnet"
LAYOUT_OLD_X4 = "esrgan_old_x4"
LAYOUT_OLD_X2 = "esrgan_old_x2"
OFFICIAL_X2_ARCH = "SFDRRDBNetOfficialX2"


MAX_HEADER_BYTES = 16 << 20  # a safetensors header of 150 k tensors; the format allows 100 MB
MAX_METADATA_BYTES = 1 << 20  # ours is 1 kB, traiNNer-redux's a few kB
EXTRA_VALUES = 16 << 20  # buffers a network may hold beyond its weights file (attention masks)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into the given network; the message says why."""


def _rename_all(state_dict: Mapping[str, torch.Tensor], table: Mapping[str, str]) -> OrderedDict:
    """Rename every dotted key component found in ``table`` (``RRDB_trunk.0.RDB1`` -> ``body.0.rdb1``)."""
    return OrderedDict((".".join(table.get(p, p) for p in k.split(".")), v) for k, v in state_dict.items())


def is_state_dict(obj) -> bool:
    """True for a non-empty mapping of str -> tensor (a raw ``state_dict``; ``*_extra_state`` entries,
    which modules may fill with any object, are allowed)."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) or k.endswith("_extra_state") for k, v in obj.items())
        and any(isinstance(v, torch.Tensor) for v in obj.values())
    )


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> OrderedDict:
    """Drop the ``module.`` prefix DataParallel/DDP adds (keys without it are kept as they are)."""
    return OrderedDict((k[7:] if k.startswith("module.") else k, v) for k, v in state_dict.items())


def detect_rrdb_layout(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Which RRDBNet layout a state dict has.

    Returns ``"esrgan_old_x4"`` / ``"esrgan_old_x2"`` (old ESRGAN names; ×2 = no ``upconv2``),
    ``"basicsr_rrdbnet"`` (BasicSR names) or None (not an RRDBNet).
    """
    keys = set(strip_module_prefix(state_dict))
    if any(k.startswith(("RRDB_trunk.", "trunk_conv.")) for k in keys):
        return LAYOUT_OLD_X4 if "upconv2.weight" in keys else LAYOUT_OLD_X2
    if "conv_body.weight" in keys and any(k.startswith("body.") for k in keys):
        return LAYOUT_BASICSR
    return None


def old_esrgan_to_basicsr(state_dict: Mapping[str, torch.Tensor]) -> OrderedDict:
    """Rename old ESRGAN RRDBNet keys (``RRDB_trunk.3.RDB2.conv4.weight``) to BasicSR's
    (``body.3.rdb2.conv4.weight``). Keys already in BasicSR naming pass through unchanged.

    Raises CheckpointError for the official ×2 layout, which has no BasicSR equivalent.
    """
    state_dict = strip_module_prefix(state_dict)
    if detect_rrdb_layout(state_dict) == LAYOUT_OLD_X2:
        raise CheckpointError(
            "this is an official SFD x2 RRDBNet checkpoint (one upsampling conv `upconv1`, no "
            "pixel-unshuffle): it does not fit BasicSR's RRDBNet(scale=2); use the architecture "
            f"{OFFICIAL_X2_ARCH} (network_g type / --arch)"
        )
    return _rename_all(state_dict, OLD_TO_BASICSR)


def basicsr_to_old_esrgan(state_dict: Mapping[str, torch.Tensor]) -> OrderedDict:
    """Inverse of :func:`old_esrgan_to_basicsr` (for networks that use the old names)."""
    return _rename_all(strip_module_prefix(state_dict), BASICSR_TO_OLD)


def infer_rrdb_options(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Network options (``type`` + RRDBNet kwargs) of an RRDBNet checkpoint in either naming.

    Old ×4 files map to BasicSR's ``RRDBNet``; old ×2 files to ``SFDRRDBNetOfficialX2``. For BasicSR
    files the scale comes from the pixel-unshuffle factor (conv_first in-channels / out-channels,
    assuming as many input as output channels). Raises CheckpointError when it is not an RRDBNet.
    """
    layout = detect_rrdb_layout(state_dict)
    if layout is None:
        raise CheckpointError(
            "cannot infer the architecture: the checkpoint is not an RRDBNet (give --arch/--arch-opt or --opt)"
        )
    sd = strip_module_prefix(state_dict)
    if layout != LAYOUT_BASICSR:
        sd = _rename_all(sd, OLD_TO_BASICSR)  # names only, to read the shapes (x2 included)
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"body\.(\d+)\.", k))}
    num_feat, in_ch = sd["conv_first.weight"].shape[:2]
    out_ch = sd["conv_last.weight"].shape[0]
    opts = {
        "num_in_ch": int(in_ch),
        "num_out_ch": int(out_ch),
        "num_feat": int(num_feat),
        "num_block": len(blocks),
        "num_grow_ch": int(sd["body.0.rdb1.conv1.weight"].shape[0]),
    }
    if layout == LAYOUT_OLD_X2:
        return {"type": OFFICIAL_X2_ARCH, **opts, "scale": 2}
    if layout == LAYOUT_OLD_X4:
        return {"type": "RRDBNet", **opts, "scale": 4}
    ratio = opts["num_in_ch"] // max(1, opts["num_out_ch"])
    scale = {1: 4, 4: 2, 16: 1}.get(ratio, 4)
    opts["num_in_ch"] //= {4: 1, 2: 4, 1: 16}[scale]
    return {"type": "RRDBNet", **opts, "scale": scale}


def extract_state_dict(obj, param_key: str | None = None) -> tuple[OrderedDict, str | None]:
    """Pick the generator state dict out of a loaded checkpoint object.

    Args:
        obj: what ``torch.load`` returned.
        param_key: the key to use (``params`` / ``params_ema`` / ...). None = the first of
            ``params_ema, params, state_dict, model, net_g, generator`` present, else the object
            itself when it is a raw state dict. A requested key that is absent falls back to
            ``params`` (BasicSR's rule) or to a raw state dict.

    Returns:
        (state dict without ``module.`` prefixes, the key used or None for a raw state dict).
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a dict of tensors, got {type(obj).__name__}")
    if param_key is not None:
        if param_key in obj:
            chosen = param_key
        elif "params" in obj:
            chosen = "params"  # BasicSR's own fallback for files saved without EMA
        elif is_state_dict(obj):
            return strip_module_prefix(obj), None
        else:
            raise CheckpointError(f"param_key {param_key!r} not in the checkpoint (its keys: {sorted(obj)[:10]})")
    elif is_state_dict(obj):
        return strip_module_prefix(obj), None
    else:
        chosen = next((k for k in PARAM_KEYS if k in obj), None)
        if chosen is None:
            raise CheckpointError(
                f"no state dict found: none of {list(PARAM_KEYS)} in the checkpoint (its keys: {sorted(obj)[:10]})"
            )
    inner = obj[chosen]
    if not is_state_dict(inner):
        raise CheckpointError(f"checkpoint entry {chosen!r} is not a dict of tensors")
    return strip_module_prefix(inner), chosen


def is_safetensors_file(path: str) -> bool:
    """True if ``path`` starts like a safetensors file (8-byte little-endian header length up to the
    format's 100 MB limit, then a JSON header), whatever its extension and even when truncated (its
    reader then names the damage); torch files are zip archives (``PK``) or pickles."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 2 <= int.from_bytes(head[:8], "little") <= 100_000_000


def safetensors_header(path: str) -> dict:
    """The JSON header of a safetensors file, read and checked by Python before any library parses it:
    at most :data:`MAX_HEADER_BYTES`, nested at most a few levels, a metadata table of strings of at
    most :data:`MAX_METADATA_BYTES`. CheckpointError naming the file otherwise."""
    from sfd_utils.files import InputFileError, loads_json

    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if size > MAX_HEADER_BYTES:
            raise CheckpointError(
                f"{path}: unreadable safetensors file (a header of {size} bytes, over the {MAX_HEADER_BYTES} limit)"
            )
        raw = f.read(size)
    if len(raw) < size:
        raise CheckpointError(
            f"{path}: unreadable safetensors file (truncated: header cut at {len(raw)} of {size} bytes)"
        )
    try:
        header = loads_json(raw, f"{path}: unreadable safetensors file: its header", max_depth=4)
    except InputFileError as err:
        raise CheckpointError(str(err)) from None
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"{path}: unreadable safetensors file (its header is not tensors and string metadata)")
    n_meta = sum(len(k) + len(v) for k, v in meta.items())
    if n_meta > MAX_METADATA_BYTES:
        raise CheckpointError(
            f"{path}: {n_meta} characters of safetensors metadata, over the {MAX_METADATA_BYTES} limit"
        )
    return header


def safetensors_metadata(path: str) -> dict[str, str]:
    """The string metadata table of a safetensors file ({} when it has none), checked as by
    :func:`safetensors_header`."""
    return dict(safetensors_header(path).get("__metadata__", {}))


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def stored_values(path: str) -> int:
    """How many tensor elements a weights file holds (safetensors: from its header; torch: memory-mapped,
    nothing read into memory). A network that needs more cannot be loaded from it strictly."""
    if is_safetensors_file(path):
        header = safetensors_header(path)
        return sum(_numel(v.get("shape", ())) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict))
    total, todo = 0, [read_checkpoint(path, mmap=True)]
    while todo:
        obj = todo.pop()
        if isinstance(obj, torch.Tensor):
            total += obj.numel()
        elif isinstance(obj, Mapping):
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple)):
            todo.extend(obj)
    return total


def read_checkpoint(path: str, mmap: bool = False):
    """What a checkpoint file holds, read without running code: ``torch.load(path, map_location="cpu",
    weights_only=True)``, or the tensors of a safetensors file (header checked first, see
    :func:`safetensors_header`); errors name the file. ``mmap``: map torch files instead of reading them."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if is_safetensors_file(path):
        from safetensors.torch import load_file

        safetensors_header(path)
        try:
            return load_file(path, device="cpu")
        except Exception as err:  # truncated or corrupt file
            raise CheckpointError(f"{path}: unreadable safetensors file ({type(err).__name__}: {err})") from err
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as err:
            if not mmap or "mmap" not in str(err):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as err:  # pickle with code objects, truncated file, not a torch file at all
        raise CheckpointError(
            f"{path}: cannot be read as a weights-only torch checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Only tensors/dicts are loaded, never pickled code."
        ) from err


class _TooManyValues(BaseException):
    """Raised inside a constructor by the counting hooks (a BaseException: constructors that catch
    Exception do not swallow it)."""


@contextlib.contextmanager
def _values_at_most(limit: int):
    """Count the elements of every parameter and buffer registered while inside; raise
    :class:`_TooManyValues` as soon as they exceed ``limit``."""
    from torch.nn.modules import module as nn_module

    count = [0]

    def add(module, name, tensor):
        if tensor is not None:
            count[0] += tensor.numel()
            if count[0] > limit:
                raise _TooManyValues(count[0])

    handles = [
        nn_module.register_module_parameter_registration_hook(add),
        nn_module.register_module_buffer_registration_hook(add),
    ]
    try:
        yield count
    finally:
        for h in handles:
            h.remove()


def build_bounded(factory, max_values: int, what: str) -> torch.nn.Module:
    """``factory()`` (a network constructor), refused in one line before it allocates more than
    ``max_values`` parameter and buffer elements.

    The network is first built on the meta device (shapes only, no memory) while every registered
    parameter and buffer is counted; options that name a network larger than the limit, or that its
    constructor refuses, raise CheckpointError naming ``what``. Only then is it built for real (still
    counted, for constructors that cannot run on the meta device).
    """
    for device in ("meta", "real"):
        try:
            with _values_at_most(max_values), torch.device("meta") if device == "meta" else contextlib.nullcontext():
                net = factory()
        except _TooManyValues as big:
            raise CheckpointError(
                f"{what}: the network has more than {big.args[0]:,} parameter values, more than the "
                f"{max_values:,} its weights file can fill: the options do not describe this file"
            ) from None
        except (TypeError, ValueError, KeyError):
            raise
        except Exception as err:  # options a constructor cannot use (a negative size, a zero divisor)
            if device == "meta":
                continue  # a constructor that needs real tensors (.item(), numpy): counted while built for real
            first = str(err).splitlines()[0] if str(err) else ""
            raise CheckpointError(f"{what}: the network cannot be built ({type(err).__name__}: {first})") from None
        if device == "real":
            return net
    raise AssertionError("unreachable")


def match_to_network(state_dict: Mapping[str, torch.Tensor], net: torch.nn.Module) -> OrderedDict:
    """Rename the checkpoint's RRDBNet keys to the naming ``net`` uses (old ESRGAN or BasicSR)."""
    target = net.state_dict()
    net_layout, ckpt_layout = detect_rrdb_layout(target), detect_rrdb_layout(state_dict)
    if ckpt_layout in (LAYOUT_OLD_X4, LAYOUT_OLD_X2) and net_layout == LAYOUT_BASICSR:
        return old_esrgan_to_basicsr(state_dict)
    if ckpt_layout == LAYOUT_BASICSR and net_layout in (LAYOUT_OLD_X4, LAYOUT_OLD_X2):
        return basicsr_to_old_esrgan(state_dict)
    return OrderedDict(state_dict)


def compare_keys(state_dict: Mapping[str, torch.Tensor], net: torch.nn.Module) -> dict:
    """{'missing': [...], 'unexpected': [...], 'shape': ['key: ckpt (a, b) vs net (c, d)', ...]}."""
    target = net.state_dict()
    shape = [
        f"{k}: checkpoint {tuple(v.shape)} vs network {tuple(target[k].shape)}"
        for k, v in state_dict.items()
        if isinstance(v, torch.Tensor) and isinstance(target.get(k), torch.Tensor) and v.shape != target[k].shape
    ]
    return {
        "missing": sorted(set(target) - set(state_dict)),
        "unexpected": sorted(set(state_dict) - set(target)),
        "shape": shape,
    }


def describe_problems(problems: dict, limit: int = 8) -> str:
    """One line on what :func:`compare_keys` found."""
    parts = []
    for name in ("missing", "unexpected", "shape"):
        items = problems[name]
        if items:
            more = f" ... (+{len(items) - limit} more)" if len(items) > limit else ""
            label = {"missing": "missing keys", "unexpected": "unexpected keys", "shape": "shape mismatches"}[name]
            parts.append(f"{label} ({len(items)}): {', '.join(items[:limit])}{more}")
    return "; ".join(parts)


def load_generator_weights(net: torch.nn.Module, path: str, param_key: str | None = None, strict: bool = True) -> dict:
    """Load a generator checkpoint of any supported layout into ``net`` (in place).

    Args:
        net: the network (bare, not DataParallel-wrapped).
        path: ``.pth`` file (read with ``weights_only=True`` on CPU) or ``.safetensors`` file.
        param_key: see :func:`extract_state_dict`; None prefers ``params_ema`` over ``params``.
        strict: raise on missing/unexpected keys or shape mismatches (default). With False, matching
            keys are loaded and the rest reported in the returned dict.

    Returns:
        {'path', 'param_key', 'layout', 'missing', 'unexpected', 'shape'}.

    Raises:
        FileNotFoundError, CheckpointError (names the keys that do not fit and, for official ×2
        files, the architecture to use).
    """
    state_dict, used_key = extract_state_dict(read_checkpoint(path), param_key)
    layout = detect_rrdb_layout(state_dict)
    try:
        state_dict = match_to_network(state_dict, net)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    problems = compare_keys(state_dict, net)
    if strict and any(problems.values()):
        raise CheckpointError(f"{path} does not fit {type(net).__name__}: {describe_problems(problems)}")
    if problems["shape"]:  # non-strict: leave mismatched tensors at their initial values
        bad = {p.split(":")[0] for p in problems["shape"]}
        state_dict = OrderedDict((k, v) for k, v in state_dict.items() if k not in bad)
    net.load_state_dict(state_dict, strict=strict)
    return {"path": path, "param_key": used_key, "layout": layout, **problems}


def basicsr_load_network(model, net: torch.nn.Module, load_path: str, strict: bool = True, param_key="params") -> None:
    """Drop-in for BasicSR's ``BaseModel.load_network`` that accepts every layout above.

    Use as ``load_network = basicsr_load_network`` in a BasicSR model class: a recipe's
    ``path.pretrain_network_g`` may then be an official SFD/ESRGAN file (raw state dict, old names)
    even with ``param_key_g: params``, where BasicSR itself fails with ``KeyError: 'params'``.
    """
    from basicsr.utils import get_root_logger

    info = load_generator_weights(model.get_bare_model(net), load_path, param_key, strict)
    get_root_logger().info(
        f"Loading {type(model.get_bare_model(net)).__name__} from {load_path} "
        f"(param key {info['param_key']}, layout {info['layout'] or 'generic'})"
    )


# ---------------------------------------------------------------- atomic files and damaged ones
TMP_GLOBS = ("*.pth.*.tmp", "*.state.*.tmp")  # what atomic_torch_save leaves behind when killed


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save(obj, path)`` that never leaves a partial ``path``: the bytes go to
    ``<path>.<pid>.tmp`` in the same folder, are fsync'ed, and the file is renamed over ``path``
    (atomic on POSIX and Windows). A failure removes the temporary and re-raises; a kill leaves at
    most the temporary, which :func:`remove_stale_temporaries` deletes on resume."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # the rename itself survives a power cut only once the folder is synced (POSIX only)
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(folders) -> list[str]:
    """Delete the temporaries a killed :func:`atomic_torch_save` left in ``folders``; returns them."""
    import glob

    removed = []
    for folder in folders:
        for pattern in TMP_GLOBS:
            for path in sorted(glob.glob(os.path.join(folder, pattern))):
                try:
                    os.remove(path)
                except OSError:
                    continue
                removed.append(path)
    return removed


def readable_checkpoint_problem(path: str) -> str | None:
    """None when ``path`` loads as a weights-only torch file, else why not, in a few words
    (missing, empty, truncated or not a torch file)."""
    if not os.path.isfile(path):
        return "missing"
    if os.path.getsize(path) == 0:
        return "empty (0 bytes)"
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle with code, not a torch file
        first = str(err).splitlines()[0].split(". ")[0] if str(err) else ""
        return f"unreadable ({type(err).__name__}: {first[:120]})"
    return None
