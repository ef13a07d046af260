"""Frozen CLIP backbone: one forward gives the middle feature maps and the final embedding.

Every other part of sfd-basicsr reaches CLIP through :class:`FrozenCLIP`; nothing else touches
open_clip internals. The CLIP model is *hidden* from the owning module: it is not a registered
submodule, so it never appears in ``parameters()``, ``state_dict()`` or an optimizer, and
BasicSR's GAN models (which set ``requires_grad=True`` on every parameter of ``net_d``) cannot
unfreeze it. It still follows the owner through ``.to()``, ``.cuda()``, ``.half()`` (``_apply``)
and stays in eval mode whatever ``train()`` is called with. Gradients flow through it to the
input image.

Weights: ``clip_pretrained`` is an open_clip tag (taken from the Hugging Face hub cache or
``~/.cache/clip``, else downloaded into the hub cache on first use; offline an error in seconds), a
local file, or ``None`` for random weights (see ``sfd_arch/clip_weights.py``).

The frozen weights may be held in a lower precision (``dtype``; half the memory with bf16/fp16)
while everything the owner trains stays float32: inputs are cast to the weights' dtype and outputs
back to the owner's, unless autocast is on (then autocast chooses). Without TG-D the text tower can
be dropped (``text_tower=False``). The text tower runs on the tokens up to the last end-of-text token
only: it is causal and the pooled feature is read there, so the result is the same (see
:meth:`FrozenCLIP.encode_text_embeddings`).
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sfd_arch.clip_weights import (  # noqa: F401  (re-exported: the backbone's public names)
    RANDOM_WEIGHTS,
    TINY_CLIP_CONFIGS,
    CLIPWeightsNotFound,
    _import_open_clip,
    check_clip_file,
    hf_cache_folder,
    register_clip_config,
    resolve_clip_weights,
)
from sfd_arch.cuda_graphs import GraphedRegion, RegionSlot

logger = logging.getLogger("basicsr")


class CLIPFeatures(NamedTuple):
    """Output of :meth:`FrozenCLIP.forward`.

    middle: one map per configured layer, each (B, C_m, h_m, w_m).
    embedding: (B, D) L2-normalised final image embedding, or None when not requested.
    """

    middle: list[torch.Tensor]
    embedding: torch.Tensor | None


def cat_features(*feats: CLIPFeatures) -> CLIPFeatures:
    """Concatenate several CLIPFeatures along the batch (e.g. real and fake for one D pass)."""
    middle = [torch.cat(maps, dim=0) for maps in zip(*(f.middle for f in feats))]
    embs = [f.embedding for f in feats]
    return CLIPFeatures(middle, None if any(e is None for e in embs) else torch.cat(embs, dim=0))


def detach_features(feats: CLIPFeatures) -> CLIPFeatures:
    """The same features cut from the graph (the D step reuses the G step's CLIP output)."""
    emb = None if feats.embedding is None else feats.embedding.detach()
    return CLIPFeatures([m.detach() for m in feats.middle], emb)


# Attributes of an open_clip CLIP model that make up its text tower (dropped when TG-D is off).
TEXT_TOWER = ("transformer", "token_embedding", "positional_embedding", "ln_final", "text_projection", "attn_mask")
CLIP_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_clip_dtype(option: str | None, amp_dtype: torch.dtype | None, device_type: str) -> torch.dtype:
    """The dtype the frozen CLIP weights are held in, from ``network_d.clip_dtype``.

    option: 'auto' (or None) = the training's autocast dtype on CUDA, float32 elsewhere (bf16
    convolutions are slow on CPU); 'fp32' | 'bf16' | 'fp16' = that dtype on any device.
    """
    if option in (None, "auto"):
        return amp_dtype if (amp_dtype is not None and device_type == "cuda") else torch.float32
    if option not in CLIP_DTYPES:
        raise ValueError(f"network_d.clip_dtype must be 'auto', 'fp32', 'bf16' or 'fp16', got {option!r}")
    return CLIP_DTYPES[option]


class FrozenCLIP(nn.Module):
    """Frozen open_clip model returning middle feature maps and the final image embedding.

    Args:
        clip_model (str): open_clip model name, e.g. 'RN50', 'ViT-B-16'. Default: 'RN50'.
        clip_pretrained (str | None): open_clip tag ('openai'; from the hub cache, downloaded on
            first use), a local file, or None for random weights (pipeline checks only). Default: 'openai'.
        feat_layers (list[int] | None): middle layers. ResNet: stage numbers 1-4 (default 1, 2, 3,
            strides 4/8/16); ViT: block numbers 1..depth (default the blocks at 1/3 and 2/3 depth).
        clip_cache_dir (str | None): hub cache folder for tagged weights (default: the hub's own).
        clip_config (str | None): an open_clip model-config JSON file (or a folder of them) to
            register first, so ``clip_model`` may name a custom architecture. Default: None.
        pad_mode (str): padding for sizes not divisible by the stride ('reflect' or 'replicate').
        input_size (int | None): resize every image (bicubic, antialiased, differentiable) so its
            short side is this many pixels before the forward, aspect kept; None: as given.
            Default: None.
        dtype (torch.dtype | None): dtype of the frozen weights (None: float32 as loaded). The
            owner's parameters and this module's outputs keep their own dtype. Default: None.
        text_tower (bool): keep CLIP's text tower; False drops it (less memory; text methods then
            raise). Default: True.
        follow_autocast (bool): at the first call under CUDA autocast, cast the frozen weights once
            to the autocast dtype (``clip_dtype: auto`` in every host): autocast re-casts weights that
            do not require grad on every call otherwise. Default: False.

    Input of forward: (B, 3, H, W) float RGB in [0, 1], H and W >= the network stride
    (32 for ResNets, the patch size for ViTs) after the optional resize; other sizes are padded at
    the bottom/right.
    """

    def __init__(
        self,
        clip_model: str = "RN50",
        clip_pretrained: str | None = "openai",
        feat_layers: list[int] | None = None,
        clip_cache_dir: str | None = None,
        clip_config: str | None = None,
        pad_mode: str = "reflect",
        input_size: int | None = None,
        dtype: torch.dtype | None = None,
        text_tower: bool = True,
        follow_autocast: bool = False,
    ) -> None:
        super().__init__()
        open_clip = _import_open_clip()
        if clip_config:
            register_clip_config(clip_config)
        path, kwargs = resolve_clip_weights(clip_model, clip_pretrained, clip_cache_dir)
        model = open_clip.create_model(clip_model, pretrained=path, **kwargs)
        if path is None:
            logger.warning(
                f"FrozenCLIP: {clip_model} has RANDOM weights (clip_pretrained={clip_pretrained!r}); "
                "features carry no CLIP semantics."
            )
        model.requires_grad_(False)
        model.eval()
        object.__setattr__(self, "_clip", model)  # hidden: not a submodule
        self.clip_model = clip_model
        self.clip_pretrained = clip_pretrained
        self.random_weights = path is None
        self.weights_path = path  # the resolved local file (None: random weights)
        if pad_mode not in ("reflect", "replicate"):
            raise ValueError(f"pad_mode must be 'reflect' or 'replicate', got {pad_mode!r}")
        self.pad_mode = pad_mode

        visual = model.visual
        self.is_vit = hasattr(visual, "conv1") and hasattr(visual, "class_embedding")
        if not self.is_vit and not hasattr(visual, "attnpool"):
            raise ValueError(f"clip_model: {clip_model!r} is neither a CLIP ResNet nor a CLIP ViT")
        if self.is_vit:
            depth = len(visual.transformer.resblocks)
            default = [max(1, round(depth / 3)), max(1, round(2 * depth / 3))]
            self.stride = visual.patch_size[0]
            width = visual.transformer.width
            layers = list(feat_layers) if feat_layers else default
            _check_layers(layers, range(1, depth + 1), clip_model)
            self.feat_channels = [width] * len(layers)
            self.feat_strides = [self.stride] * len(layers)
        else:
            self.stride = 32
            layers = list(feat_layers) if feat_layers else [1, 2, 3]
            _check_layers(layers, range(1, 5), clip_model)
            self.feat_channels = [getattr(visual, f"layer{i}")[-1].bn3.num_features for i in layers]
            self.feat_strides = [2 ** (i + 1) for i in layers]
        self.feat_layers = layers
        if input_size is not None and (type(input_size) is not int or input_size < self.stride):
            raise ValueError(
                f"clip_input_size: must be null or an integer >= {self.stride} for {clip_model}, got {input_size!r}"
            )
        self.input_size = input_size
        self.embed_dim = int(getattr(visual, "output_dim", 0) or model.text_projection.shape[1])
        self._logit_scale = float(model.logit_scale.detach().float().exp().item())  # before any cast
        self.has_text_tower = bool(text_tower)
        if not text_tower:
            for name in TEXT_TOWER:
                if hasattr(model, name):
                    delattr(model, name)
        self.truncate_text = True  # False: run the text tower on all context_length tokens (checks)
        self.follow_autocast = bool(follow_autocast)
        self._weight_dtype = next(model.visual.parameters()).dtype
        self.graphs = RegionSlot()  # CUDA graphs of the image tower (network_d.fast_path; set by the owner)
        self.state_epoch = 0  # bumped whenever the frozen weights move or change dtype (graphs read them)
        if dtype is not None:
            self.set_weight_dtype(dtype)
        mean = visual.preprocess_cfg["mean"] if hasattr(visual, "preprocess_cfg") else visual.image_mean
        std = visual.preprocess_cfg["std"] if hasattr(visual, "preprocess_cfg") else visual.image_std
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self._tokenizer = None
        self.num_image_forwards = 0  # counted per call (batch), to check the cost rules
        self.num_text_forwards = 0  # text-tower passes (each encodes a batch of prompts)

    # -- frozen-module plumbing ----------------------------------------------------------------
    @property
    def clip(self) -> nn.Module:
        """The hidden open_clip model (frozen, eval mode)."""
        return self._clip

    def _apply(self, fn, recurse=True):
        self._clip._apply(fn)
        self._weight_dtype = next(self._clip.visual.parameters()).dtype
        self.graphs.clear()
        self.state_epoch += 1
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True):
        super().train(mode)
        self._clip.eval()  # BatchNorm statistics and dropout of CLIP never change
        return self

    @property
    def logit_scale(self) -> float:
        """CLIP's (fixed) temperature exp(logit_scale): 100 for OpenAI weights (read in float32 at
        load time, so a bf16/fp16 copy of the weights does not round it)."""
        return self._logit_scale

    @property
    def weight_dtype(self) -> torch.dtype:
        """dtype the frozen CLIP weights are held in."""
        return self._weight_dtype

    def set_weight_dtype(self, dtype: torch.dtype) -> None:
        """Hold the frozen CLIP weights (and buffers) in ``dtype``; nothing else changes."""
        if dtype not in CLIP_DTYPES.values():
            raise ValueError(f"FrozenCLIP: weight dtype must be one of {list(CLIP_DTYPES.values())}, got {dtype}")
        self._clip.to(dtype)
        self._weight_dtype = dtype
        self.graphs.clear()
        self.state_epoch += 1

    def _follow_autocast(self, x: torch.Tensor) -> None:
        """``follow_autocast``: the first call under CUDA autocast casts the frozen weights to its dtype."""
        if not self.follow_autocast or x.device.type != "cuda" or not torch.is_autocast_enabled("cuda"):
            return
        dtype = torch.get_autocast_dtype("cuda")
        if dtype is not self._weight_dtype and dtype in CLIP_DTYPES.values():
            self.set_weight_dtype(dtype)
            logger.info(f"FrozenCLIP {self.clip_model}: frozen weights cast once to the autocast dtype {dtype}")

    def frozen_weight_info(self) -> dict:
        """Size of the hidden frozen model: {'bytes', 'numel', 'dtype', 'text_tower'} over its
        parameters and buffers (dtype a string; 'mixed' if they differ)."""
        tensors = list(self._clip.parameters()) + list(self._clip.buffers())
        dtypes = {str(t.dtype).replace("torch.", "") for t in tensors if t.is_floating_point()}
        return {
            "bytes": sum(t.numel() * t.element_size() for t in tensors),
            "numel": sum(t.numel() for t in tensors),
            "dtype": dtypes.pop() if len(dtypes) == 1 else "mixed",
            "text_tower": self.has_text_tower,
        }

    def _to_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Input cast to the weights' dtype; under autocast the tensor is left to autocast."""
        return x if torch.is_autocast_enabled(x.device.type) else x.to(self.weight_dtype)

    def _to_owner(self, x: torch.Tensor) -> torch.Tensor:
        """Output cast to the owner's dtype (that of the ``mean`` buffer); untouched under autocast."""
        return x if torch.is_autocast_enabled(x.device.type) else x.to(self.mean.dtype)

    def extra_repr(self) -> str:
        return (
            f"clip_model={self.clip_model!r}, clip_pretrained={self.clip_pretrained!r}, "
            f"feat_layers={self.feat_layers}, feat_channels={self.feat_channels}, input_size={self.input_size}, "
            f"weight_dtype={self.weight_dtype}, text_tower={self.has_text_tower}"
        )

    # -- image side ----------------------------------------------------------------------------
    def _prepare(self, img: torch.Tensor) -> torch.Tensor:
        if not isinstance(img, torch.Tensor):
            raise TypeError(f"FrozenCLIP expects a torch.Tensor, got {type(img).__name__}")
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f"FrozenCLIP expects (B, 3, H, W) RGB images, got shape {tuple(img.shape)}")
        if not img.is_floating_point():
            raise TypeError(f"FrozenCLIP expects float images in [0, 1], got dtype {img.dtype}")
        if img.shape[0] == 0:
            raise ValueError("FrozenCLIP got an empty batch (B = 0)")
        if not torch.is_autocast_enabled(img.device.type):
            img = img.to(self.mean.dtype)
        h, w = self.input_shape(*img.shape[-2:])
        if (h, w) != tuple(img.shape[-2:]):
            img = F.interpolate(img, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
        if h < self.stride or w < self.stride:
            raise ValueError(
                f"FrozenCLIP: image {h}x{w} is smaller than {self.clip_model}'s stride {self.stride}; "
                "resize it up first"
            )
        x = (img - self.mean) / self.std
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode=self.pad_mode)
        return self._to_weights(x)

    def input_shape(self, h: int, w: int) -> tuple[int, int]:
        """(h, w) of an image -> the size CLIP sees it at (before stride padding): the short side
        scaled to ``input_size`` with the aspect kept, or unchanged when input_size is None."""
        h, w, size = int(h), int(w), self.input_size
        if size is None:
            return h, w
        if h <= w:
            return size, max(size, round(w * size / h))
        return max(size, round(h * size / w)), size

    def forward(self, img: torch.Tensor, embedding: bool = True) -> CLIPFeatures:
        """img (B, 3, H, W) in [0, 1] -> CLIPFeatures(middle maps, normalised embedding)."""
        self._follow_autocast(img)
        x = self._prepare(img)
        self.num_image_forwards += 1
        region = self.graphs.get(("image", embedding), lambda policy: self._image_region(policy, embedding))
        out = None if region is None else region.run([x], module=self)
        if out is None:
            out = self._tower(x, embedding)
        n = len(self.feat_layers)
        return CLIPFeatures(list(out[:n]), out[n] if embedding else None)

    def _tower(self, x: torch.Tensor, embedding: bool) -> tuple[torch.Tensor, ...]:
        """Prepared input -> (middle maps..., normalised embedding if asked), in the owner's dtype."""
        if self.is_vit:
            middle, emb = self._forward_vit(x, embedding)
        else:
            middle, emb = self._forward_resnet(x, embedding)
        out = tuple(self._to_owner(m) for m in middle)
        return out if emb is None else (*out, F.normalize(self._to_owner(emb), dim=-1))

    def _image_region(self, policy, embedding: bool) -> GraphedRegion:
        return GraphedRegion(
            f"CLIP {self.clip_model} image tower",
            policy,
            lambda x: self._tower(x, embedding),
            lambda: (self.state_epoch,),
        )

    def _forward_resnet(self, x, embedding):
        v = self._clip.visual
        x = v.stem(x)
        middle = []
        last = 4 if embedding else max(self.feat_layers)
        for i in range(1, last + 1):
            x = getattr(v, f"layer{i}")(x)
            if i in self.feat_layers:
                middle.append(x)
        return middle, (_attention_pool(v.attnpool, x) if embedding else None)

    def _forward_vit(self, x, embedding):
        v = self._clip.visual
        x = v.conv1(x)
        b, c, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).view(1, 1, c).expand(b, 1, c)
        x = torch.cat([cls, x], dim=1) + _resize_pos_embed(v.positional_embedding, gh, gw).to(x.dtype)
        x = v.ln_pre(x)
        batch_first = getattr(v.transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)
        middle = []
        last = len(v.transformer.resblocks) if embedding else max(self.feat_layers)
        for i, block in enumerate(v.transformer.resblocks[:last], start=1):
            x = block(x, attn_mask=None)
            if i in self.feat_layers:
                tokens = x if batch_first else x.transpose(0, 1)
                middle.append(tokens[:, 1:].transpose(1, 2).reshape(b, c, gh, gw))
        if not embedding:
            return middle, None
        if not batch_first:
            x = x.transpose(0, 1)
        pooled, _ = v._pool(x)
        if v.proj is not None:
            pooled = pooled @ v.proj
        return middle, pooled

    # -- text side (frozen; used by the learnable prompt pairs) ---------------------------------
    def _text_model(self) -> nn.Module:
        """The hidden model, checked to have the standard CLIP text tower."""
        m = self._clip
        if not self.has_text_tower:
            raise RuntimeError(
                f"FrozenCLIP {self.clip_model}: the text tower was dropped (text_tower=False, i.e. network_d "
                "use_text: false); TG-D and the prompt pair need it"
            )
        if not hasattr(m, "token_embedding"):
            raise ValueError(f"{self.clip_model}: only CLIP models with the standard text tower are supported")
        return m

    @property
    def context_length(self) -> int:
        return int(self._text_model().positional_embedding.shape[0])

    @property
    def text_width(self) -> int:
        return int(self._text_model().token_embedding.weight.shape[1])

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """list of N strings -> (N, context_length) token ids on the backbone's device."""
        self._text_model()
        if self._tokenizer is None:
            open_clip = _import_open_clip()
            self._tokenizer = open_clip.get_tokenizer(self.clip_model)
        return self._tokenizer(texts).to(self.mean.device)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L) token ids -> (N, L, text_width) token embeddings in the owner's dtype (no gradient)."""
        with torch.no_grad():
            return self._text_model().token_embedding(tokens).to(self.mean.dtype)

    def encode_text_embeddings(
        self,
        embeds: torch.Tensor,
        tokens: torch.Tensor,
        truncate: bool | None = None,
        eot: tuple[int, ...] | None = None,
    ) -> torch.Tensor:
        """Text tower on given token embeddings (N, L, width) -> (N, D) L2-normalised features.

        ``tokens`` (N, L) locates the end-of-text token (highest id), as CLIP pools there; ``eot``
        (the N positions, precomputed for constant tokens) saves reading them from the device.
        Gradients flow to ``embeds`` (the learnable context vectors).

        ``truncate`` (None: ``self.truncate_text``, True by default): run the transformer on the first
        max(EOT position) + 1 tokens only (e.g. 22 of 77 with 16 context vectors). Exact for CLIP's
        causal text transformer: no kept token attends to a later one, the pooled token is kept, and
        LayerNorm and the MLP act per token. A model without a causal mask always runs in full.
        """
        self._follow_autocast(embeds)
        self.num_text_forwards += 1
        return self.text_tower(embeds, tokens, truncate, eot)

    def text_tower(
        self, embeds: torch.Tensor, tokens: torch.Tensor, truncate: bool | None = None, eot: tuple | None = None
    ) -> torch.Tensor:
        """:meth:`encode_text_embeddings` without counting the pass (graphed regions call it)."""
        m = self._text_model()
        eot = eot_positions(tokens) if eot is None else tuple(eot)
        truncate = self.truncate_text if truncate is None else truncate
        n = max(eot) + 1 if truncate and m.attn_mask is not None else embeds.shape[1]
        mask = None if m.attn_mask is None else m.attn_mask[:n, :n]
        x = self._to_weights(embeds[:, :n])
        x = x + m.positional_embedding[:n].to(x.dtype)
        x = m.transformer(x, attn_mask=mask)
        x = m.ln_final(x)
        x = torch.stack([x[i, p] for i, p in enumerate(eot)])  # the pooled (end-of-text) token of each prompt
        x = m.text_projection(x) if isinstance(m.text_projection, nn.Linear) else x @ m.text_projection
        return F.normalize(self._to_owner(x), dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """list of N strings -> (N, D) L2-normalised text features."""
        tokens = self.tokenize(texts)
        return self.encode_text_embeddings(self.embed_tokens(tokens), tokens)


def eot_positions(tokens: torch.Tensor) -> tuple[int, ...]:
    """(N, L) token ids -> the N end-of-text positions (the highest id of each row), read once."""
    return tuple(int(i) for i in tokens.argmax(dim=-1).tolist())


def _check_layers(layers, valid, clip_model):
    bad = [i for i in layers if i not in valid]
    if bad or not layers:
        raise ValueError(f"feat_layers: {layers} invalid for {clip_model}; choose from {list(valid)}")


def _resize_pos_embed(pos: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """(1 + g*g, C) positional embedding -> (1 + gh*gw, C), bicubic on the grid part."""
    n = pos.shape[0] - 1
    g = int(math.isqrt(n))
    if g * g != n:
        raise ValueError(f"positional embedding of {n} tokens is not a square grid")
    if (gh, gw) == (g, g):
        return pos
    grid = pos[1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(gh, gw), mode="bicubic", align_corners=False).to(pos.dtype)
    return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(gh * gw, -1)], dim=0)


