"""LPIPS and DISTS from their published weight files.

Both are re-implemented here with the parameter names of their reference packages, so their
published files load as they are:

- LPIPS (Zhang et al. 2018, package ``lpips`` 0.1.4, version 0.1): a torchvision AlexNet or VGG16
  trunk + the learned linear layers. Give either one full LPIPS state dict (``net.slice*`` +
  ``lin*`` keys, e.g. ``torch.save(lpips.LPIPS().state_dict())``) or the linear-layer file
  (``lpips/weights/v0.1/alex.pth`` inside the ``lpips`` package) plus the torchvision trunk
  (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``).
- DISTS (Ding et al. 2020, package ``DISTS_pytorch`` 0.1): a torchvision VGG16 trunk with L2 pooling
  + learned ``alpha``/``beta``. Give a full DISTS state dict, or ``weights.pt`` from the package
  (``alpha``, ``beta``) plus ``vgg16-397923af.pth``.

When no trunk file is given, torchvision's file is taken from torch hub's cache
(``<torch.hub.get_dir()>/checkpoints/``) and downloaded there on first use by its canonical URL,
with torchvision's hash check (unless downloads are off: ``SFD_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``).
The small learned layers come from the ``lpips`` / ``dists-pytorch`` packages or a given file.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sfd_utils.checkpoint import extract_state_dict, read_checkpoint
from sfd_utils.downloads import WeightsUnavailable, fetch_url, torch_hub_checkpoints, torchvision_url

TORCHVISION_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
# (start, end) indices of torchvision's `features` that form each LPIPS slice.
LPIPS_SLICES = {
    "alex": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
    "vgg": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)),
}
LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# VGG16 `features` stages for DISTS; the max-pool that opens stages 2-5 becomes an L2 pooling.
DISTS_STAGES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)


class WeightsNotFound(WeightsUnavailable):
    """A metric's weight file is missing; the message names the file and where it is expected."""


def _torchvision_features(net: str) -> nn.Sequential:
    """torchvision's AlexNet / VGG16 ``features`` layout (same indices), without building the classifier."""
    if net == "vgg":
        from torchvision.models.vgg import cfgs, make_layers

        return make_layers(cfgs["D"])
    relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), relu(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), relu(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), relu(),
        nn.Conv2d(384, 256, 3, padding=1), relu(),
        nn.Conv2d(256, 256, 3, padding=1), relu(), nn.MaxPool2d(3, 2),
    )  # fmt: skip


def _slices(features: nn.Sequential, bounds, replace: dict | None = None) -> nn.ModuleList:
    """Cut ``features`` into Sequentials keeping torchvision's indices as module names."""
    out = nn.ModuleList()
    for start, end in bounds:
        seq = nn.Sequential()
        for i in range(start, end):
            seq.add_module(str(i), (replace or {}).get(i, features[i]))
        out.append(seq)
    return out


def _named_slices(module: nn.Module, prefix: str, slices: nn.ModuleList) -> None:
    for k, s in enumerate(slices, 1):
        module.add_module(f"{prefix}{k}", s)


