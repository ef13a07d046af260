"""SFD discriminator: frozen CLIP + Feat-D heads + TG-D learnable prompt pair, one network_d type.

Paper: "Exploring Semantic Feature Discrimination for Perceptual Image Super-Resolution and
Opinion-Unaware No-Reference Image Quality Assessment", Dong et al., CVPR 2025.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sfd_arch.clip_backbone import (
    CLIPFeatures,
    FrozenCLIP,
    register_clip_config,
    resolve_clip_dtype,
    resolve_clip_weights,
)
from sfd_arch.clip_provenance import describe, weights_record
from sfd_arch.clip_reuse import CLIPReuse
from sfd_arch.cuda_graphs import FastPath
from sfd_arch.discriminator_options import check_options as check_network_d
from sfd_arch.discriminator_options import raise_option_error, reraise_named
from sfd_arch.feat_discriminator_arch import FeatDiscriminator
from sfd_arch.text_discriminator_arch import LearnablePromptPair
from sfd_utils.compat import basicsr_register
from sfd_utils.files import loads_json

CHECKPOINT_FORMAT = "sfd-discriminator"
CHECKPOINT_VERSION = 1
# Options that must match between a checkpoint and the network it is loaded into.
STRUCTURAL_KEYS = (
    "clip_model",
    "feat_layers",
    "feat_mid_channels",
    "feat_norm",
    "feat_head_depth",
    "feat_head_kernel",
    "n_ctx",
    "use_feat",
    "use_text",
)
# Options added after checkpoints were first written: a checkpoint without the key was trained with this
# value (the behaviour before the option existed), whatever today's default is.
LEGACY_VALUES = {"feat_head_depth": 2, "feat_head_kernel": 3, "feat_norm": "none"}  # feat_norm: 2026-11-22


class SFDLogits(NamedTuple):
    """feat: M per-position logit maps (B, 1, h_m, w_m) or []; text: (B,) TG-D logits or None;
    text_features: the (2, D) prompt features ``text`` was computed with (None without TG-D);
    feat_hidden: the Feat-D heads' activations, layer by layer (only when asked for: feature matching)."""

    feat: list[torch.Tensor]
    text: torch.Tensor | None
    text_features: torch.Tensor | None = None
    feat_hidden: list[torch.Tensor] | None = None


