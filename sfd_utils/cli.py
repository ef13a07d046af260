"""Shared command-line behaviour of the scripts (standard library only).

Every ``scripts/*.py`` is three lines around :func:`launch`: the program's argument parser lives in
its package's ``cli`` module (standard library only), so ``--help`` and argument errors answer
without importing torch or basicsr; then the dependencies are checked (a Python without them gets
one line naming what is missing and how to get it); then the start-up hook is installed and the
program runs, with known failures printed as one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence

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


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """``main(argv)`` with known failures (missing file, bad option, unfit checkpoint) printed as one
    ``error: ...`` line on stderr and exit status 2 instead of a traceback."""
    try:
        return main(argv)
    except KNOWN_FAILURES as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2


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
        "your own environment (`pip install torch torchvision`, `pip install --no-build-isolation basicsr`, "
        "`pip install -e .`)"
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
    args = parser().parse_args(argv)
    require_dependencies(needs)
    from sfd_utils.compat import install

    install()  # before anything imports basicsr
    module, _, name = runner.partition(":")
    run = getattr(importlib.import_module(module), name)
    return run_cli(lambda _argv: run(args))


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value
