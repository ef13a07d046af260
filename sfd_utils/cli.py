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
    2  bad arguments or input (one ``error:`` line), a run this machine cannot hold (training out
       of memory names the keys to lower), or nothing to do
    3  interrupted (Ctrl-C or SIGTERM); what was finished is kept
    4  failed: the run could not finish for another reason (training diverged, a bug); the message
       or traceback says which

The contract holds by construction: every entry point (``scripts/*.py``, the console scripts, the
training launcher) runs inside :func:`run_cli`, the one top-level handler. Known failures are one
line and 2; Ctrl-C / SIGTERM 3; any other exception, or a program that exits 1 without naming skipped
inputs, 4 with the traceback on screen and in the run's log file (where a log file is open). Status 1
exists only as the value of :func:`skipped_status`: a bare ``return 1`` or ``sys.exit(1)`` becomes 4.
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
    EXIT_USAGE: "bad arguments or input (one error: line), a run this machine cannot hold, or nothing to do",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C or SIGTERM); what was finished is kept",
    EXIT_FAILED: "failed for another reason (training diverged, a bug): see the message or traceback",
}
EXIT_CODES_EPILOG = "exit status: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."
EXIT_CODES_TABLE = "exit status:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())
# Bad input: the message names the file, option or key (ValueError covers InputFileError,
# CheckpointError, RecipeError, UnreadableImage); path errors are about paths the user gave.
KNOWN_FAILURES = (
    FileNotFoundError,
    ValueError,
    KeyError,
    ImportError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    FileExistsError,
)
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


class _SkippedStatus(int):
    """Exit status 1 as :func:`skipped_status` makes it: the only 1 :func:`run_cli` lets through."""


def skipped_status(n_skipped: int) -> int:
    """:data:`EXIT_SKIPPED` when inputs were skipped (the caller has named them), else :data:`EXIT_OK`."""
    return _SkippedStatus(EXIT_SKIPPED) if n_skipped else EXIT_OK


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


def _log_to_files(text: str) -> None:
    """Append ``text`` to every log file a ``logging.FileHandler`` has open (BasicSR's run log)."""
    import logging

    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {h for lg in loggers for h in getattr(lg, "handlers", ()) if isinstance(h, logging.FileHandler)}
    for handler in handlers:
        if handler.stream is not None:
            handler.acquire()
            try:
                handler.stream.write(text if text.endswith("\n") else text + "\n")
                handler.flush()
            except (OSError, ValueError):  # a closed or full log file: the screen still has it
                pass
            finally:
                handler.release()


def _failed(message: str, with_traceback: bool = True) -> int:
    """Print (and log) the current traceback and ``message``; return :data:`EXIT_FAILED`."""
    import traceback

    text = traceback.format_exc() if with_traceback else ""
    line = f"error: {message} (exit status {EXIT_FAILED})"
    print(f"{text}{line}", file=sys.stderr)
    _log_to_files(f"{text}{line}")
    return EXIT_FAILED


def _status(code) -> int:
    """A program's return value as an exit status: None is 0; 1 only from :func:`skipped_status`."""
    if code is None or code == EXIT_OK and not isinstance(code, bool):
        return EXIT_OK
    if isinstance(code, _SkippedStatus) or (type(code) is int and code in EXIT_CODES and code != EXIT_SKIPPED):
        return int(code)
    return _failed(f"the program ended with status {code!r} without naming skipped inputs: a bug", False)


def _exit_code(err: SystemExit) -> int:
    """A ``SystemExit`` raised inside a program, under the contract: a status of the contract other
    than 1 goes on as it is (argparse's 0 and 2); a message is a one-line refusal (2); 1 or anything
    else is a failure (4)."""
    if isinstance(err.code, str):
        print(err.code, file=sys.stderr)
        return EXIT_USAGE
    if err.code is None or (type(err.code) is int and err.code in EXIT_CODES and err.code != EXIT_SKIPPED):
        raise err
    return _failed(f"the program exited with status {err.code!r} (sys.exit) instead of the contract's statuses")


def readable_output() -> None:
    """Print file names that are not UTF-8 (surrogate escapes) as ``\\xe9`` instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="backslashreplace")


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """``main(argv)`` under the exit-status contract, the top-level handler of every entry point: known
    failures (missing file, bad option, unfit checkpoint) are one ``error: ...`` line and status 2;
    Ctrl-C / SIGTERM are one line and status 3; anything else is a traceback (also written to the
    run's open log files) and status 4. Status 1 only as :func:`skipped_status` returns it."""
    readable_output()
    try:
        return _status(main(argv))
    except KNOWN_FAILURES as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) and err.args else err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: outputs written so far are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as err:
        return _exit_code(err)
    except Exception:
        return _failed("failed unexpectedly; the traceback above says where")


def run_entry(main: Callable[[], int | None]) -> None:
    """``sys.exit(run_cli(...))`` for an entry point that takes no arguments (the training launcher)."""
    with sigterm_interrupts():
        code = run_cli(lambda _argv: main())
    raise SystemExit(code)


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
    p = with_exit_codes(parser())
    p.allow_abbrev = False  # `--forc` must not mean `--force`: every option is spelt out
    args = p.parse_args(argv)
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


MAX_PIXELS_HELP = (
    "images whose header declares more pixels are skipped before decoding (default: 67M = 64*2^20, above "
    "8K UHD's 33M); e.g. 150M or 1.5e8. Files over 8 bytes per allowed pixel (+16 MB) are skipped too"
)


def pixel_count(text: str) -> int:
    """argparse type of ``--max-pixels``: a positive number of pixels, ``150000000``, ``1.5e8`` or ``150M``."""
    factor = 1_000_000 if text[-1:] in "mM" else 1
    try:
        value = float(text[:-1] if factor > 1 else text) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels such as 150M, got {text!r}") from None
    if not 1 <= value <= 1e12:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1e12 pixels, got {text}")
    return int(value)
