"""Timing a GPU can be trusted with (issue 21), shared by the benchmarks (sfd_lab.bench) and the GPU
check (sfd_lab.gpu_check): CUDA-event times after a synchronisation, the garbage collector held off,
and a separate profiler pass that says where an iteration's wall time goes (GPU kernels or the
host issuing them). (Repeats interleaved in blocks: sfd_lab.bench.steps.time_interleaved.)

- :class:`IterationTimer`: one call of ``fn`` -> (wall s, host s). On CUDA: synchronise, record a
  start event, call, note the host time when the call returns (what the host spent issuing the
  work, plus any synchronisation inside), record an end event, wait for it; wall = the events'
  elapsed time. On CPU both are ``perf_counter`` differences.
- :func:`no_gc`: collect once, then keep Python's cyclic collector off while timing (a full
  collection over a training process's heap can take tens of milliseconds inside one repeat).
- :func:`allocator_counts`: the CUDA caching allocator's device allocations / frees / retries, read
  before and after a configuration's timed repeats: a difference means the allocator went back to
  the driver (``cudaMalloc`` / ``cudaFree``, each a synchronisation) inside the timed loop.
- :func:`profile_iterations`: ``torch.profiler`` over a few calls -> per iteration: GPU time (sum of
  the device kernels' and copies' durations), kernel launches the host issued (``cudaLaunchKernel``
  / ``cuLaunchKernel`` and variants; a replayed CUDA graph, ``cudaGraphLaunch``, counts as one),
  graph replays, host synchronisations (``cudaStreamSynchronize`` and alike) and the profiled
  wall time.
- :func:`count_dispatched_ops`: aten operators dispatched by one call (a ``TorchDispatchMode``, so
  forward, backward and autocast's casts are all seen); on a GPU in eager mode nearly every one
  that is not a view is one kernel launch, so this is the launch count a CPU can measure.
- :func:`verdict`: "GPU-bound" when wall <= 1.3 x GPU time, else "launch-bound".
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator

import torch

LAUNCH_BOUND_FACTOR = 1.3  # wall above this multiple of the GPU time: the host is the bottleneck
# Ops that allocate or re-describe memory without running a kernel.
NO_KERNEL_OPS = frozenset(
    {
        "aten.empty.memory_format",
        "aten.empty_like.default",
        "aten.empty_strided.default",
        "aten.new_empty.default",
        "aten.new_empty_strided.default",
        "aten.resize_.default",
        "aten.set_.source_Storage_storage_offset",
        "aten.lift_fresh.default",
    }
)
HOST_READ_OPS = frozenset({"aten._local_scalar_dense.default", "aten.item.default", "aten.is_nonzero.default"})
# Python-level reads of a tensor's values (a TorchFunctionMode sees them, also ``.tolist()`` and ``.numpy()``
# of a CPU tensor, which dispatch no aten op): each a device synchronisation on a GPU.
READ_FUNCTIONS = frozenset(
    {"item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "__array__", "__format__"}
    | {"equal", "allclose", "is_nonzero"}
)
# Reads of values a program copied to the host asynchronously before (sfd_utils/host_copy.py): host
# memory, not a synchronisation; counted apart.
HOST_COPY_FILES = ("sfd_utils/host_copy.py",)


class IterationTimer:
    """Times one call at a time on ``device`` (see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)

    def __call__(self, fn: Callable[[], object]) -> tuple[float, float]:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.start.record()
            t0 = time.perf_counter()
            fn()
            host = time.perf_counter() - t0
            self.end.record()
            self.end.synchronize()
            return self.start.elapsed_time(self.end) / 1e3, host
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        return wall, wall


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Collect garbage once, then keep the cyclic collector off until the block ends."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def allocator_counts(device: torch.device) -> dict | None:
    """Device allocations, frees and allocation retries of the CUDA caching allocator so far (None on CPU)."""
    if device.type != "cuda":
        return None
    stats = torch.cuda.memory_stats(device)
    return {k: int(stats.get(k, 0)) for k in ("num_device_alloc", "num_device_free", "num_alloc_retries")}