@basicsr_register("ARCH_REGISTRY")  # basicsr's ARCH_REGISTRY; also importable without basicsr (traiNNer)
class SFDDiscriminator(nn.Module):
    """Feat-D on CLIP middle maps and TG-D (learnable prompt pair) on the final CLIP embedding.

    Args:
        clip_model (str): open_clip model name. Default: 'RN50'.
        clip_pretrained (str | None): open_clip tag (hub cache, downloaded on first use), a local
            file, or None (random CLIP, pipeline checks only). Default: 'openai'.
        feat_layers (list[int] | None): CLIP middle layers for Feat-D (see FrozenCLIP).
        feat_mid_channels (int): Feat-D head width. Default: 256.
        feat_norm (str): 'rms' (running-RMS scaling of each middle map, see FeatDiscriminator),
            'channel' (running per-channel standardisation) or 'none'. Default: 'channel' ('rms'
            before 2026-12-07; a checkpoint records its own).
        feat_head_depth (int): k x k convs in each Feat-D head between its two 1x1 convs. Default: 2.
        feat_head_kernel (int): their (odd) kernel size k; a logit sees 1 + depth * (k - 1) map
            positions a side. Default: 3.
        n_ctx (int): learnable context tokens per prompt. Default: 16.
        pos_words / neg_words (str): class words. Default: 'high quality photo.' / 'low quality photo.'.
        ctx_init (str | None): phrase initialising the contexts. Default: None (N(0, 0.02)).
        use_feat / use_text (bool): enable Feat-D / TG-D (ablations). Default: True / True.
        clip_cache_dir (str | None): hub cache folder for tagged CLIP weights (default: the hub's).
        clip_config (str | None): open_clip config JSON (file or folder) for a custom clip_model.
        clip_input_size (int | None): run the one CLIP forward on the image resized (bicubic,
            antialiased, differentiable) so its short side is this size, e.g. 224 for RN50's native
            7x7 attention-pool grid; None: at the size given. Recorded in checkpoints (SFD-IQA
            scores the same way). Default: None.
        clip_dtype (str): dtype of the frozen CLIP weights: 'auto' (the training's amp dtype on CUDA,
            applied by SFDModel, and in any host at the first forward under CUDA autocast; float32
            otherwise), 'fp32', 'bf16' or 'fp16'. Heads and prompts stay float32. Not recorded (a
            run-time choice). Default: 'auto'.
        reuse_features (bool): in training mode, reuse within one iteration the CLIP features of an
            image already seen and the prompt features of unchanged contexts (see clip_reuse.py), so
            stock hosts that call ``net_d(img)`` per loss term run the image tower at most twice and
            the text tower once per iteration. Values and gradients are unchanged. Default: True.
        fast_path (str): 'auto' (or 'cuda_graphs'): in training mode on CUDA, the frozen CLIP image
            tower, the prompt/text path and the heads' spectral norms run as CUDA graphs (forward and
            backward; see cuda_graphs.py), eager wherever a graph cannot serve a call (CPU, eval or
            inference mode, a new shape beyond a few, ...), said once in the log; 'compile': the same
            regions through torch.compile (any device, slow first calls); 'off': eager. Values and
            gradients are eager's up to float rounding. Not recorded.
            Default: 'off' until a GPU run has checked the graphs against eager (docs/method.md).

    Every option is checked before anything is built: an unknown key or a value of the wrong kind
    stops with one line naming ``network_d.<key>`` (and the close matches of a misspelt key); errors
    of the CLIP build that concern an option (unknown model, missing weights, bad layers) are named
    the same way. In training mode ``forward(img)`` records the image size it is trained on as
    ``train_patch_size`` in the checkpoint metadata (the short side of the last training batch),
    so SFD-IQA scores on tiles of that size under any host (SFDModel sets it from the recipe).
    Table of all options: docs/options.md.

    Without TG-D (use_text false) CLIP's text tower is not kept in memory.
    Parameters are only the Feat-D heads and the prompt contexts; CLIP is hidden and frozen.
    ``forward(img)`` (B, 3, H, W) in [0, 1] returns ONE tensor so BasicSR's stock GAN models can
    use it: the M Feat-D maps nearest-resized to the finest map, then the TG-D logit broadcast to
    M more channels -> (B, 2M, h, w) (Feat-D only: (B, M, h, w); TG-D only: (B, 1)). A GAN loss
    averaged over it weighs Feat-D layers and TG-D as the method's L_feat + L_text (times 1/2).
    """

    REFUSES_UNKNOWN_OPTIONS = True  # **unknown only collects misspelt keys for a one-line error

    def __init__(
        self,
        clip_model: str = "RN50",
        clip_pretrained: str | None = "openai",
        feat_layers: list[int] | None = None,
        feat_mid_channels: int = 256,
        feat_norm: str = "channel",
        feat_head_depth: int = 2,
        feat_head_kernel: int = 3,
        n_ctx: int = 16,
        pos_words: str = "high quality photo.",
        neg_words: str = "low quality photo.",
        ctx_init: str | None = None,
        use_feat: bool = True,
        use_text: bool = True,
        clip_cache_dir: str | None = None,
        clip_config: str | None = None,
        clip_input_size: int | None = None,
        clip_dtype: str = "auto",
        reuse_features: bool = True,
        fast_path: str = "off",
        **unknown,
    ) -> None:
        super().__init__()
        names = option_names()
        given = {k: v for k, v in locals().items() if k in names}
        check_network_d({**given, **unknown}, names)  # one line naming network_d.<key>; nothing built yet
        clip_pretrained, clip_cache_dir, clip_config = (
            os.fspath(p) if isinstance(p, os.PathLike) else p for p in (clip_pretrained, clip_cache_dir, clip_config)
        )
        self.fast_path = FastPath(fast_path)
        self.clip_dtype = clip_dtype
        try:  # an error about an option ("clip_model: unknown ...") is re-raised as "network_d.clip_model: ..."
            dtype = resolve_clip_dtype(clip_dtype, None, "cpu")  # 'auto' is settled by the model (apply_clip_dtype)
            self.backbone = FrozenCLIP(
                clip_model,
                clip_pretrained,
                feat_layers,
                clip_cache_dir,
                clip_config,
                input_size=clip_input_size,
                dtype=None if dtype is torch.float32 else dtype,
                text_tower=use_text,
                follow_autocast=clip_dtype in (None, "auto"),  # stock hosts never call apply_clip_dtype
            )
            self.use_feat, self.use_text = bool(use_feat), bool(use_text)
            self.feat_disc = (
                FeatDiscriminator(
                    self.backbone.feat_channels,
                    feat_mid_channels,
                    feat_norm,
                    head_depth=feat_head_depth,
                    head_kernel=feat_head_kernel,
                )
                if use_feat
                else None
            )
            self.prompt_pair = (
                LearnablePromptPair(self.backbone, n_ctx, pos_words, neg_words, ctx_init) if use_text else None
            )
        except (ValueError, FileNotFoundError) as err:
            reraise_named(err, names, given)
            raise
        # Not a submodule, never saved: features of the current training iteration only.
        self.clip_reuse = CLIPReuse() if reuse_features else None
        for part in (self.backbone, self.feat_disc, self.prompt_pair):
            if part is not None:
                part.graphs.policy = self.fast_path
        self.config = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "clip_model": clip_model,
            "clip_pretrained": clip_pretrained,
            "clip_config": clip_config,
            "feat_layers": self.backbone.feat_layers,
            "feat_mid_channels": feat_mid_channels,
            "feat_norm": feat_norm,
            "feat_head_depth": feat_head_depth,
            "feat_head_kernel": feat_head_kernel,
            "n_ctx": self.prompt_pair.n_ctx if use_text else n_ctx,
            "pos_words": pos_words,
            "neg_words": neg_words,
            "use_feat": self.use_feat,
            "use_text": self.use_text,
            "clip_input_size": self.backbone.input_size,
        }
        # Provenance: the weights by absolute path and content hash (a relative path breaks SFD-IQA from
        # another folder; the hash finds a moved file and tells a stand-in from the real CLIP).
        record = weights_record(self.backbone.weights_path)  # resolved (and checked) once, by FrozenCLIP
        self.config.update(record)
        if record and isinstance(clip_pretrained, str) and os.path.isfile(os.path.expanduser(clip_pretrained)):
            self.config["clip_pretrained"] = record["clip_weights_file"]
        if clip_config:
            self.config["clip_config"] = os.path.abspath(clip_config)
        self.clip_description = describe(record, clip_model, clip_pretrained)

    @classmethod
    def check_options(cls, section: dict, key: str = "network_d") -> None:
        """Start-up check of a recipe's ``network_d`` section: known keys, values of the right kind, and
        the CLIP weights: tagged weights not yet cached are downloaded now (before any data is read); a
        missing file, or a tag that cannot be downloaded (offline), raises CLIPWeightsNotFound naming the
        file and how to supply it."""
        names = option_names()
        options = {k: v for k, v in section.items() if k != "type"}
        check_network_d(options, names)
        try:
            if section.get("clip_config"):
                register_clip_config(section["clip_config"])
            resolve_clip_weights(
                section.get("clip_model", "RN50"),
                section.get("clip_pretrained", "openai"),
                section.get("clip_cache_dir"),
            )
        except (ValueError, FileNotFoundError) as err:
            reraise_named(err, names, options)
            raise

    def apply_clip_dtype(self, amp_dtype: torch.dtype | None, device_type: str) -> torch.dtype:
        """Settle ``clip_dtype`` for a training that autocasts to ``amp_dtype`` (None: no amp) on
        ``device_type`` and cast the frozen CLIP weights to it; returns that dtype."""
        dtype = resolve_clip_dtype(self.clip_dtype, amp_dtype, device_type)
        self.backbone.set_weight_dtype(dtype)
        return dtype

    # -- the pieces SFDModel and SFD-IQA call ---------------------------------------------------
    def extract(self, img: torch.Tensor) -> CLIPFeatures:
        """The single CLIP forward: middle maps (for Feat-D) and embedding (only if TG-D is on)."""
        feats = self.backbone(img, embedding=self.use_text)
        if not self.use_feat:
            feats = CLIPFeatures([], feats.embedding)
        return feats

    def text_features(self) -> torch.Tensor:
        """(2, D) normalised [t+, t-] from the prompt pair (gradient reaches the contexts). In
        training mode with ``reuse_features`` the text tower runs once per version of the contexts."""
        reuse = self._active_reuse()
        if reuse is None:
            return self.prompt_pair(self.backbone)
        pair = self.prompt_pair
        return reuse.prompt_features(
            self,
            pair.ctx,
            lambda ctx: pair(self.backbone, ctx),
            pair.token_prefix,
            lambda ctx: pair.graphed_vjp(self.backbone, ctx),
        )

    def _active_reuse(self) -> CLIPReuse | None:
        return self.clip_reuse if self.training else None

    def _apply(self, fn, recurse=True):
        if getattr(self, "clip_reuse", None) is not None:
            self.clip_reuse.clear()  # cached features stay on the old device/dtype otherwise
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True):
        if not mode and getattr(self, "clip_reuse", None) is not None:
            self.clip_reuse.clear()
        return super().train(mode)

    def text_logit(self, embedding: torch.Tensor, text_features: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) normalised image embedding -> (B,) z = tau * (<e, t+> - <e, t->)."""
        t = self.text_features() if text_features is None else text_features
        sims = embedding @ t.to(embedding.dtype).t()
        return self.backbone.logit_scale * (sims[:, 0] - sims[:, 1])

    def logits(self, feats: CLIPFeatures, text_features: torch.Tensor | None = None, hidden: bool = False) -> SFDLogits:
        """Feat-D maps and TG-D logits of CLIP features; ``text_features`` (2, D): use these prompt
        features (e.g. cached from the last D step) instead of running the text tower; ``hidden``:
        also return the Feat-D heads' activations (``feat_hidden``, for feature matching)."""
        acts = [] if hidden and self.use_feat else None
        feat = self.feat_disc(feats.middle, acts) if self.use_feat else []
        if not self.use_text:
            return SFDLogits(feat, None, None, acts)
        t = self.text_features() if text_features is None else text_features
        return SFDLogits(feat, self.text_logit(feats.embedding, t), t, acts)

    def forward(self, x, mode: str = "image"):
        """mode 'image': x image batch -> one packed tensor (stock BasicSR models).
        mode 'logits': x CLIPFeatures -> SFDLogits (SFDModel; goes through DDP this way)."""
        if mode == "logits":
            return self.logits(x)
        if mode != "image":
            raise ValueError(f"SFDDiscriminator.forward: unknown mode {mode!r}")
        if self.training and isinstance(x, torch.Tensor) and x.dim() == 4:
            # what the discriminator is trained on (any host): SFD-IQA's default tile for this checkpoint
            self.config["train_patch_size"] = int(min(x.shape[-2:]))
        reuse = self._active_reuse()
        feats = self.extract(x) if reuse is None else reuse.image_features(self, x, self.extract)
        return pack_logits(self.logits(feats))

    # -- checkpoint metadata: travels inside every state_dict (also BasicSR's save_network) --------
    def get_extra_state(self) -> torch.Tensor:
        # A uint8 tensor (not a dict) so BasicSR's save_network (.cpu() on every entry) and
        # torch.load(weights_only=True) both accept it.
        return torch.tensor(list(json.dumps(self.config).encode("utf-8")), dtype=torch.uint8)

    def set_extra_state(self, state) -> None:
        meta = decode_config(state)
        wrong = {k: (meta.get(k), self.config[k]) for k in STRUCTURAL_KEYS if meta.get(k) != self.config[k]}
        if wrong:
            detail = ", ".join(f"{k}: checkpoint {a!r} vs network {b!r}" for k, (a, b) in wrong.items())
            from sfd_utils.checkpoint import CheckpointError  # a ValueError

            raise_option_error(CheckpointError(f"SFD discriminator checkpoint does not match network_d ({detail})"))
        theirs, ours = meta.get("clip_weights_sha256"), self.config.get("clip_weights_sha256")
        if theirs and ours and theirs != ours:
            logging.getLogger("basicsr").warning(
                f"SFD discriminator checkpoint was trained with CLIP weights {meta.get('clip_weights_file')} (sha256 "
                f"{theirs[:12]}), this network uses {self.config.get('clip_weights_file')} (sha256 {ours[:12]}): the "
                "heads only make sense with the CLIP they were trained with"
            )
        self.config["pos_words"], self.config["neg_words"] = meta["pos_words"], meta["neg_words"]
        if meta.get("clip_input_size") != self.config["clip_input_size"]:  # absent in older checkpoints: None
            logging.getLogger("basicsr").warning(
                f"SFD discriminator checkpoint was trained with clip_input_size {meta.get('clip_input_size')!r}; "
                f"this network uses {self.config['clip_input_size']!r}"
            )
        if meta.get("train_patch_size"):
            self.config["train_patch_size"] = int(meta["train_patch_size"])


