"""Capture and replay backends of the graphed regions (``sfd_arch/cuda_graphs.py``).

``_CudaBackend``: ``torch.cuda.CUDAGraph`` capture as ``torch.cuda.make_graphed_callables`` does it.
``EmulatedBackend``: the same protocol on any device for tests of the region logic: the captured
body runs at capture and again at each replay, its results are written into the captured (static)
tensors, and the version counters of the module state a replay writes (spectral norm's u, v) are
left as they were, as a CUDA graph replay leaves them (no Python runs in a replay, so nothing bumps
them). No speed gain; values are eager's bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

WARMUP_ITERS = 2  # eager runs on a side stream before a capture (cuDNN/cuBLAS lazy initialisation)
_set_versions = getattr(torch._C._autograd, "_unsafe_set_version_counter", None)


class _CudaBackend:
    """torch.cuda.CUDAGraph capture as torch.cuda.make_graphed_callables does it."""

    emulated = False

    def __init__(self) -> None:
        self._stream = None

    def stream(self):
        if self._stream is None:
            self._stream = torch.cuda.Stream()
        return self._stream

    def warmup(self, run: Callable[[], None]) -> None:
        torch.cuda.synchronize()
        with torch.cuda.stream(self.stream()):
            for _ in range(WARMUP_ITERS):
                run()
        torch.cuda.synchronize()

    def new_pool(self):
        return torch.cuda.graph_pool_handle()

    def capture(self, pool, body: Callable[[], object]) -> tuple[object, object]:
        graph = torch.cuda.CUDAGraph()
        # thread_local: another thread's CUDA calls (e.g. a data loader pinning memory) stay legal
        with torch.cuda.graph(graph, pool=pool, stream=self.stream(), capture_error_mode="thread_local"):
            result = body()
        return graph, result


class _EmulatedGraph:
    """Stands in for a CUDAGraph on CPU: replay re-executes the captured body and writes its results
    into the captured (static) tensors, as a replay writes the graph's memory; the tensors
    ``keep_versions()`` names keep their version counters, as under a real replay."""

    def __init__(
        self,
        body: Callable[[], object],
        static: list[torch.Tensor],
        keep_versions: Callable[[], list[torch.Tensor]] | None = None,
    ) -> None:
        self.body, self.static, self.keep_versions = body, static, keep_versions

    def replay(self) -> None:
        kept = list(self.keep_versions()) if self.keep_versions is not None else []
        versions = [t._version for t in kept]
        with torch.no_grad():
            for s, t in zip(self.static, self.body()):
                if s is not None and t is not None:
                    s.detach().copy_(t)
        if kept and _set_versions is not None:
            _set_versions(tuple(kept), tuple(versions))


class EmulatedBackend:
    """CPU emulation of capture and replay (tests of the region logic; no speed gain): the body runs
    at capture and at each replay, and static tensors keep their identity as in a CUDA graph."""

    emulated = True

    def warmup(self, run: Callable[[], None]) -> None:
        run()

    def new_pool(self):
        return None

    def capture(self, pool, body: Callable[[], object]) -> tuple[object, object]:
        result = body()
        return None, result


_BACKEND_OVERRIDE: list = []  # tests push an EmulatedBackend here
_CUDA = _CudaBackend()


def backend():
    """The backend captures use now: the emulation inside :class:`emulated_graphs`, else CUDA."""
    return _BACKEND_OVERRIDE[-1] if _BACKEND_OVERRIDE else _CUDA


class emulated_graphs:
    """Context manager for tests: regions capture and replay with :class:`EmulatedBackend` on any
    device (CPU included), so the rules of the graphed path are exercised without a GPU."""

    def __enter__(self):
        _BACKEND_OVERRIDE.append(EmulatedBackend())
        return self

    def __exit__(self, *exc):
        _BACKEND_OVERRIDE.pop()
