"""The bake-off as a graph of tasks whose results are kept on disk: an interrupted run loses nothing.

Every unit of work (the stage-1 generator, one contestant × GAN weight × D learning rate × seed
fine-tuning, one evaluation on the held-out photos, one realism test, ...) is a :class:`Task` with
the ids of the tasks it needs. Its result is a JSON-able dict written to ``<out>/tasks/<id>.json``
the moment it finishes (a temporary file renamed into place: never half a file). A rerun with the
same ``--out`` reads the finished results and runs only the rest; ``<out>/plan.json`` records the
settings, and a rerun with other settings is refused rather than mixed in (except adding or dropping
methods: their tasks do not depend on each other).

Tasks run in ``jobs`` spawned worker processes (or in this process when ``jobs`` is 1), always with
one torch thread: the result of a task does not depend on where or next to what it ran (float
summation order follows the thread count), so a resumed run reproduces an uninterrupted one.
Costlier tasks start first, so the long runs do not end up alone at the tail.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait


class BakeoffInterrupted(Exception):
    """The run stopped before every task finished (Ctrl-C, or ``stop_after`` in tests); what
    finished is on disk."""


class SettingsMismatch(ValueError):
    """``--out`` holds a bake-off planned with other settings."""


@dataclasses.dataclass
class Task:
    """One unit of work: ``fn(**kwargs)`` -> JSON-able dict. ``kwargs`` may be a function of the
    finished results (for a task whose inputs another task decides, e.g. the chosen learning rate)."""

    id: str
    fn: Callable[..., dict]
    kwargs: dict | Callable[[dict], dict]
    deps: tuple[str, ...] = ()
    cost: float = 1.0  # estimated seconds


class Store:
    """Finished task results, one JSON file each under ``folder``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def path(self, task_id: str) -> str:
        if not task_id or "/" in task_id or task_id.startswith("."):
            raise ValueError(f"bad task id {task_id!r}")
        return os.path.join(self.folder, f"{task_id}.json")

    def done(self, task_id: str) -> bool:
        return os.path.isfile(self.path(task_id))

    def get(self, task_id: str) -> dict:
        with open(self.path(task_id), encoding="utf-8") as f:
            return json.load(f)

    def put(self, task_id: str, result: dict) -> None:
        write_json(self.path(task_id), result)


