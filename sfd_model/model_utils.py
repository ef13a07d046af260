"""Pieces every sfd-basicsr model shares: CPU-safe DDP, exactly resumable training states,
atomic checkpoint files and the non-finite loss guard.

BasicSR's ``BaseModel.model_to_device`` passes ``device_ids=[torch.cuda.current_device()]`` to
DDP (crashes without CUDA); its ``.state`` file holds no RNG or GradScaler state and no position in
the epoch, so a resumed run draws different random numbers than an uninterrupted one; it writes
checkpoints in place (a kill leaves a truncated file); and a NaN loss silently poisons the weights.
:class:`ResumableMixin` fixes all of these; put it before the BasicSR model class in the bases.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from basicsr.utils import get_root_logger
from torch.nn.parallel import DataParallel, DistributedDataParallel

from sfd_utils import resume
from sfd_utils.resume import NonFiniteLossError

DEFAULT_NONFINITE_MAX_SKIPS = 5


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states as weights_only-loadable objects."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class ResumableMixin:
    """Mixin for BasicSR models: CPU-safe DDP; RNG, GradScaler and data position in the training
    state; atomic checkpoint files; RNG-neutral validation; the non-finite loss guard
    (``train.nonfinite_max_skips``); pretrained-network files that do not fit named in one line."""

    def load_network(self, net, load_path, strict=True, param_key="params"):
        """BasicSR's loader; a file that does not fit ``net`` raises CheckpointError naming the file,
        the network and the keys that differ (instead of PyTorch's list of every key)."""
        try:
            return super().load_network(net, load_path, strict, param_key)
        except (RuntimeError, KeyError):
            from sfd_utils.checkpoint import (
                CheckpointError,
                compare_keys,
                describe_problems,
                extract_state_dict,
                read_checkpoint,
            )

            bare = self.get_bare_model(net)
            what = f"{load_path} does not fit {type(bare).__name__}"
            try:
                sd, _ = extract_state_dict(read_checkpoint(load_path), param_key)
            except CheckpointError as why:
                raise CheckpointError(f"{what}: {why}") from None
            problems = compare_keys(sd, bare)  # extract_state_dict already dropped `module.` prefixes
            if not any(problems.values()):
                raise
            raise CheckpointError(
                f"{what} ({describe_problems(problems, 3)}); check the path.pretrain_network_* "
                "entries (net_g_* = generator, net_d_* = discriminator)"
            ) from None

    def model_to_device(self, net):
        net = net.to(self.device)
        if not any(p.requires_grad for p in net.parameters()):
            return net  # nothing to synchronise (e.g. SFDBicubicUpsampler); DDP would refuse it
        if self.opt["dist"]:
            device_ids = [torch.cuda.current_device()] if self.device.type == "cuda" else None
            net = DistributedDataParallel(
                net, device_ids=device_ids, find_unused_parameters=self.opt.get("find_unused_parameters", False)
            )
        elif self.opt["num_gpu"] > 1:
            net = DataParallel(net)
        return net

    # ------------------------------------------------------------------ training state
    save_network = resume.save_network  # atomic: a kill never leaves a partial net_*.pth
    save_training_state = resume.save_training_state  # atomic, with _extra_training_state()

    def note_data_position(self, data: dict) -> None:
        """Remember where in its epoch a training batch ends (batches from the launcher's seeded
        sampler carry it), to save it in the training state. Call from ``feed_data``."""
        pos = resume.batch_position(data)
        if pos is not None:
            self.data_position = {**pos, "world_size": self.opt.get("world_size", 1)}

    def _extra_training_state(self) -> dict:
        """Extra objects saved in the ``.state`` file (override to add more)."""
        extra = {"rng": rng_state()}
        scalers = getattr(self, "grad_scalers", None) or {}
        if scalers:
            extra["grad_scalers"] = {name: scaler.state_dict() for name, scaler in scalers.items()}
        if getattr(self, "data_position", None) is not None:
            extra["data_position"] = dict(self.data_position)
        return extra

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if "rng" in resume_state:
            set_rng_state(resume_state["rng"])
        scalers = getattr(self, "grad_scalers", None) or {}
        saved = resume_state.get("grad_scalers") or {}
        if "grad_scaler" in resume_state:  # states written before one scaler per optimizer: one for all
            saved = {name: resume_state["grad_scaler"] for name in scalers}
        for name, scaler in scalers.items():
            if name in saved:
                scaler.load_state_dict(saved[name])
        self.data_position = resume_state.get("data_position")

    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        """BasicSR's validation, leaving every RNG as it found it: training continues the same
        whether or not (and how often) it validates, as a resumed run needs."""
        state = rng_state()
        try:
            return super().validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            set_rng_state(state)

    # ------------------------------------------------------------------ non-finite losses
    def nonfinite_terms(self, loss_dict: dict, names=None) -> list[str]:
        """Names of the loss terms (all of ``loss_dict``, or ``names``) that are NaN or infinite."""
        items = [(k, v) for k, v in loss_dict.items() if names is None or k in names]
        items = [(k, v) for k, v in items if torch.is_tensor(v)]
        if not items:
            return []
        finite = torch.stack([torch.isfinite(v.detach()).all() for _, v in items]).tolist()  # one sync
        return [k for (k, _), ok in zip(items, finite) if not ok]

    def skip_step(self, current_iter: int, step: str, bad: list[str], loss_dict: dict) -> None:
        """Log a skipped optimizer step: iteration, which step, the non-finite terms and values."""
        self.warn_skip(current_iter, step, {k: float(loss_dict[k].detach().float().mean()) for k in bad})

    def warn_skip(self, current_iter: int, step: str, values: dict) -> None:
        """The warning of a skipped step; ``values``: its loss terms (the non-finite ones are named, or,
        when every term is finite, a non-finite gradient is)."""
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        listed = ", ".join(f"{k}={v:g}" for k, v in bad.items())
        what = f"non-finite loss ({listed})" if bad else "non-finite gradient"
        limit = self._nonfinite_limit()
        get_root_logger().warning(
            f"iter {current_iter}: {what}; {step} step skipped "
            f"({self._nonfinite_run + 1} iteration(s) in a row"
            f"{f', training stops at {limit}' if limit else ''}; train.nonfinite_max_skips)"
        )

    def _nonfinite_limit(self) -> int:
        value = self.opt["train"].get("nonfinite_max_skips", DEFAULT_NONFINITE_MAX_SKIPS)
        if value in (None, False):
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"train.nonfinite_max_skips must be a whole number >= 0 (0 = never stop), got {value!r}")
        return value

    def count_skip(self, skipped: bool) -> bool:
        """Count an iteration in the run of iterations with a skipped step; True when the run reached
        ``train.nonfinite_max_skips`` (default 5, 0 = never)."""
        self._nonfinite_run = self._nonfinite_run + 1 if skipped else 0
        limit = self._nonfinite_limit()
        return bool(skipped and limit and self._nonfinite_run >= limit)

    def end_nonfinite_check(self, current_iter: int, skipped: bool) -> None:
        """Count iterations with a skipped step in a row; at ``train.nonfinite_max_skips`` (default 5,
        0 = never) save the networks and training state and raise NonFiniteLossError."""
        if self.count_skip(skipped):
            self.stop_nonfinite(current_iter, current_iter)

    def stop_nonfinite(self, flagged_iter: int, current_iter: int) -> None:
        """Save the networks and training state as ``current_iter`` and raise NonFiniteLossError (the
        run of skipped iterations ended at ``flagged_iter``)."""
        epoch = (getattr(self, "data_position", None) or {}).get("epoch", 0)
        self.save(epoch, current_iter)
        raise NonFiniteLossError(
            f"{self._nonfinite_run} iterations in a row (up to iter {flagged_iter}) had a non-finite loss and were "
            f"skipped; networks and training state saved as iteration {current_iter} in "
            f"{self.opt['path']['training_states']}. Lower the learning rate or loss weights, or check the "
            "data, then resume (train.nonfinite_max_skips sets the limit)"
        )

    _nonfinite_run = 0  # iterations in a row with a skipped step
