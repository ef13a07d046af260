"""CUDA graphs of the SFD discriminator's static-shape regions (``network_d.fast_path``).

One SFD discriminator iteration runs few FLOPs through many small kernels: the frozen CLIP image
tower (forward, and backward to the image in the generator step), the prompt/text path with its
backward, and the spectral normalisation of the Feat-D heads' 12 convolutions (power iteration and
weight scaling on every call). In eager mode the host cannot launch them as fast as the GPU runs
them. Each region is captured once per input signature as a CUDA graph and replayed (one launch,
plus a copy of its inputs in and of its outputs out), forward and backward, with the same kernels
as eager, so values and gradients equal eager's up to kernel-level rounding.

Exactness rules (every case the graph cannot serve runs the eager code instead):
    * a region runs as a graph only on CUDA, in training mode, with autograd's grad-mode and
      autocast state, the inputs' shapes, dtypes, strides and ``requires_grad`` and the module
      state (parameters and buffers, by address) of an existing capture; a new signature is
      captured (at most ``MAX_CAPTURES`` per region, then eager: shapes that keep changing);
    * never under ``inference_mode``, a ``TorchDispatchMode`` (FLOP counters), ``torch.compile``
      tracing, another graph capture, or in a DataParallel replica;
    * the saved activations of a graphed forward live in the graph's memory pool until its
      backward has run: while one is pending, another replay in the same pool runs eagerly;
    * a backward that cannot replay (``create_graph``, a second backward after the pool was
      replayed again) recomputes the region eagerly from the saved inputs;
    * outputs and gradients are copied out of the graph's memory: nothing the caller keeps is
      overwritten by a later replay (the pool invariant, written at ``GraphedRegion._replay``);
      the module's own buffers mutated in a region (spectral norm's power iteration) are mutated
      in place by the replay exactly as in eager, except that their version counters do not move
      (no Python runs in a replay): the owner's ``RegionSlot.writes`` counts those replays;
    * every eager fallback and every eager recompute of a backward is said once in the log, with
      its reason; the counters are kept per region (``FastPath.status()['regions']``).
"""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from sfd_arch.graph_backends import WARMUP_ITERS, EmulatedBackend, _EmulatedGraph, emulated_graphs
from sfd_arch.graph_backends import backend as current_backend

__all__ = ["FAST_PATHS", "MAX_CAPTURES", "WARMUP_ITERS", "EmulatedBackend", "FastPath", "GraphedRegion"]
__all__ += ["RegionSlot", "autocast_state", "check_fast_path", "emulated_graphs"]
FAST_PATHS = ("auto", "off", "cuda_graphs", "compile")
MAX_CAPTURES = 4  # signatures per region; more means shapes keep changing: eager from then on
logger = logging.getLogger("basicsr")


def check_fast_path(mode) -> str:
    """The mode ``mode`` names; YAML 1.1 reads an unquoted ``off`` / ``on`` as false / true."""
    if isinstance(mode, bool):
        return "auto" if mode else "off"
    if mode not in FAST_PATHS:
        raise ValueError(f"network_d.fast_path must be one of {list(FAST_PATHS)}, got {mode!r}")
    return mode


class FastPath:
    """Per-discriminator policy of the graphed regions: the mode, what was logged, counters.

    mode 'auto' / 'cuda_graphs': graph on CUDA where the rules allow (eager elsewhere, said once in
    the log); 'compile': the same regions through ``torch.compile`` (inductor, any device; compiles
    at the first call of each signature, recompiles for new ones); 'off': always eager.
    """

    def __init__(self, mode: str = "auto") -> None:
        self.mode = check_fast_path(mode)
        self._said: set = set()
        self.stats = {"replays": 0, "captures": 0, "eager": 0, "recomputes": 0}
        self.region_stats: dict[str, dict[str, int]] = {}  # the same counters per region name

    def say(self, region: str, what: str) -> None:
        if (region, what) not in self._said:
            self._said.add((region, what))
            logger.info(f"SFD fast path, {region}: {what}")

    def count(self, region: str, what: str) -> None:
        """One more ``what`` ('replays', 'captures', 'eager', 'recomputes') in ``region``."""
        self.stats[what] += 1
        self.region_stats.setdefault(region, dict.fromkeys(self.stats, 0))[what] += 1

    def status(self) -> dict:
        regions = {name: dict(counts) for name, counts in sorted(self.region_stats.items())}
        return {"mode": self.mode, **self.stats, "regions": regions, "said": sorted(f"{r}: {w}" for r, w in self._said)}


