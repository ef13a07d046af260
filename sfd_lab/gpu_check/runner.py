"""The GPU check's step runner: each step a process (group) with a time limit taken from what is
left of the budget, so a slow or stuck step costs its own time only and the report is written.

A step past its limit gets SIGTERM (the benchmark programs stop there and write what they have),
then, after a grace period, SIGKILL for its whole process group (torchrun's ranks included).
The limit of a step is ``min(its cap, time left - the floors of the steps after it)``: a step
that runs long cannot take the minimum the later steps need.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

GRACE_S = 10.0  # between SIGTERM and SIGKILL
CPU_SCALE = 6  # caps and floors on the CPU rehearsal (tiny sizes, but a slow shared machine)
REPORT_RESERVE_S = 5.0  # kept back for writing the report
MIN_STEP_S = 5.0  # a step with less time than this is skipped, not started


class Runner:
    """Runs steps as processes inside one budget; each step's output goes to ``<out>/logs/<step>.log``."""

    def __init__(self, out: str, budget_s: float, mode: str, root: str, reserve_s: float = 0.0) -> None:
        self.out, self.mode, self.root = out, mode, root  # ``out``: the work folder (logs, step outputs)
        self.deadline = time.time() + budget_s - reserve_s  # ``reserve_s``: kept for writing the report
        self.logs = os.path.join(out, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        path = self.env.get("PYTHONPATH", "")
        if root not in path.split(os.pathsep):  # the repository's packages first, as the shell script sets
            self.env["PYTHONPATH"] = root + (os.pathsep + path if path else "")
        if mode == "cpu":
            self.env["OMP_NUM_THREADS"] = "1"  # tiny sizes: thread start-up would dominate
            self.env["CUDA_VISIBLE_DEVICES"] = ""
        self.floors_after: float = 0.0  # set by the caller before each step (see the module docstring)

    def left(self) -> float:
        return self.deadline - time.time()

    def limit(self, cap: float) -> float:
        return min(cap, self.left() - self.floors_after)

    def skipped(self, name: str, reason: str = "no time left in the budget") -> dict:
        return {"step": name, "status": "skipped", "reason": reason, "wall_s": 0.0}

    def run(self, name: str, cmd: list[str], cap: float, cwd: str | None = None) -> dict:
        """Run ``cmd`` with a timeout of :meth:`limit` (``cap``); never raises."""
        timeout = self.limit(cap)
        log = os.path.join(self.logs, f"{name}.log")
        record = {
            "step": name,
            "command": " ".join("<inline code>" if "\n" in a else a for a in cmd),
            "log": os.path.relpath(log, self.out),
            "limit_s": round(max(timeout, 0.0), 1),
        }
        if timeout < MIN_STEP_S:
            return {**self.skipped(name), **record}
        start = time.time()
        print(f"[gpu_check] {name}: {record['command']} (limit {timeout:.0f} s)", flush=True)
        with open(log, "w") as f:
            try:
                proc = subprocess.Popen(
                    cmd, cwd=cwd or self.root, env=self.env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
                )
            except OSError as err:
                f.write(f"could not start: {err}\n")
                proc = None
            if proc is None:
                rc, status = None, "failed"
            else:
                rc, status = _wait(proc, timeout)
        record.update(status=status, rc=rc, wall_s=round(time.time() - start, 1))
        if status != "ok":
            with open(log) as f:
                record["tail"] = f.read()[-3000:]
        print(f"[gpu_check] {name}: {status} in {record['wall_s']} s", flush=True)
        return record


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the step's own process group (start_new_session): its children too
    except (ProcessLookupError, PermissionError):
        pass


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int | None, str]:
    """(exit status, 'ok' / 'failed' / 'timeout'); past ``timeout``: SIGTERM, then SIGKILL after GRACE_S."""
    try:
        rc = proc.wait(timeout=timeout)
        return rc, "ok" if rc == 0 else "failed"
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
    _signal_group(proc, signal.SIGKILL)  # children that outlived their parent
    return None, "timeout"


