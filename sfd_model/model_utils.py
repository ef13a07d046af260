"""Pieces every sfd-basicsr model shares: CPU-safe DDP and exactly resumable training states.

BasicSR's ``BaseModel.model_to_device`` passes ``device_ids=[torch.cuda.current_device()]`` to
DDP (crashes without CUDA) and its ``.state`` file holds no RNG or GradScaler state, so a resumed
run draws different random numbers than an uninterrupted one. :class:`ResumableMixin` fixes both;
put it before the BasicSR model class in the bases.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from basicsr.utils.dist_util import master_only
from torch.nn.parallel import DataParallel, DistributedDataParallel


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
    """Mixin for BasicSR models: CPU-safe DDP, RNG and GradScaler in the training state, and
    pretrained-network files that do not fit named in one line."""

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

    def _extra_training_state(self) -> dict:
        """Extra objects saved in the ``.state`` file (override to add more)."""
        extra = {"rng": rng_state()}
        scaler = getattr(self, "grad_scaler", None)
        if scaler is not None:
            extra["grad_scaler"] = scaler.state_dict()
        return extra

    @master_only
    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        state = {"epoch": epoch, "iter": current_iter, "optimizers": [], "schedulers": []}
        state["optimizers"] = [o.state_dict() for o in self.optimizers]
        state["schedulers"] = [s.state_dict() for s in self.schedulers]
        state.update(self._extra_training_state())
        path = os.path.join(self.opt["path"]["training_states"], f"{current_iter}.state")
        tmp = f"{path}.{os.getpid()}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, path)  # never leave a half-written state behind

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if "rng" in resume_state:
            set_rng_state(resume_state["rng"])
        scaler = getattr(self, "grad_scaler", None)
        if scaler is not None and "grad_scaler" in resume_state:
            scaler.load_state_dict(resume_state["grad_scaler"])
