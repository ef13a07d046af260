"""The GPU check's step runner: each step a process (group) with a time limit taken from what is
left of the budget, so a slow or stuck step costs its own time only and the report is written.

A step past its limit gets SIGTERM (the benchmark programs stop there and write what they have),
then, after a grace period, SIGKILL for its whole process group (torchrun's ranks included).
The limit of a step is ``min(its cap, time left - the floors of the steps after it)``: a step
that runs long cannot take the minimum the later steps need.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

GRACE_S = 10.0  # between SIGTERM and SIGKILL
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
