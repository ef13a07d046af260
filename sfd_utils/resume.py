"""Exact resume for BasicSR's training loop: data order, per-sample randomness, damaged files.

BasicSR resumes the optimizers and schedulers, then restarts the saved epoch from its first batch,
and its datasets draw crops and flips from the process-global ``random``/``numpy`` generators (in
worker processes reseeded to the same value every epoch). A resumed run therefore sees other
batches than an uninterrupted one. The launcher (``sfd_utils.launcher``) swaps in the pieces below:

- :class:`ResumableSampler` (BasicSR's ``EnlargedSampler``, same permutation per epoch) yields
  :class:`SampleKey` indices that carry the epoch, the position in the epoch and a seed derived
  from ``(manual_seed, epoch, rank, position)``; on resume it skips the samples the saved epoch had
  already consumed (their images are never loaded).
- :class:`SeededDataset` wraps the training dataset: each item's ``random``/``numpy``/``torch``
  draws come from its key's seed (the main process's generators are restored afterwards), and the
  item carries ``[epoch, position, samples per epoch]`` under :data:`POSITION_KEY`, which the model
  records and saves in its ``.state``. Augmentation thus depends on neither the worker count nor
  the point of resumption.
- :func:`find_resume_state` picks the newest training state that loads and whose network files
  load, names every damaged file it passes over, and removes temporaries of killed writes.

basicsr is imported lazily (importing it loads the plugin, whose models import this module).
"""

from __future__ import annotations

import contextlib
import glob
import os.path as osp
import random
import sys

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

# No basicsr import at module level: importing basicsr loads the plugin, whose models import this.

POSITION_KEY = "sfd_sample_position"  # (3,) int64 per item: epoch, position in the epoch, samples per epoch


class SampleKey(int):
    """A dataset index (an ``int``, so any dataset accepts it) with ``seed``, ``epoch``, ``position``
    and ``total`` (samples per epoch on this rank) attached."""

    def __new__(cls, index: int, seed: int, epoch: int, position: int, total: int):
        key = super().__new__(cls, index)
        key.seed, key.epoch, key.position, key.total = seed, epoch, position, total
        return key

    def __reduce__(self):  # sent to DataLoader workers by pickle
        return SampleKey, (int(self), self.seed, self.epoch, self.position, self.total)


def sample_seed(base_seed: int, epoch: int, rank: int, position: int) -> int:
    """64-bit seed of one sample, a hash of where it sits in training."""
    words = np.random.SeedSequence([base_seed & 0xFFFFFFFF, epoch, rank, position]).generate_state(2, np.uint32)
    return (int(words[0]) << 32) | int(words[1])


@contextlib.contextmanager
def seeded_rngs(seed: int, restore: bool = True):
    """Seed Python's ``random``, NumPy's global generator and torch's CPU generator with ``seed``
    for the block; with ``restore``, put back their previous states afterwards (the training
    loop's stream is untouched)."""
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state()) if restore else None
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        if saved is not None:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


class ResumableSampler(Sampler):
    """BasicSR's EnlargedSampler (same constructor, same order per epoch, which it computes) yielding
    seeded :class:`SampleKey` indices, able to continue an epoch part-way (:meth:`resume_from`).
    ``seed`` is set by the launcher."""

    def __init__(self, dataset, num_replicas, rank, ratio=1):
        from basicsr.data.data_sampler import EnlargedSampler  # the original (the launcher patches a name)

        self.order = EnlargedSampler(dataset, num_replicas, rank, ratio)
        self.rank = rank
        self.seed = 0
        self._resume: tuple[int, int] | None = None

    @property
    def epoch(self) -> int:
        return self.order.epoch

    def __len__(self) -> int:
        return len(self.order)

    def resume_from(self, epoch: int, samples: int) -> None:
        """The next iteration over ``epoch`` starts after its first ``samples`` indices."""
        self._resume = (int(epoch), int(samples))

    def set_epoch(self, epoch) -> None:
        self.order.set_epoch(epoch)
        if self._resume is not None and self._resume[0] != epoch:
            self._resume = None  # the resumed epoch is over

    def __iter__(self):
        indices = list(self.order)
        start = self._resume[1] if self._resume is not None and self._resume[0] == self.epoch else 0
        total, epoch, seed, rank = len(indices), self.epoch, self.seed, self.rank
        return (SampleKey(indices[p], sample_seed(seed, epoch, rank, p), epoch, p, total) for p in range(start, total))


class SeededDataset(Dataset):
    """A training dataset whose items draw their randomness from their :class:`SampleKey` seed.

    Plain integer indices pass through unchanged. Dict items gain :data:`POSITION_KEY`. Other
    attributes are the wrapped dataset's.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        if name == "dataset":  # during unpickling, before __init__ state is set
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key):
        seed = getattr(key, "seed", None)
        if seed is None:
            return self.dataset[key]
        from torch.utils.data import get_worker_info

        # In a loader worker nothing else draws from these generators: no need to restore them.
        with seeded_rngs(seed, restore=get_worker_info() is None):
            item = self.dataset[int(key)]
        if isinstance(item, dict):
            item = {**item, POSITION_KEY: torch.tensor([key.epoch, key.position, key.total], dtype=torch.int64)}
        return item


def batch_position(data: dict) -> dict | None:
    """Where a training batch ends: ``{'epoch', 'samples', 'total'}`` (samples of the epoch consumed
    on this rank after it, samples per epoch), or None for batches without :data:`POSITION_KEY`."""
    pos = data.get(POSITION_KEY) if isinstance(data, dict) else None
    if not torch.is_tensor(pos) or pos.dim() != 2 or pos.shape[1] != 3:
        return None
    last = pos[:, 1].max().item()
    return {"epoch": int(pos[0, 0].item()), "samples": int(last) + 1, "total": int(pos[0, 2].item())}


# ---------------------------------------------------------------- choosing the state to resume from
def warn(message: str) -> None:
    """Before BasicSR's logger exists (it must be created first), warnings go to stderr."""
    print(f"sfd-basicsr: warning: {message}", file=sys.stderr, flush=True)


