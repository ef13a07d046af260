"""Start-up checks of a BasicSR options dict: every file a recipe needs must exist and be what it is
read as, and the error names the YAML key and the path (BasicSR would fail later, deep inside, or read
``/dev/zero`` until memory runs out). Pretrained weights that are downloaded on first use (CLIP tags,
VGG19) are fetched here, before any data is read; offline, a missing one stops the run here in one
line.

- data folders (``dataroot_*``): an existing folder (an ``.lmdb`` folder for the lmdb backend);
- meta-info files (``meta_info_file``, ``meta_info``): a regular file of at most 64 MiB, checked
  before it is read;
- pretrained networks (``path.pretrain_network_*``) and ``path.resume_state``: a regular, non-empty file
  of at most 16 GiB; pretrained networks also load weights-only (no pickled code runs);
- any other string of the recipe that names an existing device, pipe or socket (``/dev/zero``) is
  refused too: no option reads one.
"""

from __future__ import annotations

import os
import stat

MAX_META_INFO_BYTES = 64 << 20
MAX_WEIGHTS_BYTES = 16 << 30
KINDS = {"folder": "a folder", "file": "a file"}


def _stat(key: str, path: str):
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{key}: {path!r} does not exist") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{key}: {path!r} cannot be read ({getattr(err, 'strerror', None) or err})") from None


def _need(key: str, path, kind: str | None = None, limit: int | None = None) -> None:
    """``path`` (``~`` expanded) must exist and be ``kind`` ('folder', 'file' or None: either), a
    regular file of at most ``limit`` bytes when it is a file."""
    if not path:
        return
    if not isinstance(path, str):
        raise ValueError(f"{key}: expected a path, got {path!r}")
    if "\x00" in path:
        raise ValueError(f"{key}: the path holds a NUL character")
    full = os.path.expanduser(path)
    info = _stat(key, full)
    is_dir, is_file = stat.S_ISDIR(info.st_mode), stat.S_ISREG(info.st_mode)
    if not (is_dir or is_file):
        raise ValueError(f"{key}: {path!r} is a device, pipe or socket, not {KINDS.get(kind, 'a file or folder')}")
    if kind == "folder" and not is_dir:
        raise ValueError(f"{key}: {path!r} is a file; expected a folder")
    if kind == "file" and not is_file:
        raise ValueError(f"{key}: {path!r} is a folder; expected a file")
    if is_file and limit is not None:
        if info.st_size > limit:
            raise ValueError(f"{key}: {path!r} has {info.st_size} bytes; the limit is {limit} bytes")
        if info.st_size == 0:
            raise ValueError(f"{key}: {path!r} is empty (0 bytes)")


def _loadable(key: str, path: str) -> None:
    """Pretrained weights load weights-only (a pickle that would run code, a truncated or foreign file
    is refused here, naming the key, instead of deep inside the model's constructor)."""
    from sfd_utils.checkpoint import readable_checkpoint_problem

    full = os.path.expanduser(path)
    info = os.stat(full)
    seen = (os.path.abspath(full), info.st_size, info.st_mtime_ns)
    if seen in _LOADABLE:  # checked already (the launcher, then the model's constructor)
        return
    problem = readable_checkpoint_problem(full)
    if problem:
        raise ValueError(f"{key}: {path!r} is {problem}")
    _LOADABLE.add(seen)


_LOADABLE: set[tuple] = set()