def autocast_state(device_type: str) -> tuple:
    """(enabled, dtype) of autocast on ``device_type``."""
    if not torch.is_autocast_enabled(device_type):
        return (False, None)
    return (True, torch.get_autocast_dtype(device_type))


def _tensor_key(t: torch.Tensor) -> tuple:
    return (tuple(t.shape), t.stride(), t.dtype, t.device, t.requires_grad)


def _why_not(tensors: Sequence[torch.Tensor], module: torch.nn.Module | None, cuda: bool = True) -> str | None:
    """Reason the graphed path cannot serve this call (None: it can, rules permitting); ``cuda``
    False for the CPU emulation."""
    if cuda and (not tensors or any(t.device.type != "cuda" for t in tensors)):
        return "eager (tensors not on CUDA)"
    if torch.is_inference_mode_enabled() or any(t.is_inference() for t in tensors):
        return "eager (inference mode)"
    if _get_current_dispatch_mode() is not None:
        return "eager (a TorchDispatchMode is active)"
    if torch.compiler.is_compiling():
        return "eager (inside torch.compile)"
    if cuda and torch.cuda.is_current_stream_capturing():
        return "eager (inside another CUDA graph capture)"
    if torch._C._current_graph_task_id() != -1:
        return "eager (called during a backward pass)"
    if module is not None and getattr(module, "_is_replica", False):
        return "eager (DataParallel replica)"
    return None


