"""Reuse of CLIP features within one training iteration when a host calls ``net_d(img)`` per image.

Stock GAN hosts call the discriminator once per image and loss term: BasicSR's SRGANModel,
Real-ESRGAN's RealESRGANModel and traiNNer-redux's SRModel 3 times per iteration, BasicSR's
ESRGANModel 5 times, always on just two distinct images: the HR batch and the generator output
(which the D step passes again, detached, cloned, or as it is). CLIP is frozen, so an image's CLIP
features do not depend on anything the iteration changes. :class:`CLIPReuse` keeps, for the
length of one iteration, the features of every image the discriminator has seen and serves them
again, so the image tower runs at most twice and the text tower once per iteration in every host.

Which image is "the same" (never stale):
    a request matches an entry when the autocast state, shape, strides, dtype and device agree and
    either (a) it is an alias of the same memory (same data pointer) and the version counter PyTorch
    bumps on every in-place write (the check autograd uses for saved tensors) is unchanged, or
    (b) its values are equal (``torch.equal``; Real-ESRGAN passes ``output.detach().clone()``).
    The entry holds a detached alias of the image, so that memory cannot be reused by a new batch
    while the entry lives; an entry whose image or cached features were written in place is dropped.
    Inference tensors (no version counter) and ``inference_mode`` are never cached.

Gradients are those of the stock host:
    a request whose image does not require grad (HR, ``output.detach()``) gets the cached features,
    detached; a request whose image requires grad gets the cached values through a function whose
    backward recomputes CLIP on that image (the host's first pass on it is served its own graph;
    ESRGANModel's second pass on ``output`` is detached by the host, so the replay never runs).
    Prompt features: one text-tower pass per prompt version (the context's version counter), built
    on a detached copy of the contexts; where the host needs their gradient (D step) the served
    features route it back to the contexts through that one graph, once per backward.

Memory is never held across iterations: everything is dropped when an optimizer holding a
discriminator parameter steps (a global optimizer post-step hook), when a discriminator parameter
changes otherwise (version counters), when a new generator step begins (the discriminator goes
from trainable back to frozen, e.g. under gradient accumulation), on ``eval()``/``.to()``, and
the oldest image entry goes beyond ``max_entries``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.optim.optimizer import register_optimizer_step_post_hook

from sfd_arch.clip_backbone import CLIPFeatures


def _autocast_state(device_type: str) -> tuple:
    if not torch.is_autocast_enabled(device_type):
        return (False, None)
    return (True, torch.get_autocast_dtype(device_type))


def _flat(feats: CLIPFeatures) -> list[torch.Tensor]:
    return [*feats.middle, *([] if feats.embedding is None else [feats.embedding])]


def _unflat(tensors, n_middle: int, has_embedding: bool) -> CLIPFeatures:
    tensors = list(tensors)
    return CLIPFeatures(tensors[:n_middle], tensors[n_middle] if has_embedding else None)


@dataclass
class _ImageEntry:
    ref: torch.Tensor  # detached alias of the image: keeps its memory alive, shares its version counter
    version: int
    autocast: tuple
    feats: CLIPFeatures  # detached
    feat_versions: tuple[int, ...]

    def valid(self) -> bool:
        return self.ref._version == self.version and self.feat_versions == tuple(t._version for t in _flat(self.feats))

    def matches(self, img: torch.Tensor, autocast: tuple) -> bool:
        ref = self.ref
        if autocast != self.autocast or img.shape != ref.shape or img.dtype != ref.dtype:
            return False
        if img.device != ref.device or img.stride() != ref.stride():
            return False
        if img.data_ptr() == ref.data_ptr() and img._version == self.version:
            return True
        return bool(torch.equal(img, ref))


@dataclass
class _TextEntry:
    key: tuple
    value: torch.Tensor  # (2, D) prompt features, detached
    graph: torch.Tensor | None  # the same features with a graph to ``leaf`` (None if built without grad)
    leaf: torch.Tensor | None  # detached copy of the contexts the graph starts from
    vjp: Callable | None = None  # contexts' gradient from the CUDA-graphed text path (no autograd pass)


class _ReplayImageGrad(torch.autograd.Function):
    """Cached CLIP features for an image that requires grad; backward recomputes CLIP on it."""

    @staticmethod
    def forward(fctx, extract, n_middle, has_embedding, img, *feats):
        fctx.extract, fctx.layout = extract, (n_middle, has_embedding)
        fctx.autocast = _autocast_state(img.device.type)
        fctx.save_for_backward(img)
        fctx.set_materialize_grads(False)
        return tuple(f.view_as(f) for f in feats)

    @staticmethod
    def backward(fctx, *grads):
        (img,) = fctx.saved_tensors
        create_graph = torch.is_grad_enabled()  # the engine runs backward in grad mode iff create_graph
        enabled, dtype = fctx.autocast
        with torch.enable_grad(), torch.autocast(img.device.type, dtype=dtype, enabled=enabled):
            x = img.detach().requires_grad_(True)
            outs = _flat(fctx.extract(x))
        pairs = [(o, g) for o, g in zip(outs, grads) if g is not None]
        outs, grads_in = [o for o, _ in pairs], [g for _, g in pairs]
        grad_img = None
        if pairs and create_graph:  # a gradient penalty: keep the result differentiable in the heads
            (grad_img,) = torch.autograd.grad(outs, x, grads_in, create_graph=True)
        elif pairs:
            grad_img = _backward_to(x, outs, grads_in, retain_graph=False)
        return (None, None, None, grad_img, *([None] * len(grads)))


def _backward_to(leaf: torch.Tensor, outputs: list, grads: list, retain_graph: bool) -> torch.Tensor:
    """d(outputs . grads)/d(leaf) by a nested backward into ``leaf.grad`` (``autograd.grad`` would
    trip torch's module-tracker hooks, e.g. under FlopCounterMode, on the leaf of a module input)."""
    leaf.grad = None
    torch.autograd.backward(outputs, grads, retain_graph=retain_graph, inputs=[leaf])
    grad, leaf.grad = leaf.grad, None
    return grad


class _RoutePromptGrad(torch.autograd.Function):
    """Cached prompt features; backward sends their gradient to the contexts through the cached graph."""

    @staticmethod
    def forward(fctx, ctx_param, value, entry):
        fctx.entry = entry
        return value.clone()

    @staticmethod
    @once_differentiable
    def backward(fctx, grad):
        entry = fctx.entry
        if entry.vjp is not None:
            return entry.vjp(grad), None, None
        return _backward_to(entry.leaf, [entry.graph], [grad], retain_graph=True), None, None


class CLIPReuse:
    """Per-iteration cache of CLIP image and prompt features for one SFD discriminator.

    Args:
        max_entries (int): image entries kept at most (oldest dropped first). Default: 4.

    Every request names the discriminator (``owner``) whose parameters define the iteration's
    lifetime. A copy or unpickled copy of the owner starts with an empty cache.
    """

    def __init__(self, max_entries: int = 4) -> None:
        self._owner = None
        self.max_entries = max_entries
        self._images: list[_ImageEntry] = []
        self._text: _TextEntry | None = None
        self._param_versions: tuple[int, ...] | None = None
        self._trainable: bool | None = None
        self._hook = None
        self.hits = 0  # image requests served from the cache (benchmark and tests)

    # -- lifetime ---------------------------------------------------------------------------------
    def __deepcopy__(self, memo) -> CLIPReuse:  # features and graphs are never copied
        return CLIPReuse(self.max_entries)

    def __getstate__(self) -> dict:
        return {"max_entries": self.max_entries}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_entries"])

    @property
    def empty(self) -> bool:
        return not self._images and self._text is None

    def clear(self) -> None:
        """Drop every cached feature (and the graphs they hold)."""
        self._images.clear()
        self._text = None
        self._param_versions = None

    def _params(self) -> list[nn.Parameter]:
        owner = None if self._owner is None else self._owner()
        return [] if owner is None else list(owner.parameters())

    def _check_lifetime(self, owner: nn.Module) -> None:
        if self._owner is None or self._owner() is not owner:
            self.clear()
            self._owner = weakref.ref(owner)
        params = list(owner.parameters())
        trainable = any(p.requires_grad for p in params)
        if self._trainable and not trainable:
            self.clear()  # a new generator step: the previous iteration is over
        self._trainable = trainable
        versions = tuple(p._version for p in params)
        if versions != self._param_versions:
            self.clear()  # a parameter changed (optimizer step, load_state_dict, manual update)
            self._param_versions = versions
        if self._hook is None:
            self._hook = register_optimizer_step_post_hook(_make_step_hook(self))
            weakref.finalize(self, self._hook.remove)

    def _on_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.empty:
            return
        mine = {id(p) for p in self._params()}
        if any(id(p) in mine for group in optimizer.param_groups for p in group["params"]):
            self.clear()

    # -- image tower -------------------------------------------------------------------------------
    def image_features(
        self, owner: nn.Module, img: torch.Tensor, extract: Callable[[torch.Tensor], CLIPFeatures]
    ) -> CLIPFeatures:
        """CLIP features of ``img`` (B, 3, H, W) in [0, 1]: cached when this iteration saw the same
        image, else ``extract(img)`` (cached for the rest of the iteration)."""
        if not isinstance(img, torch.Tensor) or img.is_inference() or torch.is_inference_mode_enabled():
            return extract(img)
        self._check_lifetime(owner)
        autocast = _autocast_state(img.device.type)
        self._images = [e for e in self._images if e.valid()]
        entry = next((e for e in self._images if e.matches(img, autocast)), None)
        if entry is None:
            feats = extract(img)
            detached = CLIPFeatures([m.detach() for m in feats.middle], _detach(feats.embedding))
            versions = tuple(t._version for t in _flat(detached))
            self._images.append(_ImageEntry(img.detach(), img._version, autocast, detached, versions))
            del self._images[: -self.max_entries]
            return feats
        self.hits += 1
        if not (torch.is_grad_enabled() and img.requires_grad):
            return entry.feats
        n, has_emb = len(entry.feats.middle), entry.feats.embedding is not None
        outs = _ReplayImageGrad.apply(extract, n, has_emb, img, *_flat(entry.feats))
        return _unflat(outs, n, has_emb)

    # -- text tower --------------------------------------------------------------------------------
    def prompt_features(
        self,
        owner: nn.Module,
        ctx_param: torch.Tensor,
        encode: Callable[[torch.Tensor], torch.Tensor],
        anchor: torch.Tensor,
        encode_vjp: Callable[[torch.Tensor], tuple | None] | None = None,
    ) -> torch.Tensor:
        """(2, D) prompt features ``encode(ctx)`` for the contexts ``ctx_param``; the text tower runs
        once per version of the contexts. ``anchor``: a constant buffer of the prompt (its data
        pointer follows ``.to()``). Gradient reaches ``ctx_param`` when it requires grad.
        ``encode_vjp(ctx)``: (features, vjp) from a graphed text path, or None (then ``encode``)."""
        if torch.is_inference_mode_enabled():
            return encode(ctx_param)
        self._check_lifetime(owner)
        device_type = ctx_param.device.type
        key = (id(ctx_param), ctx_param.data_ptr(), ctx_param._version, ctx_param.dtype)
        key += (anchor.data_ptr(), anchor._version, anchor.dtype, _autocast_state(device_type))
        needs_grad = torch.is_grad_enabled() and ctx_param.requires_grad
        entry = self._text
        if entry is None or entry.key != key or (needs_grad and entry.graph is None and entry.vjp is None):
            graphed = encode_vjp(ctx_param.detach()) if encode_vjp is not None and torch.is_grad_enabled() else None
            if graphed is not None:
                entry = _TextEntry(key, graphed[0], None, None, graphed[1])
            elif torch.is_grad_enabled():
                leaf = ctx_param.detach().requires_grad_(True)
                graph = encode(leaf)
                entry = _TextEntry(key, graph.detach(), graph, leaf)
            else:
                entry = _TextEntry(key, encode(ctx_param.detach()), None, None)
            self._text = entry
        if not needs_grad:
            return entry.value
        return _RoutePromptGrad.apply(ctx_param, entry.value, entry)


def _detach(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()


def _make_step_hook(reuse: CLIPReuse):
    ref = weakref.ref(reuse)

    def hook(optimizer, args, kwargs) -> None:
        target = ref()
        if target is not None:
            target._on_optimizer_step(optimizer)

    return hook
