"""Start-up compatibility for basicsr 1.4.2 and the plugin's autoload.

This module imports only the standard library, so the interpreter-start hook
(``sfd_basicsr_hook.pth``) can call :func:`install` in every Python process at
negligible cost. All it does is lazy:

1. ``torchvision.transforms.functional_tensor`` was removed in torchvision 0.17
   but basicsr 1.4.2 imports it. A meta-path finder, consulted only after the
   normal finders fail, answers for that one name with a module that re-exports
   ``torchvision.transforms._functional_tensor`` (or ``.functional``).
2. When ``basicsr`` finishes importing (the installed copy or a user's fork), the
   plugin packages are imported so their classes are in BasicSR's registries
   without editing the fork. Set ``SFD_BASICSR_NO_AUTOLOAD=1`` to disable this.
3. When ``traiNNer`` (traiNNer-redux) finishes importing, ``sfd_trainner.registration``
   registers the SFD discriminator and SFD-IQA in traiNNer's registries. That process
   needs no basicsr: the plugin packages then defer their basicsr registration
   (:func:`import_plugin_modules`, :func:`basicsr_register`) until basicsr is imported,
   if ever. The same variable disables this hook.
4. When ``pyiqa`` finishes importing, ``sfd_pyiqa.registration`` adds the ``sfd_iqa`` metric to
   pyiqa's ``DEFAULT_CONFIGS`` (its network comes through pyiqa's ``pyiqa.archs`` entry point), so
   ``pyiqa.create_metric('sfd_iqa', pretrained_model_path=...)`` works. The same variable disables this.
5. Opt-in, ``SFD_BASICSR_SAFE_YAML=1`` (set by the user; the plugin never sets it): when basicsr
   finishes importing, ``basicsr.utils.options`` reads recipes with the plugin's safe loader
   (``sfd_utils.recipe``: data only, ``!!python/...`` tags refused in one line, bounded) and its
   ``parse_options`` never sees a ``--force_yml``: the entries are applied without ``exec``, every
   abbreviation of the flag is refused, and basicsr is handed the updated options
   (``sfd_utils.train_command``), so a fork's own ``basicsr/train.py`` and ``basicsr/test.py`` get
   what this repo's launcher does for the command line. Off by default: nothing of basicsr
   is changed unless asked. Independent of ``SFD_BASICSR_NO_AUTOLOAD``. In a traiNNer process the
   same switch makes ``traiNNer.utils.options.yaml_load`` refuse a recipe that is not data in one line
   (traiNNer already decodes with a safe loader; this only shortens its error).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Callable

SHIM_NAME = "torchvision.transforms.functional_tensor"
SHIM_SOURCES = ("torchvision.transforms._functional_tensor", "torchvision.transforms.functional")
PLUGIN_PACKAGES = ("sfd_arch", "sfd_loss", "sfd_data", "sfd_metric", "sfd_model")
AUTOLOAD_ENV = "SFD_BASICSR_NO_AUTOLOAD"
SAFE_YAML_ENV = "SFD_BASICSR_SAFE_YAML"
_SAFE_YAML = {  # host -> (module, function) that makes its recipe reading safe
    "basicsr": ("sfd_utils.train_command", "make_basicsr_safe"),
    "traiNNer": ("sfd_utils.recipe", "make_trainner_one_line"),
}
TRAINNER = "traiNNer"
TRAINNER_ADAPTER = "sfd_trainner.registration"
PYIQA = "pyiqa"
PYIQA_ADAPTER = "sfd_pyiqa.registration"

_plugin_state = {"loading": False, "loaded": False}
# Packages whose modules were not imported (no basicsr host yet) and classes waiting for basicsr.
_deferred_packages: list[tuple[str, str, str]] = []
_pending_basicsr: list[tuple[str, type]] = []


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


class _HostLoader(importlib.abc.Loader):
    """Runs the real loader of a host package (basicsr, traiNNer, pyiqa), then ``on_loaded()``."""

    def __init__(self, real, on_loaded):
        self._real = real
        self._on_loaded = on_loaded

    def __getattr__(self, name):  # resource readers, get_filename, ... of the real loader
        return getattr(self._real, name)

    def create_module(self, spec):
        return self._real.create_module(spec)

    def exec_module(self, module):
        _hooked.add(module.__name__)
        self._real.exec_module(module)
        if safe_yaml_requested() and module.__name__ in _SAFE_YAML:
            safe_module, function = _SAFE_YAML[module.__name__]
            getattr(importlib.import_module(safe_module), function)()
        if os.environ.get(AUTOLOAD_ENV, "") not in ("", "0"):
            return
        try:
            self._on_loaded()
        except Exception as err:  # a broken plugin must not make the host itself unusable
            import warnings

            warnings.warn(
                f"sfd-basicsr: the plugin failed to load into {module.__name__} ({type(err).__name__}: {err}); "
                f"its classes are not registered. Set {AUTOLOAD_ENV}=1 to skip it.",
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


def _register_with(adapter: str) -> Callable[[], None]:
    return lambda: importlib.import_module(adapter).register()


_HOSTS = {
    "basicsr": lambda: load_plugin(),
    TRAINNER: _register_with(TRAINNER_ADAPTER),
    PYIQA: _register_with(PYIQA_ADAPTER),
}
_hooked: set[str] = set()  # hosts already imported (through our loader or before install())


class _HostFinder(importlib.abc.MetaPathFinder):
    """Placed first in ``sys.meta_path``: asks the other finders for a host package (``basicsr``,
    ``traiNNer``, ``pyiqa``) and wraps its loader so that the plugin is registered once the host has imported."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _HOSTS or fullname in _hooked:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and not isinstance(spec.loader, _HostLoader):
                    spec.loader = _HostLoader(spec.loader, _HOSTS[fullname])
                return spec
        return None