class _NetLin(nn.Module):
    """1x1 conv to one channel, wrapped as ``model.1`` like the lpips package's NetLinLayer."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance. ``forward(x, y)``: two (B, 3, H, W) RGB tensors in [0, 1] -> (B,) >= 0,
    lower = more similar (0 for identical images).

    Args:
        net (str): trunk, ``alex`` (default, the usual choice in SR papers) or ``vgg``.
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in LPIPS_SLICES:
            raise ValueError(f"LPIPS net must be one of {list(LPIPS_SLICES)}, got {net!r}")
        self.net_name = net
        self.net = nn.Module()
        _named_slices(self.net, "slice", _slices(_torchvision_features(net), LPIPS_SLICES[net]))
        for k, ch in enumerate(LPIPS_CHANNELS[net]):  # `lin<k>.model.1.weight`, as in the lpips package
            self.add_module(f"lin{k}", _NetLin(ch))
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((2 * x - 1) - self.shift) / self.scale  # [0, 1] -> [-1, 1] -> the trunk's input scaling
        feats = []
        for k in range(1, len(LPIPS_CHANNELS[self.net_name]) + 1):
            h = getattr(self.net, f"slice{k}")(h)
            feats.append(h / (h.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))  # unit length per position
        return feats

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = 0
        for k, (a, b) in enumerate(zip(self._features(x), self._features(y))):
            total = total + getattr(self, f"lin{k}")((a - b) ** 2).mean(dim=(2, 3))
        return total.flatten()


class L2Pooling(nn.Module):
    """DISTS's L2 pooling: sqrt(Hann-3x3-blur(x²)) with stride 2. (B, C, H, W) -> (B, C, ~H/2, ~W/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = np.hanning(5)[1:-1]
        g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
        self.register_buffer("filter", (g / g.sum())[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x**2, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTS(nn.Module):
    """DISTS distance. ``forward(x, y)``: two (B, 3, H, W) RGB tensors in [0, 1] -> (B,) in about [0, 1],
    lower = more similar (0 for identical images)."""

    def __init__(self) -> None:
        super().__init__()
        pools = {start: L2Pooling(ch) for (start, _), ch in zip(DISTS_STAGES[1:], DISTS_CHANNELS[1:])}
        _named_slices(self, "stage", _slices(_torchvision_features("vgg"), DISTS_STAGES, pools))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.alpha = nn.Parameter(torch.full((1, sum(DISTS_CHANNELS), 1, 1), 0.1))
        self.beta = nn.Parameter(torch.full((1, sum(DISTS_CHANNELS), 1, 1), 0.1))
        self.requires_grad_(False)
        self.eval()

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, feats = (x - self.mean) / self.std, [x]
        for k in range(1, len(DISTS_STAGES) + 1):
            h = getattr(self, f"stage{k}")(h)
            feats.append(h)
        return feats

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c1 = c2 = 1e-6
        w_sum = self.alpha.sum() + self.beta.sum()
        alpha = torch.split(self.alpha / w_sum, list(DISTS_CHANNELS), dim=1)
        beta = torch.split(self.beta / w_sum, list(DISTS_CHANNELS), dim=1)
        structure = texture = 0
        for k, (a, b) in enumerate(zip(self._features(x), self._features(y))):
            ma, mb = a.mean((2, 3), keepdim=True), b.mean((2, 3), keepdim=True)
            texture = texture + (alpha[k] * (2 * ma * mb + c1) / (ma**2 + mb**2 + c1)).sum(1, keepdim=True)
            va, vb = ((a - ma) ** 2).mean((2, 3), keepdim=True), ((b - mb) ** 2).mean((2, 3), keepdim=True)
            cov = (a * b).mean((2, 3), keepdim=True) - ma * mb
            structure = structure + (beta[k] * (2 * cov + c2) / (va + vb + c2)).sum(1, keepdim=True)
        return (1 - (texture + structure)).flatten()


# -- loading ---------------------------------------------------------------------------------------------
def packaged_file(package: str, *parts: str) -> str | None:
    """Path of a data file inside an installed package (found without importing it), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], *parts)
    return path if os.path.isfile(path) else None


def _trunk_file(given: str | None, net: str, metric: str, option: str) -> str:
    name = TORCHVISION_FILES[net]
    if given:
        if not os.path.isfile(given):
            raise WeightsNotFound(
                f"{metric}: {option} {given} does not exist (leave {option} out to use torchvision's {name} from "
                "torch hub's cache, downloaded on first use)"
            )
        return given
    expected = os.path.join(torch_hub_checkpoints(), name)
    supply = f"put {name} at {expected} or pass {option} /path/to/{name}"
    try:
        return fetch_url(torchvision_url(name), f"{metric} ({'AlexNet' if net == 'alex' else 'VGG16'} trunk)", supply)
    except WeightsUnavailable as err:
        raise WeightsNotFound(str(err)) from None


def _load_trunk(prefix: str, bounds, trunk_path: str) -> dict:
    """torchvision ``features.<i>.*`` keys -> ``<prefix><k>.<i>.*`` keys of our slices."""
    sd, _ = extract_state_dict(read_checkpoint(trunk_path))
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] != "features":
            continue  # classifier layers are not part of the metric
        i = int(parts[1])
        k = next((k for k, (start, end) in enumerate(bounds, 1) if start <= i < end), None)
        if k is not None:
            out[f"{prefix}{k}.{i}.{'.'.join(parts[2:])}"] = value
    if not out:
        raise ValueError(f"{trunk_path}: no `features.*` tensors; expected a torchvision AlexNet/VGG16 file")
    return out


def _load_strict(module: nn.Module, sd: dict, source: str) -> None:
    own = set(module.state_dict())
    # constants we recompute, and the lpips package's `lins.<k>` alias of `lin<k>`, are not loaded
    sd = {
        k: v
        for k, v in sd.items()
        if k in own or not (k.endswith(("shift", "scale", "filter", "mean", "std")) or k.startswith("lins."))
    }
    missing, unexpected = sorted(own - set(sd)), sorted(set(sd) - own)
    if missing or unexpected:
        raise ValueError(
            f"{source} does not fit {type(module).__name__}: missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}"
        )
    module.load_state_dict(sd)


def load_lpips(weights: str | None = None, trunk: str | None = None, net: str = "alex") -> LPIPS:
    """LPIPS from files (see module docstring; the trunk is downloaded on first use). ``weights`` None =
    the file the ``lpips`` package ships, when that package is installed. Raises WeightsNotFound naming
    what is missing."""
    weights = weights or packaged_file("lpips", "weights", "v0.1", f"{net}.pth")
    if not weights or not os.path.isfile(weights):
        raise WeightsNotFound(
            f"LPIPS: linear-layer weights not found{': ' + weights if weights else ''}. Pass --lpips-weights "
            f"/path/to/{net}.pth (the file `lpips/weights/v0.1/{net}.pth` of the `lpips` PyPI package: `pip install "
            "lpips`, or a full LPIPS state dict)"
        )
    sd, _ = extract_state_dict(read_checkpoint(weights))
    if not any(k.startswith("net.slice") for k in sd):  # linear layers only: add the torchvision trunk
        trunk_sd = _load_trunk("net.slice", LPIPS_SLICES[net], _trunk_file(trunk, net, "LPIPS", "--lpips-trunk"))
        sd = {**trunk_sd, **sd}
    model = LPIPS(net)
    _load_strict(model, sd, weights)
    return model


def load_dists(weights: str | None = None, trunk: str | None = None) -> DISTS:
    """DISTS from files (see module docstring; the trunk is downloaded on first use). ``weights`` None =
    ``weights.pt`` of the ``DISTS_pytorch`` package, when installed. Raises WeightsNotFound naming what
    is missing."""
    weights = weights or packaged_file("DISTS_pytorch", "weights.pt")
    if not weights or not os.path.isfile(weights):
        raise WeightsNotFound(
            f"DISTS: alpha/beta weights not found{': ' + weights if weights else ''}. Pass --dists-weights "
            "/path/to/weights.pt (shipped in the `dists-pytorch` PyPI package as DISTS_pytorch/weights.pt: `pip "
            "install dists-pytorch`, or a full DISTS state dict)"
        )
    sd, _ = extract_state_dict(read_checkpoint(weights))
    if not any(k.startswith("stage") for k in sd):  # alpha/beta only: add the torchvision trunk
        sd = {**_load_trunk("stage", DISTS_STAGES, _trunk_file(trunk, "vgg", "DISTS", "--dists-trunk")), **sd}
    model = DISTS()
    _load_strict(model, sd, weights)
    return model
