"""Register the SFD parts in traiNNer-redux's registries (called when ``traiNNer`` is imported).

``sfd_utils.compat``'s start-up hook calls :func:`register` once ``traiNNer`` has finished importing,
so an unmodified ``python train.py -opt <recipe>.yml`` of traiNNer-redux finds:

- ``network_d: {type: sfddiscriminator, ...}`` (traiNNer lowercases every registered name), the SFD
  discriminator of this plugin. Its ``forward(img)`` returns one packed tensor, so traiNNer's own
  ``ganloss`` (vanilla, lsgan, wgan, wgan_softplus, hinge: each averages over all elements) trains
  it with no extra loss class;
- ``val.metrics: {<name>: {type: calculate_sfd_iqa, checkpoint: ...}}``: SFD-IQA with traiNNer's
  metric calling convention (RGB arrays and ``device``).

Nothing here imports basicsr: the discriminator module registers with basicsr only in a process
that imports basicsr too.
"""

from __future__ import annotations

from collections.abc import Callable


def _add(registry, obj: Callable) -> str:
    """Register ``obj`` under its lowercased name unless that name already maps to it; a different
    object under the name is a conflict (another plugin), reported in one line."""
    name = obj.__name__.lower()
    if name in registry.keys():
        if registry.get(name) is not obj:
            raise RuntimeError(f"traiNNer's {registry._name} registry already has a different {name!r}")
        return name
    registry.register(obj)
    return name


def register() -> dict[str, str]:
    """Put SFDDiscriminator (ARCH) and calculate_sfd_iqa (METRIC) into traiNNer's registries.

    Idempotent. Returns {registered name: registry name}.
    """
    from traiNNer.utils.registry import ARCH_REGISTRY, METRIC_REGISTRY

    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
    from sfd_trainner.sfd_iqa_metric import calculate_sfd_iqa

    return {
        _add(reg, obj): reg._name
        for reg, obj in ((ARCH_REGISTRY, SFDDiscriminator), (METRIC_REGISTRY, calculate_sfd_iqa))
    }