def count_difference(after: dict | None, before: dict | None) -> dict | None:
    if after is None or before is None:
        return None
    return {k: after[k] - before.get(k, 0) for k in after}


# -- the profiler pass ----------------------------------------------------------------------------


def _is_launch(name: str) -> bool:
    return name.startswith(("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchCooperativeKernel"))


def _is_graph_launch(name: str) -> bool:
    return name.startswith(("cudaGraphLaunch", "cuGraphLaunch"))


def _is_sync(name: str) -> bool:
    return name in ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cuStreamSynchronize")


def summarise_events(events, iters: int, final_syncs: int = 1) -> dict:
    """Per-iteration figures of profiler events (``FunctionEvent``-like: ``name``, ``device_type``,
    ``time_range``) recorded over ``iters`` calls followed by ``final_syncs`` synchronisations."""
    kernels_us = copies_us = 0.0
    kernel_count = launches = graph_launches = syncs = 0
    for e in events:
        device = str(getattr(e, "device_type", "")).rsplit(".", 1)[-1]
        name = e.name
        if device == "CUDA":
            us = e.time_range.elapsed_us()
            if name.startswith(("Memcpy", "Memset")):
                copies_us += us
            else:
                kernels_us += us
                kernel_count += 1
        elif _is_launch(name):
            launches += 1
        elif _is_graph_launch(name):
            graph_launches += 1
        elif _is_sync(name):
            syncs += 1
    n = max(iters, 1)
    return {
        "gpu_ms": (kernels_us + copies_us) / 1e3 / n,
        "kernel_ms": kernels_us / 1e3 / n,
        "copy_ms": copies_us / 1e3 / n,
        "kernels": kernel_count / n,
        "launches": (launches + graph_launches) / n,
        "kernel_launches": launches / n,
        "graph_launches": graph_launches / n,
        "host_syncs": max(syncs - final_syncs, 0) / n,
    }


