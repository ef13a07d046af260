"""Start-up compatibility for basicsr 1.4.2 and the plugin's autoload.

This module imports only the standard library, so the interpreter-start hook
(``sfd_basicsr_hook.pth``) can call :func:`install` in every Python process at
negligible cost. It does two things, both lazily:

1. ``torchvision.transforms.functional_tensor`` was removed in torchvision 0.17
   but basicsr 1.4.2 imports it. A meta-path finder, consulted only after the
   normal finders fail, answers for that one name with a module that re-exports
   ``torchvision.transforms._functional_tensor`` (or ``.functional``).
2. When ``basicsr`` finishes importing (the installed copy or a user's fork), the
   plugin packages are imported so their classes are in BasicSR's registries
   without editing the fork. Set ``SFD_BASICSR_NO_AUTOLOAD=1`` to disable this.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import types

SHIM_NAME = "torchvision.transforms.functional_tensor"
SHIM_SOURCES = ("torchvision.transforms._functional_tensor", "torchvision.transforms.functional")
PLUGIN_PACKAGES = ("sfd_arch", "sfd_loss", "sfd_data", "sfd_metric", "sfd_model")
AUTOLOAD_ENV = "SFD_BASICSR_NO_AUTOLOAD"

_plugin_state = {"loading": False, "loaded": False}


class _ShimLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        for source in SHIM_SOURCES:
            try:
                src = importlib.import_module(source)
            except ImportError:
                continue
            module.__dict__.update({k: v for k, v in vars(src).items() if not k.startswith("__")})
            module.__doc__ = f"Alias of {source} installed by sfd_utils.compat for basicsr 1.4.2."
            return
        raise ImportError(f"{SHIM_NAME}: none of {SHIM_SOURCES} could be imported")


class _BasicsrLoader(importlib.abc.Loader):
    """Runs the real loader of ``basicsr``, then imports the plugin packages."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):  # resource readers, get_filename, ... of the real loader
        return getattr(self._real, name)

    def create_module(self, spec):
        return self._real.create_module(spec)

    def exec_module(self, module):
        self._real.exec_module(module)
        if os.environ.get(AUTOLOAD_ENV, "") not in ("", "0"):
            return
        try:
            load_plugin()
        except Exception as err:  # a broken plugin must not make basicsr itself unusable
            import warnings

            warnings.warn(
                f"sfd-basicsr: the plugin failed to load ({type(err).__name__}: {err}); its classes are not "
                f"registered. Set {AUTOLOAD_ENV}=1 to skip it.",
                RuntimeWarning,
                stacklevel=2,
            )


class _Finder(importlib.abc.MetaPathFinder):
    """Appended to ``sys.meta_path``: it answers only for two names, and for the shim only
    when no other finder has the real module (older torchvision keeps working untouched)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == SHIM_NAME:
            return importlib.machinery.ModuleSpec(fullname, _ShimLoader())
        return None


class _BasicsrFinder(importlib.abc.MetaPathFinder):
    """Placed first in ``sys.meta_path``: asks the other finders for ``basicsr`` and wraps
    the loader so that the plugin is imported once basicsr has finished importing."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "basicsr" or _plugin_state["loaded"]:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and not isinstance(spec.loader, _BasicsrLoader):
                    spec.loader = _BasicsrLoader(spec.loader)
                return spec
        return None


def load_plugin() -> None:
    """Import every plugin package once (registers archs, losses, datasets, metrics, models)."""
    if _plugin_state["loaded"] or _plugin_state["loading"]:
        return
    _plugin_state["loading"] = True
    try:
        for name in PLUGIN_PACKAGES:
            importlib.import_module(name)
        _plugin_state["loaded"] = True
    finally:
        _plugin_state["loading"] = False


def install() -> None:
    """Install both finders (idempotent). Call before anything imports basicsr."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
    if not any(isinstance(f, _BasicsrFinder) for f in sys.meta_path) and "basicsr" not in sys.modules:
        sys.meta_path.insert(0, _BasicsrFinder())


def import_plugin_modules(package: str, package_file: str, suffix: str) -> list[str]:
    """Import every ``*<suffix>.py`` module of a plugin package (registration by decorator).

    Called from each package ``__init__``. basicsr is imported first, with the shim in place,
    so that the autoload hook (if enabled) runs before any of our modules is half-imported.
    """
    install()
    importlib.import_module("basicsr")
    folder = os.path.dirname(os.path.abspath(package_file))
    names = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(suffix + ".py"))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