def gpu_count() -> int:
    """GPUs listed by ``nvidia-smi -L`` (0 without the tool)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def parse_caps(given: list[str], steps: tuple[str, ...]) -> dict[str, float]:
    """``--cap STEP=SECONDS`` values -> {step: seconds}; a bad one stops with one line."""
    caps = {}
    for item in given or []:
        name, _, value = item.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if name not in steps or seconds <= 0:
            raise SystemExit(f"--cap: expected STEP=SECONDS with STEP one of {list(steps)}, got {item!r}")
        caps[name] = seconds
    return caps


def run_steps(
    runner: Runner,
    sizes: dict,
    only: tuple[str, ...] | None = None,
    plan: tuple = (),
    caps: dict[str, float] | None = None,
) -> list[dict]:
    """Every step of ``plan`` in order (``only``: those named; the others are recorded as not selected);
    ``caps``: a step's limit in seconds instead of the plan's (not scaled for the CPU rehearsal)."""
    scale = 1 if runner.mode == "gpu" else CPU_SCALE
    caps = caps or {}
    records = []
    for i, (name, fn, cap, _) in enumerate(plan):
        if only and name not in only:
            records.append(runner.skipped(name, "not selected (--steps)"))
            continue
        runner.floors_after = scale * sum(f for n, *_, f in plan[i + 1 :] if not only or n in only)
        try:
            records.append(fn(runner, sizes, caps.get(name, scale * cap)))
        except Exception as err:  # a broken step body is that step's failure, never the check's
            records.append({"step": name, "status": "failed", "reason": f"{type(err).__name__}: {err}", "wall_s": 0.0})
    return records


def run_plan(args, plan: tuple, sizes: dict, budget: float, work_name: str, root: str) -> tuple[list[dict], dict]:
    """The steps of ``plan`` (those ``args.steps`` names, with ``args.cap`` limits) inside ``budget`` s
    (setup included): the step records, and the report's ``meta`` (mode, date, command, device,
    GPUs, budget, setup, sizes, work folder, wall seconds with the setup)."""
    import datetime
    import sys
    import time as _time

    started = _time.time()
    os.makedirs(args.out, exist_ok=True)
    work = args.work or os.path.join(args.out, work_name)
    os.makedirs(work, exist_ok=True)
    setup_s = args.setup_seconds or 0.0
    budget = budget if args.budget is None else args.budget
    runner = Runner(work, budget - setup_s, args.mode, root, reserve_s=REPORT_RESERVE_S)
    names = tuple(name for name, *_ in plan)
    only = tuple(s.strip() for s in args.steps.split(",")) if args.steps else None
    unknown = set(only or ()) - set(names)
    if unknown:
        raise SystemExit(f"--steps: unknown step(s) {sorted(unknown)}; choose from {list(names)}")
    steps = run_steps(runner, sizes, only, plan=plan, caps=parse_caps(args.cap, names))
    env = next((s.get("result") or {} for s in steps if s["step"] == "env"), {})
    meta = {
        "mode": args.mode,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": args.command or " ".join(sys.argv),
        "device": (env.get("devices") or ["cpu"])[0] if env else None,
        "gpus": gpu_count(),
        "budget_s": budget,
        "setup": args.setup,
        "setup_s": setup_s,
        "sizes": sizes,
        "work": work,
        "wall_s": _time.time() - started + setup_s,
    }
    return steps, meta


def publish(report: dict, stem: str, markdown: str, summary: list[str]) -> None:
    """Write ``<stem>.json`` (the report) and ``<stem>.md`` (``markdown``), print ``summary`` and what was written."""
    import json

    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=1, default=str)
    with open(stem + ".md", "w") as f:
        f.write(markdown)
    print("\n".join(summary))
    print(f"wrote {stem}.json and {stem}.md")