def profile_iterations(fn: Callable[[], object], device: torch.device, iters: int = 3) -> dict:
    """torch.profiler over ``iters`` calls of ``fn`` (CUDA activity on a GPU) -> per-iteration
    figures (:func:`summarise_events`) and ``profiled_wall_ms`` (the profiler slows the host)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize(device)
    with no_gc(), profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        if cuda:
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
    out = summarise_events(prof.events(), iters, final_syncs=1 if cuda else 0)
    out["profiled_wall_ms"] = 1e3 * wall / max(iters, 1)
    out["profiled_iters"] = iters
    if not cuda:  # no device events on a CPU: the GPU columns are not measured, not zero
        for key in ("gpu_ms", "kernel_ms", "copy_ms", "kernels", "launches", "kernel_launches", "graph_launches"):
            out[key] = None
    return out


def verdict(wall_ms: float | None, gpu_ms: float | None, factor: float = LAUNCH_BOUND_FACTOR) -> str:
    """'GPU-bound' when the wall time is within ``factor`` of the GPU time, else 'launch-bound'."""
    if wall_ms is None or not gpu_ms:
        return "n/a"
    return "GPU-bound" if wall_ms <= factor * gpu_ms else "launch-bound"


# -- operators dispatched --------------------------------------------------------------------------


def _is_view(func) -> bool:
    is_view = getattr(func, "is_view", None)
    if is_view is not None:
        return bool(is_view)
    return any(r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns)


def count_dispatched_ops(fn: Callable[[], object], top: int = 12) -> dict:
    """aten operators one call of ``fn`` dispatches (forward, backward, autocast casts):

    ``ops``: all of them; ``compute_ops``: those that run a kernel (not views, not bare
    allocations) - on a GPU in eager mode about one kernel launch each; ``casts``: dtype/device
    copies (``_to_copy``); ``host_reads``: values read back to the host that are (on a GPU) or would
    be (on a CPU run) a device synchronisation each (``.item()``, ``bool(t)``); reads of CPU scalars
    a GPU run keeps on the host too (an optimizer's step counters) are ``cpu_scalar_reads``;
    ``host_read_sites``: where the host reads come from (the innermost calling line outside
    torch); ``top``: the most frequent compute ops. Reads made by our code are seen at the Python level
    too (``.tolist()``, ``.numpy()``, ``bool(t)``, ``torch.equal``: a ``TorchFunctionMode``), so a CPU run
    counts the reads a GPU run would wait for; reads of values copied to the host before
    (``sfd_utils/host_copy.py``) are ``host_copy_reads``, not host reads.
    """
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: Counter = Counter()
    sites: Counter = Counter()
    scalar_reads = [0]
    copy_reads = [0]
    inside_read = [0]  # > 0 while a read our code made runs (its aten ops are that one read)

    class _Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            counts[func] += 1
            if inside_read[0]:
                pass
            elif _copies_to_host(str(func), args, kwargs or {}):
                sites[_read_site()[0]] += 1
            elif str(func) in HOST_READ_OPS:
                site, in_optimizer = _read_site()
                on_device = bool(args) and isinstance(args[0], torch.Tensor) and args[0].device.type != "cpu"
                if on_device or not in_optimizer:
                    sites[site] += 1
                else:
                    scalar_reads[0] += 1
            return func(*args, **(kwargs or {}))

    class _Reads(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            if name not in READ_FUNCTIONS or inside_read[0] or _called_from_torch():
                return func(*args, **(kwargs or {}))
            site = _read_site()[0]
            if any(f in site for f in HOST_COPY_FILES):
                copy_reads[0] += 1
            else:
                sites[site] += 1
            inside_read[0] += 1
            try:
                return func(*args, **(kwargs or {}))
            finally:
                inside_read[0] -= 1

    with _Reads(), _Counter():
        fn()
    total = sum(counts.values())
    compute = Counter({str(f): n for f, n in counts.items() if not _is_view(f) and str(f) not in NO_KERNEL_OPS})
    return {
        "ops": total,
        "compute_ops": sum(compute.values()),
        "view_ops": sum(n for f, n in counts.items() if _is_view(f)),
        "casts": sum(n for name, n in compute.items() if name.startswith("aten._to_copy")),
        "host_reads": sum(sites.values()),
        "cpu_scalar_reads": scalar_reads[0],
        "host_copy_reads": copy_reads[0],
        "host_read_sites": [{"site": site, "calls": n} for site, n in sites.most_common(top)],
        "top": [{"op": name, "calls": n} for name, n in compute.most_common(top)],
    }


def _copies_to_host(name: str, args, kwargs: dict) -> bool:
    """True for a copy of a device tensor into host memory (``_to_copy`` to the CPU, ``copy_`` into a CPU tensor)."""
    if name == "aten._to_copy.default" and args and isinstance(args[0], torch.Tensor):
        target = kwargs.get("device")
        return args[0].device.type != "cpu" and target is not None and torch.device(target).type == "cpu"
    if name == "aten.copy_.default" and len(args) > 1 and all(isinstance(a, torch.Tensor) for a in args[:2]):
        return args[0].device.type == "cpu" and args[1].device.type != "cpu"
    return False


def _called_from_torch() -> bool:
    """Whether the innermost calling frame (past this module and the mode machinery) is torch's own
    code (its reads are judged at the aten level: an optimizer's CPU step counters are not syncs).
    ``Tensor`` methods written in Python (``__format__``, ``__array__``) count as the caller's."""
    import sys

    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename.replace("\\", "/")
        if not path.endswith(("/timing.py", "torch/overrides.py", "torch/_tensor.py")):
            return "/torch/" in path
        frame = frame.f_back
    return False


def _read_site() -> tuple[str, bool]:
    """('package/module.py:line (function)' of the innermost frame outside torch and this module,
    whether the read happens inside ``torch.optim``)."""
    import traceback

    in_optimizer = False
    for frame in reversed(traceback.extract_stack()):
        path = frame.filename.replace("\\", "/")
        if "/torch/optim/" in path:
            in_optimizer = True
        if "/torch/" in path or path.endswith("/timing.py") or "<" in path:
            continue
        return f"{'/'.join(path.split('/')[-2:])}:{frame.lineno} ({frame.name})", in_optimizer
    return "unknown", in_optimizer