@functools.lru_cache(maxsize=1)
def option_names() -> tuple[str, ...]:
    """The ``network_d`` options of SFDDiscriminator: its constructor's named parameters."""
    params = inspect.signature(SFDDiscriminator.__init__).parameters.values()
    return tuple(p.name for p in params if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD)


def decode_config(state) -> dict:
    """The config dict stored under ``_extra_state`` of an SFDDiscriminator state_dict."""
    try:  # bounded: a config nested thousands of levels deep is refused, not a RecursionError
        meta = loads_json(bytes(state.tolist()), "`_extra_state`", max_depth=16)
    except (AttributeError, ValueError, TypeError) as err:
        raise ValueError("not an SFD discriminator checkpoint: unreadable `_extra_state`") from err
    if not isinstance(meta, dict):
        raise ValueError("not an SFD discriminator checkpoint: `_extra_state` is not a table")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not an SFD discriminator checkpoint (format {meta.get('format')!r})")
    if meta.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(f"SFD checkpoint version {meta['version']} is newer than this sfd-basicsr")
    for key, value in LEGACY_VALUES.items():
        meta.setdefault(key, value)
    return meta


def pack_logits(logits: SFDLogits) -> torch.Tensor:
    """SFDLogits -> one tensor whose element mean weighs every Feat-D layer and TG-D equally.

    (B, 2M, h, w): channels 0..M-1 the Feat-D maps at the finest map's size (nearest), channels
    M..2M-1 the TG-D logit broadcast. Under a relativistic loss on the packed tensor
    (``x - mean(y)``, ESRGANModel) every element of head k is compared with the pooled mean
    ``sum_j w_j mean_j(y)`` (w_j = 1/(2M) per Feat-D layer, 1/2 for TG-D), not with ``mean_k(y)``.
    No stateless packing can do otherwise: ``P(x)_k - mean(P(y)) = x_k - mean_k(y)`` for all x, y
    would need P(x) to depend on y. With OpenAI CLIP the TG-D logit is tau-scaled (tau = 100), so the
    pooled mean is dominated by TG-D. tests/test_host_clip_reuse.py pins this behaviour by value.
    """
    if not logits.feat:
        return logits.text[:, None]
    size = max((m.shape[-2:] for m in logits.feat), key=lambda s: s[0] * s[1])
    maps = [m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="nearest") for m in logits.feat]
    maps = torch.cat(maps, dim=1)
    if logits.text is None:
        return maps
    return torch.cat([maps, logits.text.view(-1, 1, 1, 1).expand_as(maps)], dim=1)
