"""Start-up checks of a BasicSR options dict: every file a recipe needs must exist, and the error
names the YAML key and the path (BasicSR would fail later, deep inside). Pretrained weights that are
downloaded on first use (CLIP tags, VGG19) are fetched here, before any data is read; offline, a
missing one stops the run here in one line."""

from __future__ import annotations

import os


def _need(key: str, path) -> None:
    if path and not os.path.exists(os.path.expanduser(str(path))):
        raise FileNotFoundError(f"{key}: {path!r} does not exist")


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
    """Raise FileNotFoundError / ValueError naming the first missing file's (or non-numeric
    hyper-parameter's) YAML key."""
    _check_numbers(opt.get("train") or {})
    if datasets:
        for phase, dopt in (opt.get("datasets") or {}).items():
            for key, value in (dopt or {}).items():
                if key.startswith("dataroot") or key in ("meta_info_file", "meta_info"):
                    for i, p in enumerate(value if isinstance(value, list) else [value]):
                        suffix = f"[{i}]" if isinstance(value, list) else ""
                        _need(f"datasets.{phase}.{key}{suffix}", p)
    for key, value in (opt.get("path") or {}).items():
        if key.startswith("pretrain_network_") or key == "resume_state":
            _need(f"path.{key}", value)
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
