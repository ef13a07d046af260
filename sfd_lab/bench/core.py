"""The timing/memory core every benchmark row uses: synchronisation, peak memory, FLOP and op
counts, statistics, seeding, quiet BasicSR, machine description."""

import contextlib
import ctypes
import gc
import importlib
import importlib.metadata
import logging
import os
import platform
import random
import re
import statistics
from collections.abc import Callable, Iterator

import numpy as np
import torch

from sfd_lab.bench.stop import StopRequested, stop_on_sigterm  # noqa: F401  (the benchmarks' names)


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def proc_field_kb(path: str, key: str) -> int | None:
    """A ``key:  <n> kB`` field of a /proc file (``/proc/self/status``, ``/proc/meminfo``), None elsewhere."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _status_kb(key: str) -> int | None:
    return proc_field_kb("/proc/self/status", key)


def _malloc_trim() -> None:
    """Return freed heap pages to the OS (glibc), so the next RSS baseline counts live memory only."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of one configuration in MB: CUDA allocator peak or CPU VmHWM above a baseline.

    ``start()`` before the configuration is built, ``reset()`` once it is built (so build-time
    temporaries such as VGG19's classifier do not count), ``peak_mb()`` after its iterations.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0
        self.ok = True

    def _clean(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        else:
            _malloc_trim()

    def start(self) -> None:
        self._clean()
        if self.device.type == "cuda":
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = _status_kb("VmRSS") or 0

    def reset(self) -> None:
        self._clean()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.ok = _reset_hwm() and _status_kb("VmHWM") is not None

    def peak_mb(self) -> float | None:
        if self.device.type == "cuda":
            return (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
        if not self.ok:
            return None
        return (_status_kb("VmHWM") - self.base) / 1024


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call of ``fn`` (torch.utils.flop_counter: matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def trace_ops(fn: Callable[[], object], device: torch.device, top: int = 12) -> list[dict]:
    """torch.profiler over one call of ``fn``: the ``top`` ops by self time, with input shapes."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        fn()
        sync_device(device)
    events = prof.key_averages(group_by_input_shape=True)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, attr) for e in events) or 1.0
    ranked = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:top]
    return [
        {
            "op": e.key,
            "shapes": str(e.input_shapes)[:120],
            "calls": int(e.count),
            "self_ms": getattr(e, attr) / 1e3,
            "share": getattr(e, attr) / total,
        }
        for e in ranked
    ]


# A configuration whose repeats spread more than this (max - min over the median) is too noisy
# for a verdict: its targets read "unstable" instead of met / missed.
MAX_SPREAD = 0.15


def time_stats(times: list[float]) -> dict:
    """Seconds of the repeats -> median, min, max, spread = (max - min) / median, and the repeats."""
    median = statistics.median(times)
    return {
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "spread": (max(times) - min(times)) / median if median > 0 else 0.0,
        "times_s": list(times),
    }


def paired_ratio(times: list[float], base_times: list[float]) -> dict:
    """Ratio of medians, and the range of ratios over the interleaved pairs (repeat i of each side).

    Round-robin timing puts repeat i of every configuration next to repeat i of the baseline, so
    the per-pair ratios see the same machine state; their range shows how far noise moves the ratio.
    """
    pairs = [a / b for a, b in zip(times, base_times) if b > 0]
    return {
        "ratio": ratio_of(statistics.median(times), statistics.median(base_times)) if times and base_times else None,
        "ratio_min": min(pairs) if pairs else None,
        "ratio_max": max(pairs) if pairs else None,
    }


def is_unstable(*spreads: float | None, limit: float = MAX_SPREAD) -> bool:
    """True when any side's spread exceeds ``limit`` (its median is not a number to judge by)."""
    return any(s is not None and s > limit for s in spreads)


def ratio_of(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def quiet_basicsr() -> Iterator[None]:
    """BasicSR logs every network and model it builds at INFO; keep the benchmark's output readable."""
    from basicsr.utils import get_root_logger

    logger = get_root_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def cuda_calls_stay_on_cpu(device: torch.device) -> Iterator[None]:
    """basicsr's RealESRGANModel.__init__ calls .cuda() on its JPEG/USM helpers: a no-op on CPU."""
    if device.type == "cuda":
        yield
        return
    original = torch.nn.Module.cuda
    torch.nn.Module.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.nn.Module.cuda = original


# -- inputs ---------------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()} ({os.cpu_count()} logical CPUs)"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
