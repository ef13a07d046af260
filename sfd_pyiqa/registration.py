"""Register SFD-IQA with pyiqa: the ``sfd_iqa`` metric and the ``SFDIQA`` network behind it.

pyiqa's ``create_metric(name)`` first asserts that ``name`` is a key of
``pyiqa.default_model_configs.DEFAULT_CONFIGS``, then builds ``metric_opts['type']`` from its
``ARCH_REGISTRY``, which loads the plugins of the entry-point group ``pyiqa.archs`` on first use.
So two things happen, each where pyiqa looks for it:

- :func:`register` adds the ``sfd_iqa`` entry to ``DEFAULT_CONFIGS`` (in place: pyiqa's modules hold
  that dict by reference). ``sfd_utils.compat``'s start-up hook calls it once ``pyiqa`` has finished
  importing; a process without the hook (``SFD_BASICSR_NO_AUTOLOAD=1``) calls it itself;
- :func:`register_arch` is this package's ``pyiqa.archs`` entry point (see setup.py): pyiqa calls it
  when its network registry is first queried, and it puts :class:`SFDIQAArch` there as ``SFDIQA``.

Nothing here is imported unless pyiqa is; pyiqa's code is not copied (its licence is non-commercial).
"""

from __future__ import annotations

METRIC_NAME = "sfd_iqa"
ARCH_NAME = "SFDIQA"
# A no-reference metric, higher is better, Q in [0, 1] (pyiqa's score_range is a "low, high" string).
METRIC_CONFIG = {"metric_opts": {"type": ARCH_NAME}, "metric_mode": "NR", "lower_better": False, "score_range": "0, 1"}


def register_arch() -> str:
    """Put SFDIQAArch into pyiqa's ARCH_REGISTRY as ``SFDIQA`` (idempotent; another object under that
    name is a conflict, reported in one line). Returns the registered name."""
    from pyiqa.utils.registry import ARCH_REGISTRY

    from sfd_pyiqa.sfd_iqa_arch import SFDIQAArch

    current = ARCH_REGISTRY._obj_map.get(ARCH_NAME)  # not `in`: that would load the entry points again
    if current is None:
        ARCH_REGISTRY.register(SFDIQAArch, name=ARCH_NAME)
    elif current is not SFDIQAArch:
        raise RuntimeError(f"pyiqa's arch registry already has a different {ARCH_NAME!r} ({current.__module__})")
    return ARCH_NAME


def register() -> str:
    """Add ``sfd_iqa`` to pyiqa's DEFAULT_CONFIGS (idempotent; a different entry under that name is a
    conflict, reported in one line). Imports pyiqa's config table only. Returns the metric name."""
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    entry = DEFAULT_CONFIGS.get(METRIC_NAME)
    if entry is None:
        DEFAULT_CONFIGS[METRIC_NAME] = {k: dict(v) if isinstance(v, dict) else v for k, v in METRIC_CONFIG.items()}
    elif entry.get("metric_opts", {}).get("type") != ARCH_NAME:
        raise RuntimeError(f"pyiqa's DEFAULT_CONFIGS already has a different {METRIC_NAME!r} metric: {entry}")
    return METRIC_NAME
