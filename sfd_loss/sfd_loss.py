"""SFD adversarial terms (Feat-D maps, TG-D logit) and a VGG perceptual loss whose VGG19 weights come
from a local file or torch hub's cache (downloaded there on first use, hash-checked as torchvision does)."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from basicsr.losses.basic_loss import PerceptualLoss
from basicsr.losses.gan_loss import GANLoss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from sfd_utils.downloads import fetch_url, torch_hub_checkpoints, torchvision_url

VGG19_FILE = "vgg19-dcbb9e9d.pth"


def _as_list(x) -> list[torch.Tensor]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


@LOSS_REGISTRY.register()
class SFDGANLoss(nn.Module):
    """GAN loss over a list of logit tensors, averaged over the list (the method: mean over layers m).

    Used for Feat-D (M per-position maps, each averaged over positions) and TG-D (one logit).

    Args:
        gan_type (str): any of BasicSR's GANLoss types: 'vanilla' (BCE, default), 'lsgan',
            'wgan', 'wgan_softplus', 'hinge'.
        loss_weight (float): weight of the generator term (the discriminator term is unweighted,
            as in BasicSR). Default: 1.0.
        relativistic (bool): ESRGAN's relativistic average GAN: real and fake logits are judged
            relative to the mean of the other. Default: False.
        feature_matching (bool): the generator term matches the discriminator's features instead of
            fooling its logits: mean over the given activations of L1(fake, real), the pair being the
            SR image and its own HR image (pix2pixHD's paired form); the discriminator term stays the
            ``gan_type`` loss. Feat-D only (SFDModel passes the heads' activations); not with
            ``relativistic``. Default: False.

    ``forward(real, fake, is_disc)``: real/fake are a tensor or list of tensors (same length);
    ``real`` may be None for the non-relativistic, non-matching generator term. With
    ``feature_matching`` the generator term takes activations, not logits. Returns a scalar tensor.
    """

    def __init__(
        self,
        gan_type: str = "vanilla",
        loss_weight: float = 1.0,
        relativistic: bool = False,
        feature_matching: bool = False,
    ) -> None:
        super().__init__()
        if relativistic and feature_matching:
            raise ValueError("SFDGANLoss: relativistic and feature_matching are two generator terms; choose one")
        self.gan = GANLoss(gan_type, loss_weight=loss_weight)
        self.relativistic = relativistic
        self.feature_matching = feature_matching
        self.loss_weight = loss_weight

    def forward(self, real, fake, is_disc: bool) -> torch.Tensor:
        reals, fakes = _as_list(real), _as_list(fake)
        if not fakes:
            raise ValueError("SFDGANLoss: no fake logits given")
        if (self.relativistic or self.feature_matching or is_disc) and len(reals) != len(fakes):
            raise ValueError(f"SFDGANLoss: {len(reals)} real vs {len(fakes)} fake logit tensors")
        terms = []
        for i, f in enumerate(fakes):
            if is_disc and self.relativistic:
                r = reals[i]
                t = self.gan(r - f.mean(), True, is_disc=True) + self.gan(f - r.mean(), False, is_disc=True)
                terms.append(t / 2)
            elif is_disc:
                terms.append(self.gan(reals[i], True, is_disc=True) + self.gan(f, False, is_disc=True))
            elif self.feature_matching:
                terms.append(F.l1_loss(f, reals[i].detach()) * self.loss_weight)
            elif self.relativistic:
                r = reals[i].detach()
                t = self.gan(r - f.mean(), False, is_disc=False) + self.gan(f - r.mean(), True, is_disc=False)
                terms.append(t / 2)
            else:
                terms.append(self.gan(f, True, is_disc=False))
        return torch.stack(terms).mean()


def find_vgg19_weights(vgg_weights: str | None) -> str:
    """VGG19 weights: the given path; else BasicSR's ``experiments/pretrained_models/`` or torch hub's
    cache, where torchvision's file is downloaded on first use (unless downloads are off)."""
    if vgg_weights:
        path = os.path.expanduser(vgg_weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"perceptual_opt.vgg_weights: VGG19 weight file {path!r} does not exist (set `vgg_weights: ~` to "
                f"use torchvision's {VGG19_FILE} from torch hub's cache, downloaded on first use)"
            )
        return path
    local = os.path.join("experiments", "pretrained_models", VGG19_FILE)
    if os.path.isfile(local):
        return local
    supply = (
        f"put torchvision's {VGG19_FILE} in {torch_hub_checkpoints()} or {local}, or set `vgg_weights: /path/to/file`"
    )
    return fetch_url(torchvision_url(VGG19_FILE), "perceptual_opt", supply)  # WeightsUnavailable: a FileNotFoundError


@LOSS_REGISTRY.register()
class SFDPerceptualLoss(PerceptualLoss):
    """BasicSR's PerceptualLoss (same options) reading VGG19 weights from a file we choose, never
    through BasicSR's own download path.

    Extra arg: vgg_weights (str | None): path to torchvision's ``vgg19-dcbb9e9d.pth``; default:
    ``experiments/pretrained_models/`` or the torch hub cache, downloaded there at start-up when
    missing. A given path that does not exist, or no file while offline, is an error at start-up.
    """

    @classmethod
    def check_options(cls, section: dict, key: str = "train.perceptual_opt") -> None:
        """Start-up check: the VGG19 file exists, or is downloaded now (offline: a one-line error)."""
        if section.get("vgg_type", "vgg19") == "vgg19":
            find_vgg19_weights(section.get("vgg_weights"))

    def __init__(self, layer_weights: dict, vgg_type: str = "vgg19", vgg_weights: str | None = None, **kwargs):
        if vgg_type != "vgg19" and vgg_weights is None:
            raise ValueError("perceptual_opt: give `vgg_weights` for vgg types other than vgg19")
        path = find_vgg19_weights(vgg_weights) if vgg_type == "vgg19" or vgg_weights else vgg_weights
        import basicsr.archs.vgg_arch as vgg_arch

        saved = vgg_arch.VGG_PRETRAIN_PATH
        vgg_arch.VGG_PRETRAIN_PATH = path  # BasicSR loads from this module-level path when it exists
        try:
            super().__init__(layer_weights, vgg_type=vgg_type, **kwargs)
        finally:
            vgg_arch.VGG_PRETRAIN_PATH = saved
