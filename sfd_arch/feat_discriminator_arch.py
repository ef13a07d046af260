"""Feat-D: pixel-wise discriminator heads on CLIP's middle feature maps (SFD, CVPR 2025)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from sfd_arch.cuda_graphs import GraphedRegion, RegionSlot, autocast_state

FEAT_NORMS = ("rms", "channel", "none")


class FeatDiscriminatorHead(nn.Module):
    """One Feat-D head, spectral-normalised: 1x1 (C -> mid), ``depth`` k x k convs (mid -> mid), 1x1
    (mid -> 1), LeakyReLU 0.2 after every conv but the last.

    Args:
        in_channels (int): channels of the CLIP middle map it judges.
        mid_channels (int): width of the head. Default: 256.
        depth (int): number of k x k convs between the two 1x1 convs. Default: 2.
        kernel (int): their (odd) kernel size k. Default: 3.

    Input (B, C, h, w) CLIP map -> output (B, 1, h, w) per-position real/fake logits. Each logit sees
    ``1 + depth * (kernel - 1)`` map positions a side (the default: 5; depth 0 or kernel 1: one).
    """

    def __init__(self, in_channels: int, mid_channels: int = 256, depth: int = 2, kernel: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            spectral_norm(nn.Conv2d(in_channels, mid_channels, 1)),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(depth):
            layers += [
                spectral_norm(nn.Conv2d(mid_channels, mid_channels, kernel, padding=kernel // 2)),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(spectral_norm(nn.Conv2d(mid_channels, 1, 1)))
        self.body = nn.Sequential(*layers)

    def convs(self) -> list[nn.Conv2d]:
        return [m for m in self.body if isinstance(m, nn.Conv2d)]

    def forward(
        self,
        feat: torch.Tensor,
        weights: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        hidden: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``weights``: the (spectral-normalised weight, bias) pair of every conv computed already (the
        graphed path of :class:`FeatDiscriminator`); None: each conv normalises its own. ``hidden``: a
        list that receives the activation after every LeakyReLU (feature matching)."""
        if weights is None and hidden is None:
            return self.body(feat)
        x, ws = feat, None if weights is None else iter(weights)
        for m in self.body:
            if isinstance(m, nn.Conv2d) and ws is not None:
                w, b = next(ws)
                x = F.conv2d(x, w, b, m.stride, m.padding, m.dilation, m.groups)
            else:
                x = m(x)
            if hidden is not None and isinstance(m, nn.LeakyReLU):
                hidden.append(x)
        return x