def _state_iter(path: str) -> int | None:
    stem = osp.basename(path)[: -len(".state")]
    return int(stem) if stem.isdigit() else None


def network_files(opt: dict, resume_iter: int) -> list[str]:
    """The network files BasicSR's ``check_resume`` will load for ``resume_iter``."""
    ignore = opt["path"].get("ignore_resume_networks") or []
    return [
        osp.join(opt["path"]["models"], f"net_{key[len('network_') :]}_{resume_iter}.pth")
        for key in opt
        if key.startswith("network_") and key not in ignore
    ]


def read_state(path: str, map_location) -> dict:
    """torch.load(weights_only) of a ``.state``; ValueError naming the file and the problem."""
    from sfd_utils.checkpoint import readable_checkpoint_problem

    if not osp.isfile(path) or osp.getsize(path) == 0:
        raise ValueError(f"training state {path} is {readable_checkpoint_problem(path)}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        first = str(err).splitlines()[0].split(". ")[0] if str(err) else ""
        raise ValueError(f"training state {path} is unreadable ({type(err).__name__}: {first[:120]})") from None
    if not isinstance(state, dict) or "iter" not in state:
        raise ValueError(f"training state {path} is not a BasicSR training state (no 'iter')")
    return state


def find_resume_state(opt: dict, state_dirs: list[str], map_location) -> tuple[str, dict] | None:
    """Newest ``<iter>.state`` in the first of ``state_dirs`` that has any, which loads and whose
    network files (``net_<name>_<iter>.pth``) load. Each damaged file passed over is named in a
    warning. Returns (path, state), None when there is no state at all; SystemExit when every
    state is damaged."""
    from sfd_utils.checkpoint import readable_checkpoint_problem

    for state_dir in state_dirs:
        states = [p for p in glob.glob(osp.join(state_dir, "*.state")) if _state_iter(p) is not None]
        if not states:
            continue
        problems = []
        for path in sorted(states, key=_state_iter, reverse=True):
            try:
                state = read_state(path, map_location)
            except ValueError as err:
                problems.append(str(err))
                warn(f"{err}; trying the previous one")
                continue
            bad = [(f, why) for f in network_files(opt, state["iter"]) if (why := readable_checkpoint_problem(f))]
            if bad:
                detail = ", ".join(f"{f} is {why}" for f, why in bad)
                problems.append(f"{path}: {detail}")
                warn(f"not resuming from {path}: its network file {detail}; trying the previous state")
                continue
            return path, state
        raise SystemExit(
            f"sfd-basicsr: --auto_resume found no complete training state in {state_dir} "
            f"({'; '.join(problems)}). Move the damaged files away or start a new experiment name."
        )
    return None


# ---------------------------------------------------------------- writing checkpoints
class NonFiniteLossError(RuntimeError):
    """Training stopped after too many consecutive steps with a non-finite loss (state saved)."""


def _is_master() -> bool:
    from basicsr.utils.dist_util import get_dist_info

    return get_dist_info()[0] == 0


def save_network(model, net, net_label: str, current_iter, param_key="params") -> None:
    """BasicSR's ``BaseModel.save_network`` (same file name and layout), written atomically.

    BasicSR writes the final file in place and, after three failed tries, only logs a warning;
    a kill or a full disk left a truncated ``net_*.pth``. Here a failed write leaves the previous
    file (if any) and no partial one, and is logged as an error naming the file.
    """
    from basicsr.utils import get_root_logger

    from sfd_utils.checkpoint import atomic_torch_save

    if not _is_master():  # BasicSR's @master_only
        return
    label = "latest" if current_iter == -1 else current_iter
    path = osp.join(model.opt["path"]["models"], f"{net_label}_{label}.pth")
    nets = net if isinstance(net, list) else [net]
    keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(keys):
        raise ValueError(f"save_network: {len(nets)} networks but {len(keys)} param keys")
    save_dict = {}
    for net_, key in zip(nets, keys):
        state_dict = model.get_bare_model(net_).state_dict()
        save_dict[key] = {(k[7:] if k.startswith("module.") else k): v.cpu() for k, v in state_dict.items()}
    try:
        atomic_torch_save(save_dict, path)
    except OSError as err:
        get_root_logger().error(f"Could not save {path}: {err} (the previous checkpoints are intact)")


def save_training_state(model, epoch: int, current_iter: int) -> None:
    """BasicSR's ``.state`` (epoch, iter, optimizers, schedulers) plus ``model._extra_training_state()``
    when the model has it, written atomically (rank 0 only)."""
    from sfd_utils.checkpoint import atomic_torch_save

    if current_iter == -1 or not _is_master():
        return
    state = {
        "epoch": epoch,
        "iter": current_iter,
        "optimizers": [o.state_dict() for o in model.optimizers],
        "schedulers": [s.state_dict() for s in model.schedulers],
    }
    extra = getattr(model, "_extra_training_state", None)
    if extra is not None:
        state.update(extra())
    path = osp.join(model.opt["path"]["training_states"], f"{current_iter}.state")
    try:
        atomic_torch_save(state, path)
    except OSError as err:
        from basicsr.utils import get_root_logger

        get_root_logger().error(f"Could not save {path}: {err} (the previous training states are intact)")
