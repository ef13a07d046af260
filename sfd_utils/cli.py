"""Shared command-line behaviour of the scripts (standard library only)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

KNOWN_FAILURES = (FileNotFoundError, ValueError, KeyError, ImportError)


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """``main(argv)`` with known failures (missing file, bad option, unfit checkpoint) printed as one
    ``error: ...`` line on stderr and exit status 2 instead of a traceback."""
    try:
        return main(argv)
    except KNOWN_FAILURES as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
