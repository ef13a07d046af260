"""Which network a generator file holds, for files that do not come with a recipe.

- ``scripts/export.py`` writes ``.safetensors`` files whose metadata names the architecture and its
  options (``format: sfd-basicsr-generator``): :func:`exported_network_options` reads them back, so
  the identical network is rebuilt.
- traiNNer-redux writes ``net_g_*.safetensors`` (and ``.pth``) as flat state dicts of its own
  architectures, mostly spandrel's (its ``esrgan`` is spandrel's ESRGAN, keys ``model.0.weight``,
  ...); its metadata holds spandrel's hyperparameters, not a network type. For such files, and any
  other file whose keys no recipe describes, :func:`spandrel_network` asks spandrel (the loader of
  chaiNNer and traiNNer-redux) to recognise the architecture from the keys and shapes.

Both read the file with ``sfd_utils.checkpoint.read_checkpoint`` (safetensors or weights-only torch):
no file is unpickled.
"""

from __future__ import annotations

from torch import nn

from sfd_utils.checkpoint import (
    CheckpointError,
    extract_state_dict,
    is_safetensors_file,
    read_checkpoint,
    safetensors_metadata,
)
from sfd_utils.files import loads_json

EXPORT_FORMAT = "sfd-basicsr-generator"
EXPORT_FORMAT_VERSION = 1
OPTIONS_DEPTH = 8  # network options are a flat table, with lists (SwinIR's depths) at most


class ExportMetadataError(CheckpointError):
    """A file with sfd-basicsr export metadata that cannot be used (damaged, too deep, too new)."""


def exported_network_options(path: str) -> dict | None:
    """``{'type': ..., **options}`` recorded by ``scripts/export.py`` in a safetensors file; None for any
    other file. CheckpointError for a file of a newer format version, or metadata that is damaged,
    nested deeper than :data:`OPTIONS_DEPTH` or not a table of options."""
    if not is_safetensors_file(path):
        return None
    meta = safetensors_metadata(path)  # header size, depth and metadata size checked
    if meta.get("format") != EXPORT_FORMAT:
        return None
    version = meta.get("format_version", "0")
    if not version.isdigit():
        raise ExportMetadataError(f"{path}: damaged sfd-basicsr metadata (format_version {version[:40]!r})")
    if int(version) > EXPORT_FORMAT_VERSION:
        raise ExportMetadataError(f"{path}: format version {version} is newer than this sfd-basicsr")
    try:
        options = loads_json(meta["network_options"], f"{path}: network_options", max_depth=OPTIONS_DEPTH)
        arch = meta["architecture"]
    except (KeyError, ValueError) as err:
        raise ExportMetadataError(f"{path}: damaged sfd-basicsr metadata ({type(err).__name__}: {err})") from None
    if not isinstance(options, dict) or "type" in options:
        raise ExportMetadataError(f"{path}: damaged sfd-basicsr metadata (network_options is not a table of options)")
    return {"type": arch, **options}


def spandrel_network(path: str, param_key: str | None = None) -> tuple[nn.Module, dict]:
    """(network in eval mode with the file's weights, {'architecture', 'scale', 'multiple',
    'in_channels'}) recognised by spandrel from the file's keys. CheckpointError when spandrel is
    missing or does not know the keys."""
    try:
        import spandrel
    except ImportError:
        raise CheckpointError(
            f"{path}: cannot infer the architecture from the keys without spandrel (pip install spandrel); "
            "or give --arch/--arch-opt or --opt"
        ) from None
    state_dict, _ = extract_state_dict(read_checkpoint(path), param_key)
    try:
        desc = spandrel.ModelLoader(device="cpu").load_from_state_dict(state_dict)
    except Exception as err:  # spandrel's UnsupportedModelError, or keys that fit no known shape
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path}: cannot infer the architecture (no sfd-basicsr metadata, not an RRDBNet, and spandrel does "
            f"not recognise it: {first}); give --arch/--arch-opt or --opt"
        ) from None
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise CheckpointError(f"{path}: spandrel reads it as a {desc.architecture.name} that is not an image model")
    info = {
        "architecture": f"{desc.architecture.name} (spandrel)",
        "scale": int(desc.scale),
        "multiple": int(desc.size_requirements.multiple_of),
        "in_channels": int(desc.input_channels),
    }
    return desc.model.eval(), info
