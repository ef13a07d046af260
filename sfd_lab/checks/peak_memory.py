"""Peak resident memory of a program run, measured from a small parent (standard library only).

``wait4``'s ``ru_maxrss`` counts a child's pages from the moment it is forked: started straight from
a process that holds torch (a test, a benchmark), a program would be charged the parent's gigabyte
before it even starts. :func:`run_measured` therefore starts this file as a small intermediate
process, which starts the program, kills it past a memory or time limit (the process group: what
it started goes too) and writes its status, peak memory and time to a JSON file.

    python sfd_lab/checks/peak_memory.py RESULT.json KILL_MB TIMEOUT_S -- program args...
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass


@dataclass
class Measured:
    """A finished run: exit status (None when killed), peak resident MB, seconds, why it was killed."""

    code: int | None
    peak_mb: float
    seconds: float
    killed: str
    stdout: str
    stderr: str


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:")), 0.0)
    except OSError:
        return 0.0


def _group_rss_mb(pgid: int) -> float:
    """Resident MB of every process in the group (a program and what it started)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    total += _rss_mb(int(entry))
            except OSError:
                continue
    return total


def _intermediate(result: str, kill_mb: float, timeout: float, cmd: list[str]) -> None:
    proc = subprocess.Popen(cmd, start_new_session=True)
    started, killed = time.time(), [""]

    def watch() -> None:
        while proc.returncode is None:
            why = f"killed above {kill_mb:.0f} MB" if _group_rss_mb(proc.pid) > kill_mb else ""
            why = why or (f"killed after {timeout:.0f} s" if time.time() - started > timeout else "")
            if why:
                killed[0] = why
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:  # anything the program left running in its group goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    with open(result, "w") as f:
        json.dump(
            {
                "code": None if killed[0] else proc.returncode,
                "peak_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: kB; the program and what it waited for
                "seconds": round(time.time() - started, 2),
                "killed": killed[0],
            },
            f,
        )


def run_measured(
    cmd: list[str],
    cwd: str | None = None,
    env: dict | None = None,
    kill_mb: float = 3000,
    timeout: float = 300,
) -> Measured:
    """Run ``cmd`` (stdout and stderr captured as text) through the intermediate; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="sfd_measure_") as tmp:
        result = os.path.join(tmp, "result.json")
        out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        with open(out, "wb") as fo, open(err, "wb") as fe:
            subprocess.run(
                [sys.executable, os.path.abspath(__file__), result, str(kill_mb), str(timeout), "--", *cmd],
                cwd=cwd,
                env=env,
                stdout=fo,
                stderr=fe,
                check=False,
            )
        with open(result) as f:
            r = json.load(f)
        with open(out, "rb") as fo, open(err, "rb") as fe:
            texts = [fo.read().decode("utf-8", "backslashreplace"), fe.read().decode("utf-8", "backslashreplace")]
    return Measured(r["code"], r["peak_mb"], r["seconds"], r["killed"], *texts)


if __name__ == "__main__":
    _result, _kill, _timeout, _sep, *_cmd = sys.argv[1:]
    _intermediate(_result, float(_kill), float(_timeout), _cmd)
