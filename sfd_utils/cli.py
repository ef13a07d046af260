"""Shared command-line behaviour of the scripts (standard library only).

Every ``scripts/*.py`` is three lines around :func:`launch`: the program's argument parser lives in
its package's ``cli`` module (standard library only), so ``--help`` and argument errors answer
without importing torch or basicsr; then the dependencies are checked (a Python without them gets
one line naming what is missing and how to get it); then the start-up hook is installed and the
program runs, with known failures printed as one ``error:`` line.

Every script and the training launcher share one exit-status contract (:data:`EXIT_CODES`), stated
in each ``--help`` (:func:`with_exit_codes`) and in the README:

    0  all done
    1  done, but some inputs were skipped (each is named in the output)
    2  bad arguments or input (one ``error:`` line), or nothing to do
    3  interrupted (Ctrl-C or SIGTERM); what was finished is kept
    4  failed: the run could not finish for another reason (training diverged, out of memory,
       a bug); the message or traceback says which
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence

EXIT_OK = 0
EXIT_SKIPPED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 3
EXIT_FAILED = 4
EXIT_CODES = {
    EXIT_OK: "all done",
    EXIT_SKIPPED: "done, but some inputs were skipped (each is named in the output)",
    EXIT_USAGE: "bad arguments or input (one error: line), or nothing to do",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C or SIGTERM); what was finished is kept",
    EXIT_FAILED: "failed for another reason (training diverged, out of memory, a bug): see the message",
}
EXIT_CODES_EPILOG = "exit status: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."
EXIT_CODES_TABLE = "exit status:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())
KNOWN_FAILURES = (FileNotFoundError, ValueError, KeyError, ImportError)
# import name -> pip name, for the message of a Python that lacks them
REQUIRED = {
    "torch": "torch",
    "torchvision": "torchvision",
    "numpy": "numpy",
    "cv2": "opencv-python",
    "yaml": "pyyaml",
    "basicsr": "basicsr",
    "open_clip": "open_clip_torch",
    "skimage": "scikit-image",
    "matplotlib": "matplotlib",
}
# SFD-IQA scoring also runs where basicsr is absent (a traiNNer-redux environment)
SCORING = ("torch", "numpy", "cv2", "open_clip")


def skipped_status(n_skipped: int) -> int:
    """:data:`EXIT_SKIPPED` when inputs were skipped (the caller has named them), else :data:`EXIT_OK`."""
    return EXIT_SKIPPED if n_skipped else EXIT_OK


def with_exit_codes(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Append the exit-status contract to ``parser``'s ``--help`` (once): a table where the parser keeps
    its text as written, one paragraph where argparse re-wraps it."""
    raw = issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter)
    text = EXIT_CODES_TABLE if raw else EXIT_CODES_EPILOG
    if "exit status:" not in (parser.epilog or ""):
        parser.epilog = f"{parser.epilog}\n\n{text}" if parser.epilog else text
    return parser


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts():
    """While inside, SIGTERM (``kill``, ``timeout``, a job scheduler) ends the program like Ctrl-C (exit
    status 3 after the program's own clean-up); the previous handler is restored afterwards. Only where
    SIGTERM has its default action, in the main thread."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """``main(argv)`` under the exit-status contract: known failures (missing file, bad option, unfit
    checkpoint) are one ``error: ...`` line and status 2; Ctrl-C / SIGTERM are one line and status 3;
    anything else is a traceback and status 4 (never 1, which means skipped inputs)."""
    try:
        return main(argv)
    except KNOWN_FAILURES as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: outputs written so far are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except Exception:
        import traceback

        traceback.print_exc()
        print(
            f"error: failed unexpectedly (exit status {EXIT_FAILED}); the traceback above says where", file=sys.stderr
        )
        return EXIT_FAILED


def _installed(module: str) -> bool:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a finder that refuses the name: not importable here
        return False
    # This repo's `basicsr/` folder (the launcher, no __init__.py) is a namespace package: it is found
    # even where basicsr is not installed, and then `basicsr.utils` fails with a misleading message.
    return spec is not None and spec.origin not in (None, "namespace")


def missing_dependencies(modules: Sequence[str] = tuple(REQUIRED)) -> list[str]:
    """The pip names of the required packages this Python cannot import."""
    return [REQUIRED.get(m, m) for m in modules if not _installed(m)]


def dependency_message(missing: Sequence[str]) -> str:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    venv_python = os.path.join(repo, ".venv", "bin", "python")
    hint = (
        f"use the project's environment: `{os.path.relpath(venv_python)} scripts/...` or `source .venv/bin/activate` "
        "first"
        if os.path.exists(venv_python)
        else "run `make setup` in the repository (it creates .venv), then `source .venv/bin/activate`"
    )
    return (
        f"error: this Python ({sys.executable}) has no {', '.join(missing)}: {hint}; or install them into "
        "your own environment (`pip install torch torchvision`, then "
        "`pip install --no-build-isolation -e '.[basicsr]'`)"
    )


def require_dependencies(modules: Sequence[str] = tuple(REQUIRED)) -> None:
    """Exit with status 2 and one line naming the missing packages and the fix."""
    missing = missing_dependencies(modules)
    if missing:
        print(dependency_message(missing), file=sys.stderr)
        raise SystemExit(2)


def launch(
    parser: Callable[[], argparse.ArgumentParser],
    runner: str,
    argv: Sequence[str] | None = None,
    needs: Sequence[str] = tuple(REQUIRED),
) -> int:
    """Parse ``argv`` with ``parser()`` (standard library only: ``--help`` and usage errors never
    import torch), check the dependencies, install the start-up hook, then call ``runner``
    (``"package.module:function"``, taking the parsed namespace) through :func:`run_cli`."""
    args = with_exit_codes(parser()).parse_args(argv)
    require_dependencies(needs)

    def start(_argv):
        from sfd_utils.compat import install

        install()  # before anything imports basicsr
        module, _, name = runner.partition(":")
        return getattr(importlib.import_module(module), name)(args)

    with sigterm_interrupts():
        return run_cli(start)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value