# -- one region ---------------------------------------------------------------------------------
class _Pool:
    """A graph memory pool shared by a region's captures, and which forward of it awaits backward."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.generation = 0  # bumped by every forward replay in the pool
        self._pending = None  # weakref to the _Record whose backward has not run yet

    def busy(self) -> bool:
        rec = None if self._pending is None else self._pending()
        return rec is not None and not rec.backward_done

    def hold(self, record) -> None:
        self._pending = weakref.ref(record)


class _Entry:
    """The graphs of one signature: forward (+ backward), static inputs, outputs and gradients."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.fwd = self.bwd = None
        self.static_in: list[torch.Tensor] = []
        self.static_out: list[torch.Tensor] = []
        self.static_aux: list[torch.Tensor] = []
        self.static_grad_out: list[torch.Tensor] = []
        self.static_grads: list[torch.Tensor] = []  # the targets' gradients, flat: one tensor per dtype
        self.grad_layout: list[tuple[int, int, int, torch.Size]] = []  # per target: (flat, offset, numel, shape)
        self.targets: list[int] = []  # indices (into inputs + params) that receive gradients

    def grads_out(self, flats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per target, its gradient as a view of ``flats`` (copies of :attr:`static_grads`)."""
        return [flats[k][o : o + n].view(shape) for k, o, n, shape in self.grad_layout]


def _grad_layout(tensors: list[torch.Tensor]) -> list[tuple[int, int, int, torch.Size]]:
    """(flat index, offset, numel, shape) of each tensor's gradient in one flat tensor per dtype."""
    dtypes = list(dict.fromkeys(t.dtype for t in tensors))
    offsets = dict.fromkeys(dtypes, 0)
    layout = []
    for t in tensors:
        layout.append((dtypes.index(t.dtype), offsets[t.dtype], t.numel(), t.shape))
        offsets[t.dtype] += t.numel()
    return layout


def _flatten(grads: list[torch.Tensor], layout) -> list[torch.Tensor]:
    """The gradients concatenated into one flat tensor per dtype (inside the captured backward)."""
    groups: list[list[torch.Tensor]] = [[] for _ in range(1 + max((k for k, *_ in layout), default=-1))]
    for g, (k, *_) in zip(grads, layout):
        groups[k].append(g.reshape(-1))
    return [torch.cat(group) for group in groups]


class _Record:
    """One graphed forward: what its backward needs (or what an eager recompute needs)."""

    __slots__ = ("entry", "generation", "backward_done", "saved", "aux", "autocast", "__weakref__")

    def __init__(self, entry: _Entry, saved, aux: list[torch.Tensor], autocast: tuple) -> None:
        self.entry, self.generation, self.backward_done = entry, entry.pool.generation, False
        self.saved, self.aux, self.autocast = saved, aux, autocast


class GraphedRegion:
    """A function of tensors over fixed module state, replayed as CUDA graphs where the rules allow.

    Args:
        name: shown in the log.
        policy: the owner's :class:`FastPath`.
        fn: ``fn(*inputs, *params) -> tuple`` of outputs; the last ``n_aux`` are not differentiable.
            ``inputs`` are copied into the graph's static inputs; ``params`` (module parameters) are
            read in place (their addresses are part of the signature).
        recompute: ``recompute(inputs, params, aux) -> differentiable outputs`` without side
            effects, for a backward that cannot replay; default ``fn``.
        state: ``state() -> tuple`` identifying the module state the region reads in place (frozen
            weights, buffers): e.g. their addresses and an epoch the module bumps when it moves or
            is recast. Part of the signature; captures of another state are dropped.
        mutable: ``mutable() -> list of tensors`` the region updates in place (restored after the
            warm-up runs, so a capture leaves them as the one eager call would).
        repeatable_backward: capture the backward keeping the saved activations, so a forward may
            be differentiated more than once (the prompt features served to several loss terms).
        slots: forwards that may await their backward at once, each in its own memory pool (a
            host may run the discriminator on real and fake before one backward); a further one
            runs eager.
    """

    def __init__(
        self,
        name: str,
        policy: FastPath,
        fn: Callable[..., tuple],
        state: Callable[[], tuple],
        recompute: Callable | None = None,
        mutable: Callable[[], list[torch.Tensor]] | None = None,
        n_aux: int = 0,
        repeatable_backward: bool = False,
        slots: int = 1,
    ) -> None:
        self.name, self.policy, self.fn, self.state = name, policy, fn, state
        self._recompute = recompute
        self.mutable = mutable or (lambda: [])
        self.n_aux, self.repeatable, self.slots = n_aux, repeatable_backward, slots
        self.slot: RegionSlot | None = None  # set by the owning slot: counts the replays that write module state
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._pools: list[_Pool] = []
        self._disabled: str | None = None
        self._compiled = None

    def reset(self) -> None:
        """Drop every capture (the module moved, changed dtype or was rebuilt)."""
        self._entries.clear()
        self._pools = []

    def _differentiable(self, inputs, params, aux) -> tuple:
        if self._recompute is not None:
            return tuple(self._recompute(inputs, params, aux))
        out = self.fn(*inputs, *params)
        return tuple(out[: len(out) - self.n_aux])

    # -- the call --------------------------------------------------------------------------------
    def _prepare(self, inputs, params, module, extra, need_grad: bool | None = None):
        """(entry, grad, autocast) for a graphed call, or None (eager)."""
        if self.policy.mode == "off" or self._disabled is not None:
            return None
        if module is not None and not module.training:
            self.policy.say(self.name, "eager (eval mode)")
            return None
        backend = current_backend()
        tensors = list(inputs) + list(params)
        why = _why_not(tensors, module, cuda=not backend.emulated)
        if why is not None:
            self.policy.say(self.name, why)
            self.policy.count(self.name, "eager")
            return None
        device_type = tensors[0].device.type
        grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors) if need_grad is None else need_grad
        autocast = autocast_state(device_type)
        key = (
            grad,
            autocast,
            tuple(extra),
            tuple(_tensor_key(t) for t in inputs),
            tuple((t.data_ptr(), *_tensor_key(t)) for t in params),
            tuple(self.state()),
        )
        for old in [k for k in self._entries if k[0][-1] != key[-1]]:
            del self._entries[old]  # the module state moved: those graphs read freed memory
        free = [i for i, pool in enumerate(self._pools) if not pool.busy()]
        if not free and len(self._pools) < self.slots:
            self._pools.append(_Pool(backend.new_pool()))
            free = [len(self._pools) - 1]
        if not free:  # every pool holds a forward that awaits its backward: its memory must stay
            self.policy.say(self.name, "eager (no graph memory pool free: each holds a forward awaiting its backward)")
            self.policy.count(self.name, "eager")
            return None
        entry = self._entries.get((key, free[0]))
        if entry is None:
            if len({k for k, _ in self._entries}) >= MAX_CAPTURES and key not in {k for k, _ in self._entries}:
                self.policy.say(
                    self.name, f"eager for new input signatures after {MAX_CAPTURES} (shapes keep changing)"
                )
                self.policy.count(self.name, "eager")
                return None
            entry = self._capture(list(inputs), list(params), grad, autocast, self._pools[free[0]])
            if entry is None:
                return None
            self._entries[(key, free[0])] = entry
        return entry, grad, autocast

    def run(self, inputs: Sequence[torch.Tensor], params: Sequence[torch.Tensor] = (), module=None, extra=()):
        """Outputs of ``fn(*inputs, *params)`` from the graph (differentiable through it), or None:
        the caller runs its eager code."""
        if self.policy.mode == "compile":
            return self._run_compiled(inputs, params, module)
        got = self._prepare(inputs, params, module, extra)
        if got is None:
            return None
        entry, grad, autocast = got
        if not grad:
            outs, aux = self._replay(entry, list(inputs))
            return outs + aux
        record = _Record(entry, None, [], autocast)
        return tuple(_Replay.apply(self, record, len(inputs), *inputs, *params))

    def run_vjp(self, inputs: Sequence[torch.Tensor], params: Sequence[torch.Tensor] = (), module=None, extra=()):
        """(differentiable outputs, detached; ``vjp``) or None (eager). ``vjp(grads)`` returns the
        gradients of ``inputs + params`` for output gradients ``grads`` without an autograd pass,
        as often as needed (an eager recompute when the graph cannot replay it)."""
        if self.policy.mode == "compile":
            return None  # the compiled region is differentiated by autograd (nested pass)
        inputs = [t.detach().requires_grad_(t.is_floating_point()) for t in inputs]
        params = [t.detach().requires_grad_(t.is_floating_point()) for t in params]
        got = self._prepare(inputs, params, module, extra, need_grad=True)
        if got is None:
            return None
        entry, _, autocast = got
        if not entry.targets:
            self.policy.say(self.name, "eager (nothing to differentiate)")
            return None
        outs, aux = self._replay(entry, inputs)
        record = _Record(entry, inputs + params, list(aux), autocast)
        entry.pool.hold(record)

        def vjp(grads: Sequence[torch.Tensor | None]) -> list:
            return self.backward(record, list(grads), create_graph=torch.is_grad_enabled())

        return outs, vjp

    def _run_compiled(self, inputs, params, module):
        """``fast_path: compile``: the region through torch.compile (autograd included), or None."""
        if self._disabled is not None:
            return None
        if module is not None and not module.training:
            self.policy.say(self.name, "eager (eval mode)")
            return None
        why = _why_not(list(inputs) + list(params), module, cuda=False)
        if why is not None:
            self.policy.say(self.name, why)
            return None
        if self._compiled is None:
            self._compiled = torch.compile(self.fn, dynamic=False)
            self.policy.say(self.name, "torch.compile")
        try:
            out = tuple(self._compiled(*inputs, *params))
        except Exception as err:  # a region that does not compile runs eager from now on, said once
            self._disabled = f"eager (torch.compile failed: {type(err).__name__}: {str(err).splitlines()[0][:200]})"
            self.policy.say(self.name, self._disabled)
            logger.warning(f"SFD fast path, {self.name}: {self._disabled}")
            return None
        self.policy.count(self.name, "replays")
        self._wrote()
        return out

    def _wrote(self) -> None:
        """A forward replay wrote the module state it mutates without bumping its version counters
        (CUDA graphs run no Python): the owner's caches keyed on versions read this count too."""
        if self.slot is not None:
            self.slot.writes += 1

    # THE POOL INVARIANT: a replay writes its outputs and gradients into the graph's static tensors,
    # memory the next replay of any graph in the same pool overwrites. So every static output, aux
    # output and gradient is cloned right after its replay, before anything else can replay the pool,
    # and only the clones leave this class (``_replay`` and ``backward`` below). Handing out a static
    # tensor itself ("skip the clone") would let a later replay change what a caller holds, silently.
    # tests/test_fast_path.py::test_no_static_tensor_escapes_a_region checks every tensor handed out.
    def _replay(self, entry: _Entry, inputs: list[torch.Tensor]) -> tuple[tuple, tuple]:
        with torch.no_grad():
            for s, t in zip(entry.static_in, inputs):
                if s.data_ptr() != t.data_ptr():
                    s.copy_(t)
        entry.fwd.replay()
        entry.pool.generation += 1
        self.policy.count(self.name, "replays")
        self._wrote()
        outs = tuple(o.detach().clone() for o in entry.static_out)  # the pool invariant: clones only
        aux = tuple(a.detach().clone() for a in entry.static_aux)
        return outs, aux

    # -- capture ---------------------------------------------------------------------------------
    def _capture(self, inputs, params, grad: bool, autocast: tuple, pool: _Pool) -> _Entry | None:
        backend = current_backend()
        entry = _Entry(pool)
        device_type = (inputs or params)[0].device.type
        static_in = [t.detach().clone().requires_grad_(t.requires_grad and grad) for t in inputs]
        targets = [i for i, t in enumerate(inputs + params) if grad and t.requires_grad]
        leaves = static_in + list(params)
        n_aux = self.n_aux

        def forward():
            with (
                torch.set_grad_enabled(grad),
                torch.autocast(device_type, dtype=autocast[1], enabled=autocast[0], cache_enabled=False),
            ):
                out = tuple(self.fn(*leaves))
            return out[: len(out) - n_aux], out[len(out) - n_aux :]

        layout = _grad_layout([leaves[i] for i in targets])

        def backward(outs, grads_out, retain):
            got = torch.autograd.grad(
                outs, [leaves[i] for i in targets], grads_out, retain_graph=retain, allow_unused=True
            )
            # one flat tensor per dtype: a replay's gradients leave the pool in one clone
            return _flatten([g if g is not None else torch.zeros_like(leaves[i]) for g, i in zip(got, targets)], layout)

        saved_state = [t.detach().clone() for t in self.mutable()]

        def restore():
            with torch.no_grad():
                for t, s in zip(self.mutable(), saved_state):
                    t.copy_(s)

        try:
            if not backend.emulated:

                def warm():
                    outs, _ = forward()
                    if targets:
                        backward(list(outs), [torch.ones_like(o) for o in outs], False)

                backend.warmup(warm)
                restore()
            graph, (outs, aux) = backend.capture(pool.handle, forward)
            pool.generation += 1  # the capture wrote (CUDA: reserved) the pool's memory
            entry.static_in, entry.static_out, entry.static_aux = static_in, list(outs), list(aux)
            if backend.emulated:
                live = {}

                def body():
                    o, a = forward()
                    live["outs"] = o
                    return list(o) + list(a)

                graph = _EmulatedGraph(body, entry.static_out + entry.static_aux, self.mutable)
            entry.fwd, entry.targets, entry.grad_layout = graph, targets, layout
            if targets:
                entry.static_grad_out = [torch.zeros_like(o) for o in outs]
                if backend.emulated:
                    entry.static_grads = backward(list(outs), entry.static_grad_out, True)
                    entry.bwd = _EmulatedGraph(
                        lambda: backward(list(live["outs"]), entry.static_grad_out, self.repeatable),
                        entry.static_grads,
                    )
                else:
                    graph_b, grads = backend.capture(
                        pool.handle, lambda: backward(list(outs), entry.static_grad_out, self.repeatable)
                    )
                    entry.bwd, entry.static_grads = graph_b, grads
            restore()
        except Exception as err:  # a region that cannot be captured runs eager from now on, said once
            restore()
            self._disabled = f"eager (capture failed: {type(err).__name__}: {str(err).splitlines()[0][:200]})"
            self.policy.say(self.name, self._disabled)
            logger.warning(f"SFD fast path, {self.name}: {self._disabled}")
            return None
        self.policy.count(self.name, "captures")
        self.policy.say(self.name, "CUDA graphs" + (" (emulated)" if backend.emulated else ""))
        return entry

    # -- backward --------------------------------------------------------------------------------
    def backward(self, record: _Record, grads: Sequence[torch.Tensor | None], create_graph: bool, saved=None) -> list:
        """Gradients for ``record``'s inputs and params (None where not required); ``saved``: the
        inputs and params of the forward (default: those the record keeps)."""
        entry = record.entry
        saved = record.saved if saved is None else saved
        result: list = [None] * len(saved)
        why = self._no_backward_replay(record, create_graph)
        if why is None:
            with torch.no_grad():
                for s, g in zip(entry.static_grad_out, grads):
                    if g is None:
                        s.zero_()
                    elif s.data_ptr() != g.data_ptr():
                        s.copy_(g)
            entry.bwd.replay()
            self.policy.count(self.name, "replays")
            flats = [f.detach().clone() for f in entry.static_grads]  # the pool invariant: one clone per dtype
            for i, g in zip(entry.targets, entry.grads_out(flats)):
                result[i] = g
        else:
            self.policy.say(self.name, f"backward recomputed eagerly ({why})")
            self.policy.count(self.name, "recomputes")
            result = self._recompute_grads(record, saved, grads, create_graph)
        record.backward_done = True
        return result

    def _no_backward_replay(self, record: _Record, create_graph: bool) -> str | None:
        """Why ``record``'s backward cannot replay its graph (None: it can)."""
        if create_graph:
            return "create_graph: a gradient of the gradient"
        if record.entry.bwd is None:
            return "no backward graph captured"
        if record.generation != record.entry.pool.generation:
            return "its graph memory was overwritten by a later forward"
        if record.backward_done and not self.repeatable:
            return "a second backward of a region captured for one"
        return None

    def _recompute_grads(self, record: _Record, saved, grads, create_graph: bool) -> list:
        n_in = len(record.entry.static_in)
        targets = record.entry.targets
        device_type = saved[0].device.type
        enabled, dtype = record.autocast
        with torch.enable_grad(), torch.autocast(device_type, dtype=dtype, enabled=enabled):
            leaves = [t if create_graph else t.detach().requires_grad_(i in targets) for i, t in enumerate(saved)]
            outs = self._differentiable(leaves[:n_in], leaves[n_in:], record.aux)
        pairs = [(o, g) for o, g in zip(outs, grads) if g is not None and o.requires_grad]
        result: list = [None] * len(saved)
        if not pairs:
            return result
        got = torch.autograd.grad(
            [o for o, _ in pairs],
            [leaves[i] for i in targets],
            [g for _, g in pairs],
            create_graph=create_graph,
            allow_unused=True,
        )
        for i, g in zip(targets, got):
            result[i] = g
        return result