def _attention_pool(pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CLIP ResNet attention pooling at any feature size (positional embedding interpolated)."""
    b, c, h, w = x.shape
    x = x.flatten(2).permute(2, 0, 1)  # (HW, B, C)
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
    x = x + _resize_pos_embed(pool.positional_embedding, h, w)[:, None, :].to(x.dtype)
    out, _ = F.multi_head_attention_forward(
        query=x[:1],
        key=x,
        value=x,
        embed_dim_to_check=c,
        num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight,
        k_proj_weight=pool.k_proj.weight,
        v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None,
        bias_v=None,
        add_zero_attn=False,
        dropout_p=0.0,
        out_proj_weight=pool.c_proj.weight,
        out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True,
        training=False,
        need_weights=False,
    )
    return out[0]


@torch.no_grad()
def calibrate_random_clip(model: nn.Module, images: torch.Tensor, batch_size: int = 8) -> nn.Module:
    """Make a *randomly initialised* open_clip ResNet usable as a stand-in for trained weights.

    open_clip zero-initialises the last BatchNorm of every residual branch and keeps unit running
    statistics, so random features are tiny and the attention pool sees mostly its positional
    embedding. This sets those BN weights to one and recomputes every BatchNorm's running statistics
    on ``images`` ((N, 3, H, W) in [0, 1], CLIP-normalised here), giving O(1) features. Only for
    demos and tests without real weights; a no-op for ViTs (no BatchNorm).
    """
    bns = [m for m in model.visual.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return model
    weight = next(model.visual.parameters())  # calibrate where and in the dtype the model is held
    images = images.to(weight.device)
    mean = torch.tensor(model.visual.preprocess_cfg["mean"], device=weight.device).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.preprocess_cfg["std"], device=weight.device).view(1, 3, 1, 1)
    for bn in bns:
        if bool((bn.weight == 0).all()):
            bn.weight.fill_(1.0)
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    was_training = model.training
    model.visual.train()
    for i in range(0, len(images), batch_size):
        x = model.visual.stem(((images[i : i + batch_size] - mean) / std).to(weight.dtype))
        for stage in (model.visual.layer1, model.visual.layer2, model.visual.layer3, model.visual.layer4):
            x = stage(x)  # BatchNorms only: the attention pool is skipped (any input size works)
    for bn in bns:
        bn.momentum = 0.1
    model.train(was_training)
    return model
