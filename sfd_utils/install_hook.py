"""Write (or remove) the interpreter-start hook ``sfd_basicsr_hook.pth`` in site-packages.

``pip install .`` ships the hook inside the wheel and ``pip install -e .`` gets it from our
``editable_wheel`` command (see setup.py); this module is the explicit route for anything else:
``python -m sfd_utils.install_hook [--remove] [--site DIR]``. The hook only imports
``sfd_utils.compat`` (standard library only) when the package is importable.
"""

from __future__ import annotations

import argparse
import os
import sysconfig

HOOK_NAME = "sfd_basicsr_hook.pth"
HOOK_LINE = (
    "import importlib.util as _u; "
    "_u.find_spec('sfd_utils') is not None and __import__('sfd_utils.compat').compat.install()\n"
)


def hook_path(site: str | None = None) -> str:
    return os.path.join(site or sysconfig.get_paths()["purelib"], HOOK_NAME)


def write_hook(site: str | None = None) -> str:
    path = hook_path(site)
    with open(path, "w", encoding="utf-8") as f:
        f.write(HOOK_LINE)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--remove", action="store_true", help="remove the hook instead of writing it")
    parser.add_argument("--site", default=None, help="site-packages folder (default: this interpreter's)")
    args = parser.parse_args(argv)
    path = hook_path(args.site)
    if args.remove:
        if os.path.exists(path):
            os.remove(path)
        print(f"removed {path}")
    else:
        print(f"wrote {write_hook(args.site)}")


if __name__ == "__main__":
    from sfd_utils.cli import run_cli

    raise SystemExit(run_cli(main))
