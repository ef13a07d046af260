"""The training step without host reads: the non-finite guard decided on the device, fused Adam,
and logging statistics computed only at the iterations BasicSR logs.

A value read back to the host (``.item()``, ``.tolist()``, ``bool(t)``) makes the host wait until the
GPU has run everything queued (a drain); the next kernels then reach an idle GPU. SFDModel reads
none outside the iterations it logs (``logger.print_freq``):

* **the non-finite guard on the device**: a step whose loss (or gradient) is NaN/inf is skipped by
  the optimizer itself: fused Adam takes a ``found_inf`` flag and leaves the parameters, moments and
  step count as they were when it is set (as under a GradScaler); the EMA and the cached prompt
  features are updated through the same flag. The host learns of a skipped step from an asynchronous
  copy (:class:`~sfd_utils.host_copy.HostCopy`) one iteration or more later, when it has arrived,
  or at the next logged iteration (under DDP only there, so every rank stops at the same iteration;
  the flags include the all-reduced gradients', so the ranks agree on every skip): the warning names
  the iteration, the step and the terms, and
  ``train.nonfinite_max_skips`` skips in a row stop the training (state saved, exit status 4) as
  before. An optimizer that cannot skip on the device (``fused: false``, ``foreach: true``) gets
  the decision from one read of both flags per iteration instead;
* **fused Adam by default** where torch has the kernel for the parameters' device (CUDA, CPU):
  ``optim_g`` / ``optim_d`` without ``fused`` or ``foreach`` get ``fused: true``;
* **logging statistics only when logged**: discriminator outputs and accuracies are computed at
  logged iterations; ``log_dict`` of the others reads its values only when something reads it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping

import torch

from sfd_utils.host_copy import HostCopy


def fused_supported(device: torch.device) -> bool:
    """Whether this torch has fused Adam kernels for ``device``."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        return device.type in _get_fused_kernels_supported_devices()
    except ImportError:
        return device.type == "cuda"


def with_fused_default(options: dict, device: torch.device) -> dict:
    """``optim_*`` options with ``fused: true`` added where neither ``fused`` nor ``foreach`` is set,
    the type is Adam/AdamW and the device has the kernels."""
    chosen = options.get("fused") is not None or options.get("foreach") is not None
    if chosen or options.get("type") not in ("Adam", "AdamW") or not fused_supported(device):
        return options
    return {**options, "fused": True}


