"""Runs many training command lines fast, each as its own process: a battery runner for the recipe tests.

``python tests/recipe_battery.py CASES.json RESULTS.json [--jobs N] [--timeout S]`` imports torch,
basicsr, the plugin and the launcher once, then forks one child per case (so a case costs a fork, not
a 10 s interpreter start) and runs the real entry point in it, as the shell would:

- ``script``: ``python <root>/basicsr/train.py ARGS`` (the file run as ``__main__``);
- ``console``: the ``sfd-train`` console script (``sfd_utils.launcher:main``) in ``cwd``;
- ``basicsr``: ``python -m basicsr.train ARGS``, BasicSR's own entry as a fork runs it (start the runner
  with ``SFD_BASICSR_SAFE_YAML=1`` for the opt-in hook, which patches basicsr when it is imported).

A child's exit status follows the interpreter's rules (an uncaught exception prints its traceback and
exits 1; ``SystemExit('text')`` prints the text and exits 1). Each child gets its own process group,
is killed with it at the time limit, and its stdout/stderr go to ``<logs>/<id>.log``. Per case the
result holds the exit status (or signal), seconds, the peak resident memory of the child and its
descendants (``wait4``'s ``ru_maxrss``), whether it timed out, and the output's tail. ``--max-data-mb``
caps each child's memory (to measure code that would otherwise take the machine's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def warm_up() -> None:
    """Import what every case needs, once, without starting thread pools (the children fork from here)."""
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    if os.environ.get("SFD_BASICSR_SAFE_YAML", "") not in ("", "0"):
        import basicsr.train  # noqa: F401  (the hook patches basicsr as it is imported)

        return
    import open_clip  # noqa: F401
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (the run's tb logger)

    from sfd_utils.launcher import prepare_basicsr

    prepare_basicsr()


def _run_entry(case: dict) -> int:
    import runpy
    import traceback

    argv = list(case["argv"])
    try:
        if case["entry"] == "script":
            script = os.path.join(case["root"], "basicsr", "train.py")
            sys.argv = [script, *argv]
            runpy.run_path(script, run_name="__main__")
        elif case["entry"] == "console":
            from sfd_utils.launcher import main

            sys.argv = ["sfd-train", *argv]
            main()
        elif case["entry"] == "basicsr":
            sys.argv = ["basicsr/train.py", *argv]
            runpy.run_module("basicsr.train", run_name="__main__", alter_sys=True)
        else:
            raise ValueError(f"unknown entry {case['entry']!r}")
    except SystemExit as err:
        if err.code is None:
            return 0
        if isinstance(err.code, int):
            return err.code
        print(err.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _limit_memory(extra_mb: int | None) -> None:
    """Cap the child's data segment (heap and private mappings) at what it holds now plus ``extra_mb``:
    a memory bomb then fails inside the child instead of taking the machine's memory."""
    if not extra_mb:
        return
    with open("/proc/self/status", encoding="ascii") as f:
        data_kb = next(int(line.split()[1]) for line in f if line.startswith("VmData:"))
    limit = (data_kb << 10) + (extra_mb << 20)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))


def _child(case: dict, log_path: str, extra_mb: int | None) -> None:
    os.setpgid(0, 0)
    _limit_memory(extra_mb)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    code = 1
    try:
        os.chdir(case["cwd"])
        os.environ.update(case.get("env", {}))
        code = _run_entry(case)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: S110  (a closed stream: nothing left to flush)
                pass
        os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


def _tail(path: str, size: int = 4000) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - size))
        return f.read().decode("utf-8", "replace")


def _finish(running: dict, pid: int, status: int, usage, timed_out: bool) -> dict:
    case, log_path, started = running.pop(pid)
    code = os.waitstatus_to_exitcode(status)
    text = _tail(log_path)
    with open(log_path, "rb") as f:
        has_traceback = b"Traceback (most recent call last)" in f.read()
    return {
        "id": case["id"],
        "code": code,
        "timed_out": timed_out,
        "seconds": round(time.monotonic() - started, 3),
        "maxrss_mb": round(usage.ru_maxrss / 1024, 1),
        "traceback": has_traceback,
        "tail": text,
    }


def run_cases(
    cases: list[dict], log_dir: str, jobs: int = 1, timeout: float = 120.0, extra_mb: int | None = None
) -> list[dict]:
    """Fork a child per case (at most ``jobs`` at once), wait with a time limit; results in case order."""
    os.makedirs(log_dir, exist_ok=True)
    pending, running, results = list(cases), {}, {}
    while pending or running:
        while pending and len(running) < jobs:
            case = pending.pop(0)
            log_path = os.path.join(log_dir, f"{case['id']}.log")
            pid = os.fork()
            if pid == 0:
                _child(case, log_path, extra_mb)
            running[pid] = (case, log_path, time.monotonic())
        for pid in list(running):
            case_id = running[pid][0]["id"]
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                results[case_id] = _finish(running, pid, status, usage, False)
            elif time.monotonic() - running[pid][2] > timeout:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _, status, usage = os.wait4(pid, 0)
                results[case_id] = _finish(running, pid, status, usage, True)
        time.sleep(0.005)
    return [results[case["id"]] for case in cases]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("cases", help="JSON list of cases: id, entry, argv, cwd, root, env")
    parser.add_argument("results", help="JSON file written with one result per case")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--logs", help="folder of the cases' output (default: beside RESULTS)")
    parser.add_argument("--max-data-mb", type=int, help="cap each case's data segment at its start plus this")
    args = parser.parse_args(argv)
    with open(args.cases, encoding="utf-8") as f:
        cases = json.load(f)
    started = time.monotonic()
    warm_up()
    warm = time.monotonic() - started
    logs = args.logs or os.path.splitext(args.results)[0] + "_logs"
    results = run_cases(cases, logs, args.jobs, args.timeout, args.max_data_mb)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = {"warm_up_s": round(warm, 2), "total_s": round(time.monotonic() - started, 2)}
    summary["children_cpu_s"] = round(children.ru_utime + children.ru_stime, 1)
    with open(args.results, "w", encoding="utf-8") as f:
        json.dump({"summary": summary, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