def write_json(path: str, obj) -> None:
    """``obj`` as JSON at ``path``, through a temporary file renamed into place: never half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def check_plan(out_dir: str, plan: dict, open_settings: tuple[str, ...] = ()) -> None:
    """Write ``plan.json`` on the first run; on a rerun, refuse settings that differ from it.

    ``open_settings``: keys of ``plan["settings"]`` that say *which* methods run (the bake-off's
    contestants and frontier, the study's variants and configurations) rather than how: each of those
    methods' tasks depends on its own settings alone, so a rerun may add or drop some, reusing what is
    on disk. The new values are written to ``plan.json``, the old ones kept under ``"amended"``."""
    path = os.path.join(out_dir, "plan.json")
    plan = json.loads(json.dumps(plan))  # tuples -> lists, as read back
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        history = old.pop("amended", [])

        def split(p: dict) -> tuple[dict, dict]:  # (settings that decide results, everything else)
            fixed = {k: v for k, v in p.get("settings", {}).items() if k not in open_settings}
            return fixed, {k: v for k, v in p.items() if k != "settings"}

        (fixed, rest), (old_fixed, old_rest) = split(plan), split(old)
        if fixed != old_fixed or rest != old_rest:
            keys = sorted(k for k in set(old_fixed) | set(fixed) if old_fixed.get(k) != fixed.get(k))
            keys += sorted(k for k in set(old_rest) | set(rest) if old_rest.get(k) != rest.get(k))
            raise SettingsMismatch(
                f"{out_dir} holds a bake-off with other settings (differing: {', '.join(keys)}); "
                "rerun with the same options to resume it, or choose another --out"
            )
        if old == plan:
            return
        was, now = old.get("settings", {}), plan.get("settings", {})
        changed = {k: was.get(k) for k in open_settings if was.get(k) != now.get(k)}
        plan = {**plan, "amended": [*history, {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "was": changed}]}
    os.makedirs(out_dir, exist_ok=True)
    write_json(path, plan)


def call_one_thread(fn: Callable[..., dict], kwargs: dict) -> dict:
    """``fn(**kwargs)`` with one torch thread (restored afterwards); the result gains ``task_cpu_s``, the
    CPU seconds the task used (what a shared machine's load does not inflate, unlike wall time)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.process_time()
    try:
        out = fn(**kwargs)
    finally:
        torch.set_num_threads(before)
    return {**out, "task_cpu_s": round(time.process_time() - start, 1)}


class _InProcess:
    """An executor that runs each task at submission, in this process."""

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 (re-raised by result(), as a pool would)
            if isinstance(e, KeyboardInterrupt):
                raise
            fut.set_exception(e)
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        return None


def _stop(pool) -> None:
    """Cancel what has not started and end the worker processes this run started (their task is lost,
    its result never written; every finished one is on disk)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _pool(jobs: int, initializer: Callable[[], None] | None):
    if jobs <= 1:
        return _InProcess()
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=initializer)


def run_tasks(
    tasks: list[Task],
    store: Store,
    jobs: int = 1,
    initializer: Callable[[], None] | None = None,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> tuple[dict, dict]:
    """Run every unfinished task once its dependencies are finished. Returns ({id: result},
    {"skipped": finished before this call, "ran": finished now, "seconds": {id: wall s}}).
    ``stop_after``: raise :class:`BakeoffInterrupted` after that many new results (tests)."""
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate task ids")
    known = set(ids)
    for t in tasks:
        missing = [d for d in t.deps if d not in known]
        if missing:
            raise ValueError(f"task {t.id} needs unknown task(s) {missing}")
    results = {t.id: store.get(t.id) for t in tasks if store.done(t.id)}
    pending = {t.id: t for t in tasks if t.id not in results}
    stats = {"skipped": len(results), "ran": 0, "seconds": {}}
    if results:
        log(f"resuming: {len(results)} of {len(tasks)} results already on disk, {len(pending)} to run")
    pool = _pool(jobs, initializer)
    running: dict[Future, tuple[Task, float]] = {}
    try:
        while pending or running:
            ready = sorted((t for t in pending.values() if all(d in results for d in t.deps)), key=lambda t: -t.cost)
            for t in ready[: max(0, jobs - len(running))]:
                kwargs = t.kwargs(results) if callable(t.kwargs) else t.kwargs
                del pending[t.id]
                running[pool.submit(call_one_thread, t.fn, kwargs)] = (t, time.perf_counter())
            if not running:
                raise RuntimeError(f"tasks wait on each other: {sorted(pending)}")
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                t, start = running.pop(fut)
                wall = round(time.perf_counter() - start, 1)
                result = {**fut.result(), "task_wall_s": wall, "task_load": load_average()}
                store.put(t.id, result)
                results[t.id] = result
                stats["ran"] += 1
                stats["seconds"][t.id] = result["task_wall_s"]
                log(f"{t.id}: {stats['seconds'][t.id]} s ({len(results)}/{len(tasks)})")
                if stop_after is not None and stats["ran"] >= stop_after:
                    raise BakeoffInterrupted(f"stopped after {stats['ran']} new results")
    except (KeyboardInterrupt, BakeoffInterrupted) as e:
        _stop(pool)
        raise BakeoffInterrupted(
            f"{str(e) or 'interrupted'}: {len(results)} of {len(tasks)} results are kept in {store.folder}; "
            "rerun the same command to continue"
        ) from None
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    return results, stats