def steps_on_device(optimizer) -> bool:
    """Whether ``optimizer.step()`` can skip itself on a ``found_inf`` flag (fused Adam/AdamW/SGD)."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False)) and all(
        group.get("fused") for group in optimizer.param_groups
    )


def _grads(optimizer) -> list[torch.Tensor]:
    return [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]


def nonfinite_grads(optimizer, flag: torch.Tensor) -> None:
    """Set ``flag`` (a 0-dim float) to 1 if any gradient of ``optimizer`` is NaN/inf (on the device)."""
    by_dtype: dict = {}
    for g in _grads(optimizer):
        by_dtype.setdefault((g.device, g.dtype), []).append(g)
    one = torch.ones((), device=flag.device)
    for grads in by_dtype.values():
        torch._amp_foreach_non_finite_check_and_unscale_(grads, flag, one)  # x 1: the gradients stay


class DeferredLog(Mapping):
    """``log_dict`` of an iteration that is not logged: the loss tensors, read on first access (one
    read for all)."""

    def __init__(self, loss_dict: dict) -> None:
        self._tensors = OrderedDict((k, v) for k, v in loss_dict.items())
        self._values: OrderedDict | None = None

    def _read(self) -> OrderedDict:
        if self._values is None:
            items = list(self._tensors.items())
            tensors = [v for _, v in items if torch.is_tensor(v)]
            stacked = torch.stack([v.detach().float().mean() for v in tensors]).tolist() if tensors else []
            numbers = iter(stacked)
            self._values = OrderedDict((k, next(numbers) if torch.is_tensor(v) else v) for k, v in items)
        return self._values

    def __getitem__(self, key):
        return self._read()[key]

    def __iter__(self) -> Iterator:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


class StepGuardMixin:
    """For SFDModel (before ResumableMixin's guard methods in the bases)."""

    _pending_checks: deque | None = None
    _stop_after: int | None = None

    def logs_at(self, current_iter: int) -> bool:
        """Whether BasicSR's loop logs this iteration (``logger.print_freq``; every one if unset)."""
        freq = (self.opt.get("logger") or {}).get("print_freq") or 1
        return current_iter % int(freq) == 0

    def optimizer_options(self, key: str) -> dict:
        """``train.<key>`` with the fused default (:func:`with_fused_default`)."""
        return with_fused_default(dict(self.opt["train"][key]), self.device)

    def loss_flag(self, loss_dict: dict, names: list[str]) -> torch.Tensor:
        """0-dim float on the device: 1 if a term of ``names`` is NaN/inf (nothing is read)."""
        terms = [loss_dict[k].detach().float().reshape(-1) for k in names if torch.is_tensor(loss_dict[k])]
        if not terms:
            return torch.zeros((), device=self.device)
        return (~torch.isfinite(torch.cat(terms)).all()).float()

    def guarded_step(self, optimizer, net: str, bad: torch.Tensor) -> None:
        """Step ``optimizer`` (net 'g'/'d') unless ``bad`` (a device flag) is set, decided on the device.
        Under a GradScaler a bad step's gradients are made NaN, so the scaler skips it (and lowers its
        scale); otherwise the fused step gets ``bad`` (or a NaN/inf gradient) as ``found_inf``."""
        scaler = self.grad_scalers.get(net)
        if scaler is not None:
            poison = torch.where(bad > 0, torch.full_like(bad, float("nan")), torch.ones_like(bad))
            grads = _grads(optimizer)
            if grads:
                torch._foreach_mul_(grads, poison)
            scaler.step(optimizer)
            scaler.update()
            return
        nonfinite_grads(optimizer, bad)
        optimizer.grad_scale, optimizer.found_inf = None, bad
        try:
            optimizer.step()
        finally:
            del optimizer.grad_scale, optimizer.found_inf

    def masked_ema(self, decay: float, ok: torch.Tensor) -> None:
        """BasicSR's ``model_ema`` where ``ok`` (a device flag) is 1, nothing where it is 0."""
        net_g = dict(self.get_bare_model(self.net_g).named_parameters())
        ema = dict(self.net_g_ema.named_parameters())
        keep = torch.where(ok > 0, torch.full_like(ok, decay), torch.ones_like(ok))
        take = torch.where(ok > 0, torch.full_like(ok, 1 - decay), torch.zeros_like(ok))
        targets = [ema[k].data for k in ema]
        torch._foreach_mul_(targets, keep)
        torch._foreach_add_(targets, torch._foreach_mul([net_g[k].data for k in ema], take))

    # -- what the host learns later -----------------------------------------------------------------
    def defer_check(self, current_iter: int, loss_dict: dict, g_terms, d_terms, bad_g, bad_d) -> None:
        """Queue this iteration's losses and skip flags, copied to the host without waiting."""
        names = [k for k in (*g_terms, *d_terms) if torch.is_tensor(loss_dict[k])]
        values = [loss_dict[k].detach().float().mean().reshape(1) for k in names]
        copy = HostCopy(torch.cat([*values, bad_g.reshape(1), bad_d.reshape(1)]))
        if self._pending_checks is None:
            self._pending_checks = deque()
        self._pending_checks.append((current_iter, names, set(g_terms), copy))

    def resolve_checks(self, force: bool) -> None:
        """Log the skipped steps of the queued iterations whose copies have arrived (all of them when
        ``force``, at logged iterations) and count them (``train.nonfinite_max_skips``)."""
        while self._pending_checks and (force or self._pending_checks[0][-1].ready()):
            it, names, g_terms, copy = self._pending_checks.popleft()
            *values, bad_g, bad_d = copy.values()
            self.note_skips(it, dict(zip(names, values)), g_terms, bool(bad_g), bool(bad_d))

    def note_skips(self, it: int, values: dict, g_terms: set, bad_g: bool, bad_d: bool) -> None:
        """Warn about iteration ``it``'s skipped steps and count it in the run of skipped iterations."""
        for step, bad, mine in (("generator", bad_g, True), ("discriminator", bad_d, False)):
            if bad:
                terms = {k: v for k, v in values.items() if (k in g_terms) == mine}
                self.warn_skip(it, step, terms)
        if self.count_skip(bad_g or bad_d) and self._stop_after is None:
            self._stop_after = it

    def stop_if_limit(self, current_iter: int) -> None:
        """After the iteration's work: save and stop if the run of skipped iterations hit the limit."""
        if self._stop_after is not None:
            flagged, self._stop_after = self._stop_after, None
            self.stop_nonfinite(flagged, current_iter)
