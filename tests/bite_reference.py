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