class FeatDiscriminator(nn.Module):
    """Feat-D: one :class:`FeatDiscriminatorHead` per configured CLIP middle layer.

    Args:
        in_channels (list[int]): channels of each middle map (``FrozenCLIP.feat_channels``).
        mid_channels (int): head width. Default: 256.
        feat_norm (str): how each layer's map is scaled before its head, by running statistics kept in
            buffers saved with the heads and updated only in the discriminator step (see
            :meth:`_updates_rms`): 'rms' divides the map by the running RMS of that layer;
            'channel' standardises every channel by its running mean and standard deviation;
            'none' feeds maps as they are. Spectral-normalised heads cannot amplify, so without a
            scaling their logits scale with the backbone's feature magnitude, which differs by orders
            between CLIP models. Default: 'channel' (the Feat-D design study of 2026-12-07; 'rms'
            before it: a checkpoint of the other form is refused by name, see
            :meth:`_load_from_state_dict`).
        momentum (float): update rate of the running statistics. Default: 0.01.
        head_depth / head_kernel (int): k x k convs per head and k (see FeatDiscriminatorHead).
            Default: 2 / 3.

    Input: list of M maps (B, C_m, h_m, w_m) -> list of M logit maps (B, 1, h_m, w_m).
    """

    def __init__(
        self,
        in_channels: list[int],
        mid_channels: int = 256,
        feat_norm: str = "channel",
        momentum: float = 0.01,
        head_depth: int = 2,
        head_kernel: int = 3,
    ) -> None:
        super().__init__()
        if feat_norm not in FEAT_NORMS:
            raise ValueError(f"feat_norm must be one of {', '.join(FEAT_NORMS)}, got {feat_norm!r}")
        if head_depth < 0 or head_kernel < 1 or head_kernel % 2 == 0:
            raise ValueError(f"head_depth must be >= 0 and head_kernel odd, got {head_depth} / {head_kernel}")
        self.heads = nn.ModuleList(FeatDiscriminatorHead(c, mid_channels, head_depth, head_kernel) for c in in_channels)
        self.feat_norm, self.momentum, self.channels = feat_norm, momentum, list(in_channels)
        if feat_norm == "channel":  # per channel of every layer, concatenated in layer order
            self.register_buffer("feat_mean", torch.zeros(sum(in_channels)))
            self.register_buffer("feat_std", torch.ones(sum(in_channels)))
            self.register_buffer("feat_stats_initialised", torch.zeros((), dtype=torch.bool))
        else:  # 'none' keeps the (unused) buffers: checkpoints of either form have the same keys
            self.register_buffer("feat_rms", torch.ones(len(in_channels)))
            self.register_buffer("feat_rms_initialised", torch.zeros((), dtype=torch.bool))
        self.graphs = RegionSlot()  # CUDA graph of the spectral norms of all head convs (network_d.fast_path)
        self._eval_weights: tuple | None = None  # (key, weights) for no-grad eval passes (validation, SFD-IQA)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A Feat-D of the other normalisation holds other running statistics (``feat_rms`` or
        ``feat_mean``/``feat_std``): refused by name even by a non-strict load, which would otherwise
        keep the heads and start the statistics afresh, judging maps on a scale they never saw."""
        ours = "channel" if self.feat_norm == "channel" else "rms"
        has = {"rms": f"{prefix}feat_rms" in state_dict, "channel": f"{prefix}feat_mean" in state_dict}
        theirs = [k for k, present in has.items() if present]
        if theirs and ours not in theirs:
            form = "feat_norm: channel" if theirs == ["channel"] else "feat_norm: rms (or none)"
            where = f" ({prefix.rstrip('.')})" if prefix else ""
            raise ValueError(
                f"Feat-D{where}: the checkpoint was trained with {form} but this network uses feat_norm: "
                f"{self.feat_norm}; set network_d.feat_norm to match (the default became 'channel' on 2026-12-07; "
                "before, it was 'rms')"
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _apply(self, fn, recurse=True):
        self.graphs.clear()
        self._eval_weights = None
        return super()._apply(fn, recurse)

    # -- spectral norms of all heads in one graphed region ---------------------------------------
    def _spectral(self) -> list:
        """The spectral-norm parametrizations of every head conv, in order."""
        return [conv.parametrizations.weight[0] for head in self.heads for conv in head.convs()]

    def _params(self) -> list[torch.Tensor]:
        """The original (unnormalised) weight of every head conv, then every bias."""
        convs = [conv for head in self.heads for conv in head.convs()]
        return [c.parametrizations.weight.original for c in convs] + [c.bias for c in convs]

    def _normalised(self, *params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every normalised weight as torch's spectral_norm computes it (in training mode the power
        iteration updates u and v in place) and every bias, flattened into one tensor in the autocast
        dtype (the cast autocast would make in each conv), and the u, v it used."""
        sns = self._spectral()
        weights, uv = [], []
        for sn, w in zip(sns, params):
            weights.append(sn(w).reshape(-1))
            uv += [sn._u, sn._v]
        return self._flat(weights, params[len(sns) :]), torch.cat(uv)

    def _renormalised(self, inputs, params, aux) -> tuple[torch.Tensor]:
        """:meth:`_normalised` from the u, v it used (``aux``), without the power iteration."""
        sns, weights, uv = self._spectral(), [], aux[0]
        for sn, w in zip(sns, params):
            nu, nv = sn._u.numel(), sn._v.numel()
            u, v, uv = uv[:nu], uv[nu : nu + nv], uv[nu + nv :]
            sigma = torch.vdot(u, torch.mv(sn._reshape_weight_to_matrix(w), v))
            weights.append((w / sigma).reshape(-1))
        return (self._flat(weights, params[len(sns) :]),)

    @staticmethod
    def _flat(weights: list[torch.Tensor], biases) -> torch.Tensor:
        flat = torch.cat([*weights, *biases])
        if torch.is_autocast_enabled(flat.device.type):
            flat = flat.to(torch.get_autocast_dtype(flat.device.type))
        return flat

    def _frozen_weights(self) -> list | None:
        """Eval mode without autograd (validation, SFD-IQA): the normalised weights depend only on
        the parameters and u, v, which do not change there, so they are computed once and kept until
        any of them changes (version counters) instead of on every batch. None: not such a pass."""
        if self.training or torch.is_grad_enabled():
            return None
        sns, params = self._spectral(), self._params()
        state = [t for sn in sns for t in (sn._u, sn._v)]
        key = (
            tuple((t.data_ptr(), t._version, t.dtype) for t in params + state),
            autocast_state(params[0].device.type),
            self.graphs.writes,  # graph replays move u, v without bumping their versions
        )
        if self._eval_weights is None or self._eval_weights[0] != key:
            flat = self._flat([sn(w).reshape(-1) for sn, w in zip(sns, params)], params[len(sns) :])
            self._eval_weights = (key, self._per_head(flat, params))
        return self._eval_weights[1]

    def _per_head(self, flat: torch.Tensor, params: list[torch.Tensor]) -> list:
        parts = iter(flat.split([p.numel() for p in params]))
        tensors = [next(parts).view(p.shape) for p in params]
        n, k = len(tensors) // 2, len(self.heads[0].convs())  # every head has k convs
        return [
            list(zip(tensors[k * i : k * i + k], tensors[n + k * i : n + k * i + k])) for i in range(len(self.heads))
        ]

    def _graphed_weights(self) -> list[list[torch.Tensor]] | None:
        """Per head, the (normalised weight, bias) of each conv from the CUDA graph; None: eager."""

        def build(policy):
            def state():
                return tuple(t.data_ptr() for sn in self._spectral() for t in (sn._u, sn._v))

            def mutable():
                return [t for sn in self._spectral() for t in (sn._u, sn._v)]

            return GraphedRegion(
                "Feat-D spectral norms",
                policy,
                self._normalised,
                state,
                self._renormalised,
                mutable,
                n_aux=1,
                repeatable_backward=True,  # a retained graph differentiated twice (relativistic D losses)
                slots=2,
            )

        region = self.graphs.get("spectral", build)
        if region is None:
            return None
        params = self._params()
        out = region.run([], params, module=self, extra=(self.training,))
        return None if out is None else self._per_head(out[0], params)

    def _updates_rms(self) -> bool:
        """Whether this forward moves the running statistics (RMS or per-channel): only in the
        discriminator step, i.e. in training mode, with autograd on and the heads' parameters
        requiring grad. Every host turns the discriminator's ``requires_grad`` off for the generator
        step (SFDModel, BasicSR's SRGANModel/ESRGANModel/RealESRGANModel), so its passes there, real
        or fake, leave them alone; so do no-grad passes (validation, SFD-IQA) and eval mode."""
        return self.training and torch.is_grad_enabled() and any(p.requires_grad for p in self.heads.parameters())

    @torch.no_grad()
    def _update_rms(self, feats: list[torch.Tensor]) -> None:
        """Move the running RMS toward the RMS of each layer's maps in this batch (the first call
        sets it). Batched and without reading anything back to the host."""
        sums = torch._foreach_norm([f.detach() for f in feats], 2, dtype=torch.float32)  # fp32 accumulation
        current = torch.stack(torch._foreach_div(sums, [math.sqrt(f.numel()) for f in feats])).clamp_min(1e-12)
        current = current.to(self.feat_rms.dtype)
        self.feat_rms.copy_(torch.where(self.feat_rms_initialised, self.feat_rms.lerp(current, self.momentum), current))
        self.feat_rms_initialised.fill_(True)

    @torch.no_grad()
    def _update_channel_stats(self, feats: list[torch.Tensor]) -> None:
        """Move the running per-channel mean and standard deviation toward this batch's (the first
        call sets them); without reading anything back to the host."""
        means, stds = [], []
        for f in feats:
            var, mean = torch.var_mean(f.detach().float(), dim=(0, 2, 3), correction=0)
            std = var.sqrt()
            # a channel that hardly varies (a dead ReLU) must not blow up: floor at 1 % of the layer's mean std
            stds.append(torch.maximum(std, 0.01 * std.mean().clamp_min(1e-12)))
            means.append(mean)
        mean, std = torch.cat(means).to(self.feat_mean.dtype), torch.cat(stds).to(self.feat_std.dtype)
        first = ~self.feat_stats_initialised
        self.feat_mean.copy_(torch.where(first, mean, self.feat_mean.lerp(mean, self.momentum)))
        self.feat_std.copy_(torch.where(first, std, self.feat_std.lerp(std, self.momentum)))
        self.feat_stats_initialised.fill_(True)

    def normalise(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """The maps as the heads see them (``feat_norm``), updating the running statistics first in a
        discriminator step. The statistics are copied (a buffer may be updated again before backward)
        and cast once for all layers."""
        if self.feat_norm == "rms":
            if self._updates_rms():
                self._update_rms(feats)
            rms = self.feat_rms.to(feats[0].dtype, copy=True)
            return [f / rms[i] for i, f in enumerate(feats)]
        if self.feat_norm == "channel":
            if self._updates_rms():
                self._update_channel_stats(feats)
            mean = self.feat_mean.to(feats[0].dtype, copy=True).split(self.channels)
            std = self.feat_std.to(feats[0].dtype, copy=True).split(self.channels)
            return [(f - m.view(1, -1, 1, 1)) / s.view(1, -1, 1, 1) for f, m, s in zip(feats, mean, std)]
        return list(feats)

    def forward(self, feats: list[torch.Tensor], hidden: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """M maps -> M logit maps. ``hidden``: a list that receives, layer by layer, the activation after
        every LeakyReLU of that layer's head (the discriminator features of feature matching)."""
        if len(feats) != len(self.heads):
            raise ValueError(f"Feat-D has {len(self.heads)} heads but got {len(feats)} feature maps")
        feats = self.normalise(feats)
        weights = self._frozen_weights() or self._graphed_weights() or [None] * len(self.heads)
        return [head(f, w, hidden) for head, f, w in zip(self.heads, feats, weights)]
