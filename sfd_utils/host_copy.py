"""Small device values on the host without making the host wait for the device.

A training step on a GPU must not read values back in its hot path: ``.item()``, ``.tolist()``,
``bool(t)`` each wait until the device has run everything queued so far (a drain), after which the
host issues the next kernels to an idle GPU. :class:`HostCopy` starts an asynchronous copy of a
few values into pinned host memory and records an event after it; :meth:`HostCopy.ready` asks the
event without waiting, and :meth:`HostCopy.values` reads the host memory once it is ready (on a CPU
the values are already on the host). The training loop reads such copies one iteration or more
later, when they are ready anyway, or at the iterations it logs (where it reads the losses too).

Reads of a ready copy are reads of host memory, not device synchronisations: the lab's op counter
(sfd_lab/timing.py) counts reads made in this file separately from host reads.
"""

from __future__ import annotations

import torch


class HostCopy:
    """The values of ``values`` (a small tensor on any device), copied to the host asynchronously."""

    def __init__(self, values: torch.Tensor) -> None:
        values = values.detach()
        self._event = None
        if values.device.type == "cuda":
            self._host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self._host.copy_(values, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host = values.clone()

    def ready(self) -> bool:
        """True when the copy has arrived (asks the device's event without waiting)."""
        return self._event is None or self._event.query()

    def values(self) -> list:
        """The values as Python numbers; waits for the copy only if it has not arrived yet."""
        if self._event is not None and not self._event.query():
            self._event.synchronize()
        return self._host.tolist()