def safe_yaml_requested() -> bool:
    """Whether the user asked for safe recipe loading in basicsr/traiNNer themselves (``SFD_BASICSR_SAFE_YAML``)."""
    return os.environ.get(SAFE_YAML_ENV, "") not in ("", "0")


def load_plugin() -> None:
    """Import every plugin package once (registers archs, losses, datasets, metrics, models with basicsr)."""
    if _plugin_state["loaded"] or _plugin_state["loading"]:
        return
    _plugin_state["loading"] = True
    try:
        for name in PLUGIN_PACKAGES:
            importlib.import_module(name)
        while _deferred_packages:  # imported earlier without basicsr (a traiNNer process)
            import_plugin_modules(*_deferred_packages.pop(0))
        _flush_basicsr()
        _plugin_state["loaded"] = True
    finally:
        _plugin_state["loading"] = False


def install() -> None:
    """Install the finders (idempotent). Call before anything imports basicsr, traiNNer or pyiqa."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
    for host in _HOSTS:  # a host imported before install() was never seen by the finder
        if host in sys.modules:
            _hooked.add(host)
    if not any(isinstance(f, _HostFinder) for f in sys.meta_path) and len(_hooked) < len(_HOSTS):
        sys.meta_path.insert(0, _HostFinder())


def basicsr_is_host() -> bool:
    """Whether plugin modules register with basicsr now: yes once basicsr is imported; no in a
    traiNNer process that has not imported it, nor where basicsr is not installed."""
    if "basicsr" in sys.modules:
        return True
    if TRAINNER in sys.modules:
        return False
    try:
        return importlib.util.find_spec("basicsr") is not None
    except (ImportError, ValueError):
        return False


def basicsr_register(registry: str) -> Callable[[type], type]:
    """Class decorator for modules that must also import without basicsr (the traiNNer path):
    ``@basicsr_register("ARCH_REGISTRY")`` registers into ``basicsr.utils.registry.ARCH_REGISTRY``
    now if basicsr is the host, else as soon as basicsr is imported (never, in a traiNNer-only run)."""

    def deco(obj: type) -> type:
        _pending_basicsr.append((registry, obj))
        if "basicsr" in sys.modules:
            _flush_basicsr()
        return obj

    return deco


def _flush_basicsr() -> None:
    if not _pending_basicsr:
        return
    registries = importlib.import_module("basicsr.utils.registry")
    while _pending_basicsr:
        registry, obj = _pending_basicsr.pop(0)
        getattr(registries, registry).register(obj)


def import_plugin_modules(package: str, package_file: str, suffix: str) -> list[str]:
    """Import every ``*<suffix>.py`` module of a plugin package (registration by decorator).

    Called from each package ``__init__``. basicsr is imported first, with the shim in place,
    so that the autoload hook (if enabled) runs before any of our modules is half-imported.
    Where basicsr is not the host (:func:`basicsr_is_host`) nothing is imported: the package is
    then only a namespace for the modules a traiNNer process imports itself (no basicsr needed),
    and the rest follows if basicsr is imported later.
    """
    install()
    if not basicsr_is_host():
        _deferred_packages.append((package, package_file, suffix))
        return []
    importlib.import_module("basicsr")
    folder = os.path.dirname(os.path.abspath(package_file))
    names = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(suffix + ".py"))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    _flush_basicsr()
    return names
