"""Independent reference maths for the "tests that bite" (docs/method.md, SFD).

Nothing here calls the code under test to compute a value: CLIP features come from open_clip's own
forward (hooks on the ResNet stages, its ``encode_image`` / ``encode_text``), the CLIP
normalisation constants are written out, prompt features are built by swapping the learnable
context into open_clip's token embeddings, and every loss is written with ``softplus``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# OpenAI CLIP normalisation (open_clip's default for configs without a preprocess_cfg, e.g. tiny-rn).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def bce_real(z: torch.Tensor) -> torch.Tensor:
    """BCE(z, 1) = -log sigmoid(z) = softplus(-z), element-wise."""
    return F.softplus(-z)


def bce_fake(z: torch.Tensor) -> torch.Tensor:
    """BCE(z, 0) = -log(1 - sigmoid(z)) = softplus(z), element-wise."""
    return F.softplus(z)


@torch.no_grad()
def clip_image(clip, img: torch.Tensor, layers=(1, 2, 3)) -> tuple[list[torch.Tensor], torch.Tensor]:
    """open_clip ResNet on (B, 3, H, W) [0, 1] images (H, W multiples of 32) ->
    (middle maps of the given stages, L2-normalised final embedding (B, D))."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    maps: dict[int, torch.Tensor] = {}
    hooks = [
        getattr(clip.visual, f"layer{i}").register_forward_hook(lambda _m, _i, out, k=i: maps.__setitem__(k, out))
        for i in layers
    ]
    try:
        emb = clip.encode_image((img - mean) / std)
    finally:
        for h in hooks:
            h.remove()
    return [maps[i] for i in layers], emb / emb.norm(dim=-1, keepdim=True)


@torch.no_grad()
def clip_prompt_features(clip, ctx: torch.Tensor, pos_words: str, neg_words: str) -> torch.Tensor:
    """(2, n_ctx, width) learnable contexts -> (2, D) normalised [t+, t-] of
    ``[SOS] ctx <words> [EOS]`` through open_clip's own ``encode_text`` (context swapped into the
    token embeddings of placeholder words)."""
    import open_clip

    n = ctx.shape[1]
    tokens = open_clip.tokenize([" ".join(["x"] * n) + " " + pos_words, " ".join(["x"] * n) + " " + neg_words])

    def swap(_m, _i, out):
        out = out.clone()
        out[:, 1 : 1 + n] = ctx.to(out.dtype)
        return out

    hook = clip.token_embedding.register_forward_hook(swap)
    try:
        return clip.encode_text(tokens, normalize=True)
    finally:
        hook.remove()


def text_logit(clip, emb: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """z = exp(logit_scale) * (<e, t+> - <e, t->) for (B, D) embeddings -> (B,)."""
    tau = clip.logit_scale.detach().exp()
    return tau * ((emb * text[0]).sum(-1) - (emb * text[1]).sum(-1))


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over every element."""
    return x.pow(2).mean().sqrt()


# -- Feat-D's normalisation of the CLIP maps (feat_norm: rms | channel), written out -------------------------
def feat_stats(feat_disc) -> tuple[str, list]:
    """The running statistics a Feat-D holds, per layer: ("rms", [r_m]) or ("channel", [(mean_m, std_m)])."""
    if feat_disc.feat_norm == "channel":
        means = feat_disc.feat_mean.detach().clone().split(feat_disc.channels)
        stds = feat_disc.feat_std.detach().clone().split(feat_disc.channels)
        return "channel", list(zip(means, stds))
    return "rms", list(feat_disc.feat_rms.detach().clone())


def stats_initialised(feat_disc) -> bool:
    """Whether a discriminator step has set the running statistics (either normalisation)."""
    flag = feat_disc.feat_stats_initialised if feat_disc.feat_norm == "channel" else feat_disc.feat_rms_initialised
    return bool(flag)


def flat_stats(feat_disc) -> torch.Tensor:
    """The running statistics of either normalisation as one tensor (a copy), to compare before / after."""
    _, per_layer = feat_stats(feat_disc)
    return torch.cat([torch.stack(v).flatten() if isinstance(v, tuple) else v.reshape(1) for v in per_layer])


def normalised(stats: tuple[str, list], m: int, x: torch.Tensor) -> torch.Tensor:
    """Layer ``m``'s map as its head sees it: x / r_m, or (x - mean_c) / std_c per channel c."""
    kind, per_layer = stats
    if kind == "rms":
        return x / per_layer[m]
    mean, std = per_layer[m]
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def stats_after_d_step(stats: tuple[str, list], initialised: bool, maps: list, momentum: float):
    """The statistics after a discriminator step that saw ``maps`` (one per layer, the whole D batch): the
    batch's own on the first step, else ``old + momentum * (new - old)``. Channel: the biased standard
    deviation over batch and positions, floored at 1 % of the layer's mean standard deviation."""
    kind, old = stats
    new = []
    for x in maps:
        if kind == "rms":
            new.append(rms(x))
            continue
        mean = x.mean(dim=(0, 2, 3))
        std = ((x - mean.view(1, -1, 1, 1)) ** 2).mean(dim=(0, 2, 3)).sqrt()
        new.append((mean, torch.maximum(std, 0.01 * std.mean())))
    if not initialised:
        return kind, new
    if kind == "rms":
        return kind, [o + momentum * (n - o) for o, n in zip(old, new)]
    return kind, [(om + momentum * (nm - om), os_ + momentum * (ns - os_)) for (om, os_), (nm, ns) in zip(old, new)]


def set_feat_stats(feat_disc, scales: list[float], seed: int = 0) -> None:
    """Running statistics far from their start, for either normalisation: RMS ``scales[m]``; or per channel
    a mean around 0 and a standard deviation of ``scales[m]`` times U(0.5, 1.5)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if feat_disc.feat_norm == "channel":
            spread = [s * (0.5 + torch.rand(c, generator=g)) for s, c in zip(scales, feat_disc.channels)]
            feat_disc.feat_std.copy_(torch.cat(spread))
            feat_disc.feat_mean.copy_(torch.randn(feat_disc.feat_mean.shape, generator=g) * 0.1)
            feat_disc.feat_stats_initialised.fill_(True)
        else:
            feat_disc.feat_rms.copy_(torch.tensor(scales))
            feat_disc.feat_rms_initialised.fill_(True)