class _Replay(torch.autograd.Function):
    """A graphed forward in the autograd graph; its backward replays the backward graph."""

    @staticmethod
    def forward(fctx, region, record, n_inputs, *tensors):
        entry = record.entry
        outs, aux = region._replay(entry, list(tensors[:n_inputs]))
        record.generation = entry.pool.generation
        record.aux = list(aux)
        entry.pool.hold(record)
        fctx.region, fctx.record = region, record
        fctx.save_for_backward(*tensors)  # for an eager recompute (and autograd's in-place checks)
        fctx.mark_non_differentiable(*aux)
        return (*outs, *aux)

    @staticmethod
    def backward(fctx, *grads):
        region, record = fctx.region, fctx.record
        n_out = len(record.entry.static_out)
        got = region.backward(
            record, list(grads[:n_out]), create_graph=torch.is_grad_enabled(), saved=list(fctx.saved_tensors)
        )
        return (None, None, None, *got)


class RegionSlot:
    """The graphed regions of one module, built lazily under the owner's :class:`FastPath` (none
    set, or mode 'off': eager). Never saved; a deep copy or unpickled module starts without captures."""

    def __init__(self, policy: FastPath | None = None) -> None:
        self.policy = policy
        self.regions: dict = {}
        self.writes = 0  # forward replays of its regions (never reset): they write module state unversioned

    def __deepcopy__(self, memo) -> RegionSlot:
        import copy

        return RegionSlot(copy.deepcopy(self.policy, memo))

    def __getstate__(self) -> dict:
        return {"policy": self.policy}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["policy"])

    def get(self, key, build: Callable[[FastPath], GraphedRegion]) -> GraphedRegion | None:
        if self.policy is None or self.policy.mode == "off":
            return None
        region = self.regions.get(key)
        if region is None:
            region = self.regions[key] = build(self.policy)
            region.slot = self
        return region

    def clear(self) -> None:
        """Drop every capture (the module moved or changed dtype)."""
        self.regions.clear()