def _refuse_special_files(node, key: str = "") -> None:
    """No recipe option reads a device, pipe or socket: refuse any string naming one."""
    if isinstance(node, dict):
        for k, v in node.items():
            _refuse_special_files(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _refuse_special_files(v, f"{key}[{i}]")
    elif isinstance(node, str) and 0 < len(node) < 4096 and "\x00" not in node and os.sep in node:
        try:
            mode = os.stat(os.path.expanduser(node)).st_mode
        except (OSError, ValueError):
            return
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise ValueError(f"{key}: {node!r} is a device, pipe or socket; no option reads one")


_NUMERIC = ("lr", "weight_decay", "eps", "loss_weight", "ema_decay", "gamma")


def _check_numbers(train: dict) -> None:
    """YAML reads ``1e-3`` (no dot) and BasicSR's ``--force_yml key=1e-3`` as strings; PyTorch then
    fails deep inside an optimizer. Name the key instead."""

    def bad(key: str, value) -> None:
        if isinstance(value, str):
            raise ValueError(
                f"{key}: {value!r} is a string, not a number; write it with a dot (0.001, 1.0e-3) or as "
                f"`!!float {value}` in YAML"
            )

    for name, sub in train.items():
        if name in _NUMERIC:
            bad(f"train.{name}", sub)
        elif isinstance(sub, dict):
            for key in _NUMERIC:
                if key in sub:
                    bad(f"train.{name}.{key}", sub[key])


def check_options(opt: dict, datasets: bool = True) -> None:
    """Raise FileNotFoundError / ValueError naming the first missing or unfit file's (or non-numeric
    hyper-parameter's) YAML key (see the module doc)."""
    _check_numbers(opt.get("train") or {})
    if datasets:
        for phase, dopt in (opt.get("datasets") or {}).items():
            for key, value in (dopt or {}).items():
                if key.startswith("dataroot") or key in ("meta_info_file", "meta_info"):
                    kind, limit = ("folder", None) if key.startswith("dataroot") else ("file", MAX_META_INFO_BYTES)
                    for i, p in enumerate(value if isinstance(value, list) else [value]):
                        suffix = f"[{i}]" if isinstance(value, list) else ""
                        _need(f"datasets.{phase}.{key}{suffix}", p, kind, limit)
    for key, value in (opt.get("path") or {}).items():
        if key.startswith("pretrain_network_") or key == "resume_state":
            _need(f"path.{key}", value, "file", MAX_WEIGHTS_BYTES)
        if (key.startswith("pretrain_network_") or key == "resume_state") and value:
            _loadable(f"path.{key}", value)
    _refuse_special_files(opt)
    _check_registered_components(opt)
    percep = (opt.get("train") or {}).get("perceptual_opt") or {}
    if percep.get("type") == "PerceptualLoss":
        _fetch_basicsr_vgg(percep.get("vgg_type", "vgg19"))


def _fetch_basicsr_vgg(vgg_type: str) -> None:
    """BasicSR's own PerceptualLoss loads ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` when it
    exists, else torchvision's weights from torch hub's cache, downloading them there. Fetch that file
    now, so a missing one is downloaded before the run starts, or (offline) stops it in one line."""
    import basicsr.archs.vgg_arch as vgg_arch

    if os.path.isfile(vgg_arch.VGG_PRETRAIN_PATH):
        return
    from torchvision.models import get_model_weights

    from sfd_utils.downloads import fetch_url, torch_hub_checkpoints, torchvision_url

    name = os.path.basename(get_model_weights(vgg_type).IMAGENET1K_V1.url)
    supply = (
        f"put torchvision's {name} in {torch_hub_checkpoints()}"
        f"{' or ' + vgg_arch.VGG_PRETRAIN_PATH if vgg_type == 'vgg19' else ''}, or use type SFDPerceptualLoss "
        "with `vgg_weights: /path/to/file`"
    )
    fetch_url(torchvision_url(name), "train.perceptual_opt", supply)


def _check_registered_components(opt: dict) -> None:
    """Let each registered network and loss of the recipe check its own files: a class in BasicSR's
    ARCH_REGISTRY / LOSS_REGISTRY with a ``check_options(section, key)`` classmethod is called with its
    YAML section (e.g. SFDDiscriminator looks for its CLIP weights, SFDPerceptualLoss for VGG19).
    Dispatching through the registries keeps this module free of imports from the component packages."""
    from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY

    sections = [(f"{k}", v, ARCH_REGISTRY) for k, v in opt.items() if k.startswith("network_")]
    sections += [(f"train.{k}", v, LOSS_REGISTRY) for k, v in (opt.get("train") or {}).items() if k.endswith("_opt")]
    for key, section, registry in sections:
        name = section.get("type") if isinstance(section, dict) else None
        if isinstance(name, str) and name in registry:
            check = getattr(registry.get(name), "check_options", None)
            if callable(check):
                check(section, key)
