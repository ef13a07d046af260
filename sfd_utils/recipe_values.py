"""Ranges of a training recipe's numbers and what the machine can hold, before anything is built.

:mod:`sfd_utils.recipe_check` checks a recipe's structure and the kind of each value; this module the
values BasicSR's launcher and our models use before the first iteration, where an out-of-range one
ends as a traceback deep inside (``np.random.seed(-1)``, ``ZeroDivisionError`` from
``dataset_enlarge_ratio: 0``, a storage overflow from ``num_feat: 1e18``, an optimizer step to inf):

- :func:`check_values` (machine-independent, part of ``check_recipe``): the run's name (one plain
  folder name), ``manual_seed`` in 0 ... 2**32-1, iteration counts and frequencies finite whole
  numbers >= 1, ratios and sizes > 0 and bounded, optimizer and scheduler numbers, loss weights, no
  integer beyond 64 bits and no infinity/NaN where a size or a weight is read.
- :func:`check_machine` (the launcher only): ``num_gpu`` against the CUDA devices present, loader
  workers against the CPUs and memory, and one training batch against the free memory.

Both report through the recipe checker's ``fail`` (one ``<recipe>: <key>: <problem>`` line).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

SEED_MAX = 2**32 - 1  # numpy's seed range (basicsr seeds numpy with manual_seed + rank)
INT64 = 2**63 - 1
MAX_WHOLE = 2**53  # whole numbers a float still holds exactly
NETWORK_NUMBER_MAX = 2**20  # no width, depth or size of a network is near a million
BOUNDS = {  # key -> (low, high, whole number): low and high inclusive
    "scale": (1, 16, True),
    "datasets.*.batch_size_per_gpu": (1, 10_000, True),
    "datasets.*.num_worker_per_gpu": (0, 256, True),
    "datasets.*.gt_size": (1, 8192, True),
    "datasets.*.dataset_enlarge_ratio": (1e-6, 1e6, False),
    "gt_size": (1, 8192, True),
    "queue_size": (1, 100_000, True),
    "train.total_iter": (1, MAX_WHOLE, True),
    "train.warmup_iter": (-1, MAX_WHOLE, True),
    "train.net_d_iters": (1, MAX_WHOLE, True),
    "train.net_d_init_iters": (0, MAX_WHOLE, True),
    "train.ema_decay": (0, 1, False),
    "logger.print_freq": (1, MAX_WHOLE, True),
    "logger.save_checkpoint_freq": (1, MAX_WHOLE, True),
    "val.val_freq": (1, MAX_WHOLE, True),
}
OPTIMIZER_BOUNDS = {"lr": (0, 10), "weight_decay": (0, 1), "eps": (1e-30, 1), "momentum": (0, 1)}
SCHEDULER_BOUNDS = {"gamma": (1e-12, 1e6), "eta_min": (0, 10)}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def in_range(c, key: str, value, low, high, whole: bool) -> None:
    """``value`` must be a finite number in [low, high] (a whole number when ``whole``); null and
    other kinds are left to the kind checks."""
    if not _is_number(value):
        return
    if isinstance(value, float) and not math.isfinite(value):
        c.fail(key, f"{value!r}: expected a finite number")
    if whole and value != int(value):
        c.fail(key, f"{value!r}: expected a whole number")
    if not low <= value <= high:
        side = f"at least {low}" if value < low else f"at most {high}"
        c.fail(key, f"{_shown(value)}: must be {side}")


def _walk(node, key: str):
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _walk(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{key}[{i}]")
    else:
        yield key, node


def check_values(c, opt: Mapping) -> None:
    """The ranges of the module doc, on a recipe whose structure and kinds passed."""
    from sfd_utils.train_command import run_name_problem

    problem = run_name_problem(opt.get("name"))
    if problem:
        c.fail("name", problem)
    for key, value in _walk(opt, ""):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64:
            c.fail(key, f"{_shown(value)}: beyond 64 bits; no option takes such a number")
        if key.startswith(("network_", "train.", "datasets.", "val.", "logger.")) and isinstance(value, float):
            if not math.isfinite(value):
                c.fail(key, f"{value!r}: expected a finite number")
        if key.startswith("network_") and _is_number(value) and abs(value) > NETWORK_NUMBER_MAX:
            c.fail(key, f"{_shown(value)}: no network size is near that; at most {NETWORK_NUMBER_MAX}")
    seed = opt.get("manual_seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            c.fail("manual_seed", f"{_shown(seed)}: expected a whole number from 0 to {SEED_MAX} (or null: random)")
        in_range(c, "manual_seed", seed, 0, SEED_MAX, True)
    for key, (low, high, whole) in BOUNDS.items():
        for name, value in _values_at(opt, key):
            if value is None:  # basicsr and the models read these as numbers when the key is there
                c.fail(
                    name, f"null; expected a {'whole ' if whole else ''}number from {low} to {high:g}, or leave it out"
                )
            in_range(c, name, value, low, high, whole)
    train = opt.get("train") if isinstance(opt.get("train"), Mapping) else {}
    for name, section in train.items():
        if not isinstance(section, Mapping):
            continue
        if str(name).startswith("optim_"):
            for key, (low, high) in OPTIMIZER_BOUNDS.items():
                in_range(c, f"train.{name}.{key}", section.get(key), low, high, False)
            for i, beta in enumerate(section.get("betas") or []) if isinstance(section.get("betas"), list) else ():
                in_range(c, f"train.{name}.betas[{i}]", beta, 0, 0.999999999, False)
        elif str(name).endswith("_opt"):
            in_range(c, f"train.{name}.loss_weight", section.get("loss_weight"), 0, 1e6, False)
    scheduler = train.get("scheduler") if isinstance(train.get("scheduler"), Mapping) else {}
    for key, (low, high) in SCHEDULER_BOUNDS.items():
        in_range(c, f"train.scheduler.{key}", scheduler.get(key), low, high, False)
    for key, low in (("milestones", 0), ("periods", 1)):
        steps = scheduler.get(key)
        for i, step in enumerate(steps if isinstance(steps, list) else []):
            in_range(c, f"train.scheduler.{key}[{i}]", step, low, MAX_WHOLE, True)
    _check_queue(c, opt)


def _values_at(opt: Mapping, pattern: str):
    """(name, value) for a dotted pattern where ``*`` matches every key of a mapping."""
    found = [("", opt)]
    for part in pattern.split("."):
        step = []
        for name, node in found:
            if not isinstance(node, Mapping):
                continue
            keys = list(node) if part == "*" else [part] if part in node else []
            step += [(f"{name}.{k}" if name else str(k), node[k]) for k in keys]
        found = step
    return found


def _check_queue(c, opt: Mapping) -> None:
    """RealESRGAN-style models keep a queue of training pairs whose size the batch must divide."""
    queue = opt.get("queue_size")
    train = (opt.get("datasets") or {}).get("train") if isinstance(opt.get("datasets"), Mapping) else None
    batch = train.get("batch_size_per_gpu") if isinstance(train, Mapping) else None
    model = str(opt.get("model_type", ""))
    if ("RealESRGAN" in model or "SFDReal" in model) and _is_number(queue) and _is_number(batch) and batch >= 1:
        if queue % batch:
            c.fail("queue_size", f"{queue} is not divisible by datasets.train.batch_size_per_gpu {batch}")


# -- the machine -------------------------------------------------------------------------------------------
def available_memory() -> int | None:
    """Bytes of memory this process can still take: MemAvailable, lowered by a cgroup limit."""
    found = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            found = None
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            used = int(f.read().strip())
        if limit.isdigit():
            left = int(limit) - used
            found = left if found is None else min(found, left)
    except (OSError, ValueError):
        pass
    return found


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


WORKER_BYTES = 256 << 20  # what one data-loader worker process adds, at least
BATCH_COPIES = 4  # the batch, its collated copy, the network's output and the discriminator's input


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_machine(c, opt: Mapping, dist: bool = False) -> None:
    """``num_gpu`` against the CUDA devices, loader workers against CPUs and memory, one training batch
    against the free memory (what a process of this run needs at least)."""
    import torch

    num_gpu = opt.get("num_gpu")
    devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if _is_number(num_gpu) and num_gpu > 0 and devices == 0:
        c.fail("num_gpu", f"{num_gpu} but no CUDA device: set num_gpu: 0 or auto")
    if _is_number(num_gpu) and num_gpu > devices > 0 and not dist:
        c.fail("num_gpu", f"{num_gpu} but {devices} CUDA device(s): set num_gpu: {devices} or auto")
    per_process = 1 if dist or not _is_number(num_gpu) else max(1, int(num_gpu))
    datasets = opt.get("datasets") if isinstance(opt.get("datasets"), Mapping) else {}
    train = datasets.get("train") if isinstance(datasets.get("train"), Mapping) else {}
    workers, batch = train.get("num_worker_per_gpu"), train.get("batch_size_per_gpu")
    if train.get("prefetch_mode") == "cuda" and (devices == 0 or num_gpu == 0):
        c.fail("datasets.train.prefetch_mode", "cuda needs a CUDA device and num_gpu > 0; use cpu or ~")
    cpus, free = cpu_count(), available_memory()
    if _is_number(workers):
        workers *= per_process
        most = max(8, 4 * cpus)
        if workers > most:
            c.fail(
                "datasets.train.num_worker_per_gpu",
                f"{workers} loader workers on a machine with {cpus} CPU(s); at most {most} (one per CPU is enough)",
            )
        if free is not None and workers * WORKER_BYTES > free:
            c.fail(
                "datasets.train.num_worker_per_gpu",
                f"{workers} loader workers need about {_gib(workers * WORKER_BYTES)}; {_gib(free)} is free",
            )
    size = train.get("gt_size", opt.get("gt_size"))
    scale = opt.get("scale") if _is_number(opt.get("scale")) else 1
    if _is_number(batch) and _is_number(size) and free is not None:
        pixels = batch * per_process * size * size * (1 + 1 / max(1, scale) ** 2)
        need = pixels * 3 * 4 * BATCH_COPIES  # float32 RGB
        if need > free:
            c.fail(
                "datasets.train.batch_size_per_gpu",
                f"{batch} crops of {size}x{size} need about {_gib(need)} for one batch alone; {_gib(free)} is free: "
                "lower the batch size or gt_size",
            )
