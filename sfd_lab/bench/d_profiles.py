"""Sizes and the stand-in generator of the D-iteration row (``sfd_lab.bench.d_iteration``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from sfd_lab.bench.profiles import PROFILES, Profile, rrdbnet


@dataclass(frozen=True)
class DProfile:
    """Sizes of the D-iteration row. ``block``: timed repeats per configuration in a row before the
    next configuration (after ``reentry`` untimed iterations); ``profile_iters``: profiler pass length."""

    name: str
    device: str
    batch: int
    size: int
    clip_models: tuple[str, ...]
    unet_feat: int = 64
    feat_mid_channels: int = 256
    n_ctx: int = 16
    amp: str | None = "bf16"
    warmup: int = 2
    repeats: int = 5
    block: int = 5
    reentry: int = 0
    profile_iters: int = 1
    max_spread: float = 0.15
    threads: int | None = None  # CPU threads (None: torch's default)
    only_sfd: bool = False  # SFDModel rows only (eager beside auto): no floor, UNet-D or SRGANModel rows


D_PROFILES = {
    # Seconds: tiny CLIP configs; checks the machinery (and counts ops of the tiny networks).
    "smoke": DProfile(
        "smoke",
        "auto",
        2,
        64,
        ("tiny-rn", "tiny-vit"),
        unet_feat=8,
        feat_mid_channels=16,
        n_ctx=4,
        amp=None,
        warmup=1,
        repeats=2,
        threads=1,
    ),
    # The real networks (random weights) at a tiny batch and crop: operators dispatched per
    # iteration do not depend on the size; times on a shared CPU are indicative only. fp32: CPU
    # autocast would cast the frozen CLIP weights on every call, which SFDModel on CUDA avoids by
    # holding them in the amp dtype (clip_dtype 'auto'), and bf16 CLIP weights under CPU autocast
    # stop at LayerNorm (mixed dtypes); so the counts are of the fp32 graph, without autocast's casts.
    # One thread: small ops on a shared machine stall in OpenMP barriers (the counts do not change).
    "cpu": DProfile("cpu", "cpu", 2, 64, ("RN50", "ViT-B-16"), amp=None, warmup=1, repeats=3, block=1, threads=1),
    # The numbers: batch 16, 256² crops, bf16 autocast.
    "gpu": DProfile(
        "gpu",
        "cuda",
        16,
        256,
        ("RN50", "ViT-B-16"),
        warmup=5,
        repeats=20,
        block=10,
        reentry=1,
        profile_iters=2,  # ~4000 launches and kernels per iteration: the profiler's parsing costs seconds
        max_spread=0.05,
    ),
    # `make gpu-decide` (one CLIP model per call): eager beside auto only, at the sizes, in
    # about half a minute per model (fewer repeats; one profiled iteration).
    "decide": DProfile(
        "decide",
        "cuda",
        16,
        256,
        ("RN50", "ViT-B-16"),
        warmup=3,
        repeats=10,
        block=5,
        reentry=1,
        profile_iters=1,
        max_spread=0.05,
        only_sfd=True,
    ),
}


class StandInGenerator(nn.Module):
    """x``scale`` bicubic upscaling times one learnable gain: the generator's place at almost no cost."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        return F.interpolate(lq, scale_factor=self.scale, mode="bicubic", align_corners=False) * self.gain


def use_stand_in(model, scale: int) -> None:
    """Replace a built model's generator (and its optimizer) by :class:`StandInGenerator`."""
    old = model.optimizer_g
    model.net_g = model.model_to_device(StandInGenerator(scale))
    model.optimizer_g = type(old)(list(model.net_g.parameters()), **old.defaults)  # same optimizer and settings
    model.optimizers[model.optimizers.index(old)] = model.optimizer_g


def bench_profile(dp: DProfile) -> Profile:
    """The benchmark Profile the model options are built from (sizes of ``dp``, no VGG loss)."""
    return replace(
        PROFILES["smoke"],
        name=dp.name,
        device=dp.device,
        batch=dp.batch,
        gt_size=dp.size,
        generator=rrdbnet(num_block=1, num_feat=4, num_grow_ch=4),  # replaced by the stand-in after build
        clip_models=dp.clip_models,
        unet_feat=dp.unet_feat,
        feat_mid_channels=dp.feat_mid_channels,
        n_ctx=dp.n_ctx,
        perceptual=False,
        amp=dp.amp,
        max_spread=dp.max_spread,
        threads=None,
    )


def resolve_d_profile(name: str, **overrides) -> DProfile:
    """The profile ``name`` ('auto': gpu with CUDA, else cpu), with ``overrides`` of its fields
    (None values ignored); raises for an unknown name or a CUDA profile without CUDA."""
    if name == "auto":
        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in D_PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {sorted(D_PROFILES)} or 'auto'")
    dp = D_PROFILES[name]
    if dp.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"profile {name!r} needs a CUDA device and none is available")
    if dp.device == "auto":
        dp = replace(dp, device="cuda" if torch.cuda.is_available() else "cpu")
    given = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    return replace(dp, **given) if given else dp
