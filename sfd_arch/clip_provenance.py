"""Which CLIP weights a discriminator was trained with: absolute path, content hash, and whether the
file is a random-calibrated stand-in, so that numbers can be traced and moved files found again.

- :func:`weights_record` describes a resolved weight file for a checkpoint's metadata.
- :func:`find_by_hash` looks for a moved file with the recorded hash in given folders.
- :func:`save_random_calibrated` writes an ordinary open_clip checkpoint (``{"state_dict": ...}``)
  with an ``sfd_basicsr`` entry saying it is random-calibrated; :func:`read_marker` reads it back
  without loading the tensors into memory.
"""

from __future__ import annotations

import os

import torch

from sfd_utils.downloads import sha256_file

MARKER_KEY = "sfd_basicsr"
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz")
_hash_cache: dict[tuple, str] = {}


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file (cached per path, size and modification time)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        _hash_cache[key] = sha256_file(path)
    return _hash_cache[key]


def read_marker(path: str) -> dict:
    """The ``sfd_basicsr`` entry of a torch checkpoint (empty when absent or not a torch zip file)."""
    if not path or not path.endswith((".pt", ".pth", ".bin")):
        return {}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not ours to judge here: open_clip reports unreadable files when it loads them
        return {}
    marker = obj.get(MARKER_KEY) if isinstance(obj, dict) else None
    return dict(marker) if isinstance(marker, dict) else {}


def weights_record(path: str | None) -> dict:
    """Metadata for a checkpoint: ``clip_weights_file`` (absolute), ``clip_weights_sha256``,
    ``clip_weights_size`` and ``clip_weights_random_calibrated``; random weights give ``{}``."""
    if path is None:
        return {}
    return {
        "clip_weights_file": os.path.abspath(os.path.expanduser(path)),
        "clip_weights_sha256": file_sha256(path),
        "clip_weights_size": os.path.getsize(path),
        "clip_weights_random_calibrated": bool(read_marker(path).get("random_calibrated", False)),
    }


def describe(record: dict, clip_model: str, clip_pretrained) -> str:
    """One line for logs: which CLIP, which weights, and whether they are a random stand-in."""
    if not record:
        return f"CLIP {clip_model} with RANDOM weights (clip_pretrained={clip_pretrained!r}): no CLIP semantics"
    kind = (
        "RANDOM-CALIBRATED weights (a random network with BatchNorm calibrated on photos: no CLIP semantics)"
        if record.get("clip_weights_random_calibrated")
        else "pretrained weights"
    )
    return f"CLIP {clip_model}, {kind}: {record['clip_weights_file']} (sha256 {record['clip_weights_sha256'][:12]})"


def find_by_hash(sha256: str, folders: list[str], size: int | None = None) -> str | None:
    """A weight file in ``folders`` (not recursive) whose SHA-256 is ``sha256``; files of another
    ``size`` are skipped without hashing."""
    for folder in folders:
        if not folder or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if not (name.endswith(WEIGHT_SUFFIXES) and os.path.isfile(path)):
                continue
            if size is not None and os.path.getsize(path) != size:
                continue
            if file_sha256(path) == sha256:
                return path
    return None


def save_random_calibrated(model: torch.nn.Module, path: str, **facts) -> str:
    """Save ``model``'s weights as an open_clip checkpoint marked random-calibrated (``facts`` are
    stored beside the marker, e.g. the seed and the calibration photos). Returns ``path``."""
    marker = {"random_calibrated": True, **{k: v for k, v in facts.items() if v is not None}}
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save({"state_dict": model.state_dict(), MARKER_KEY: marker}, tmp)
    os.replace(tmp, path)
    return path


def prepare_tiny_clip(out_dir: str, clip_model: str, calibration: torch.Tensor) -> str:
    """Random weights of a tiny ``clip_model`` with BatchNorm calibrated on ``calibration``, saved to
    ``<out_dir>/<clip_model>_random_calibrated.pt`` (loaded back by path, like any weights file)."""
    import open_clip

    from sfd_arch.clip_backbone import TINY_CLIP_CONFIGS, calibrate_random_clip

    open_clip.add_model_config(TINY_CLIP_CONFIGS)
    torch.manual_seed(0)
    model = open_clip.create_model(clip_model, pretrained=None)
    calibrate_random_clip(model, calibration)
    path = os.path.join(out_dir, f"{clip_model}_random_calibrated.pt")
    torch.save(model.state_dict(), path)
    return path
