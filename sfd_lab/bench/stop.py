"""Stopping a measurement program on SIGTERM with what it measured on disk (standard library only, so a
program installs it before importing torch).

The GPU check's runner gives each step a time limit and sends SIGTERM when it is reached (SIGKILL
after a grace period). A step program keeps a :class:`ResultFile`: its JSON is written when the
program starts (status ``running``), again after each piece of work, and at once when SIGTERM
arrives (status ``stopped``), before :class:`StopRequested` unwinds the program. So even a step
killed while importing torch leaves a JSON that says so.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable


class StopRequested(BaseException):
    """SIGTERM arrived: write what is measured, then exit (status 3). A BaseException, so the
    ``except Exception`` that keeps one failing configuration from losing the others lets it pass."""


def stop_on_sigterm(on_stop: Callable[[], None] | None = None) -> None:
    """SIGTERM calls ``on_stop`` (if given), then raises :class:`StopRequested` in the main thread
    (between Python bytecodes)."""

    def handler(signum, frame):
        if on_stop is not None:
            on_stop()
        raise StopRequested(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


class ResultFile:
    """A step's JSON file: ``data`` written atomically (a temporary file, then a rename) on every
    :meth:`update`, and with ``status: stopped`` when SIGTERM arrives (after :meth:`stop_on_sigterm`)."""

    def __init__(self, path: str, data: dict | None = None, write: bool = True) -> None:
        """``write``: write it now (False: only on an update or SIGTERM)."""
        self.path = path
        self.data = {"status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S"), **(data or {})}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if write:
            self.write()

    def write(self) -> None:
        tmp = f"{self.path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1, default=str)
        os.replace(tmp, self.path)

    def update(self, **data) -> None:
        self.data.update(data)
        self.write()

    def stop_on_sigterm(self) -> None:
        stop_on_sigterm(lambda: self.update(status="stopped", stopped="SIGTERM (the step's time limit)"))
