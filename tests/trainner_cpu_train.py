"""Test-only runner: traiNNer-redux's own ``train.py`` on a CPU, in a process without basicsr.

Usage: ``python tests/trainner_cpu_train.py TRAINNER_ROOT OUT_ROOT -opt options.yml``

traiNNer-redux refuses to start without CUDA (``train.py`` checks ``torch.cuda.is_available()``,
calls ``torch.cuda.set_per_process_memory_fraction`` and logs ``get_env_info()``, which reads the
GPU's properties). Past those three calls its loop runs on a CPU with ``num_gpu: 0``. This runner
loads ``train.py`` unchanged as a module, gives that module (only) a ``torch`` whose ``cuda``
answers those two calls and a CPU ``get_env_info``, and calls ``train_pipeline(OUT_ROOT)``, so
``experiments/`` and ``tb_logger/`` go under OUT_ROOT instead of the traiNNer checkout. It runs from
TRAINNER_ROOT (traiNNer reads ``options/_templates`` relative to the working directory).

basicsr is made unimportable first: the plugin must register itself through the ``traiNNer``
import hook alone, as it does for a traiNNer user who never installed basicsr.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys


class _NoBasicsr(importlib.abc.MetaPathFinder):
    """Every ``import basicsr...`` fails as if basicsr were not installed."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "basicsr" or fullname.startswith("basicsr."):
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked by the test runner)", name=fullname)
        return None


class _CPUCuda:
    """``torch.cuda`` for train.py's module namespace: reports CUDA present for the start-up check and
    ignores the memory-fraction call; everything else is the real ``torch.cuda``."""

    def __init__(self, cuda):
        self._cuda = cuda

    def __getattr__(self, name):
        return getattr(self._cuda, name)

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def set_per_process_memory_fraction(*args, **kwargs) -> None:
        return None


class _TorchForTrainPy:
    def __init__(self, torch):
        self._torch = torch
        self.cuda = _CPUCuda(torch.cuda)

    def __getattr__(self, name):
        return getattr(self._torch, name)


def count_clip_passes(path: str) -> None:
    """Record, per ``SRModel.optimize_parameters`` call, how often the frozen CLIP's image tower and
    text tower ran (test-only instrumentation; written to ``path`` as JSON at exit)."""
    import atexit
    import json

    from traiNNer.models.sr_model import SRModel

    from sfd_arch.clip_backbone import FrozenCLIP

    counts = {"image": 0, "text": 0}
    per_iter: list[dict] = []

    def counted(fn, key):
        def wrapper(*args, **kwargs):
            counts[key] += 1
            return fn(*args, **kwargs)

        return wrapper

    FrozenCLIP.forward = counted(FrozenCLIP.forward, "image")
    FrozenCLIP.encode_text_embeddings = counted(FrozenCLIP.encode_text_embeddings, "text")
    optimize = SRModel.optimize_parameters

    def optimize_parameters(self, *args, **kwargs):
        before = dict(counts)
        out = optimize(self, *args, **kwargs)
        per_iter.append({k: counts[k] - before[k] for k in counts})
        return out

    SRModel.optimize_parameters = optimize_parameters
    atexit.register(lambda: open(path, "w").write(json.dumps(per_iter)))


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    trainner_root, out_root, train_args = os.path.abspath(argv[0]), os.path.abspath(argv[1]), argv[2:]
    sys.meta_path.insert(0, _NoBasicsr())
    os.chdir(trainner_root)
    sys.path.insert(0, trainner_root)
    spec = importlib.util.spec_from_file_location("trainner_train_py", os.path.join(trainner_root, "train.py"))
    train_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_py)
    import torch

    if os.environ.get("SFD_TEST_CLIP_COUNTS"):
        count_clip_passes(os.environ["SFD_TEST_CLIP_COUNTS"])
    train_py.torch = _TorchForTrainPy(torch)
    train_py.get_env_info = lambda: f"CPU test run: torch {torch.__version__}, {torch.get_num_threads()} threads"
    sys.argv = ["train.py", *train_args]
    os.makedirs(out_root, exist_ok=True)
    train_py.train_pipeline(out_root)


if __name__ == "__main__":
    main(sys.argv[1:])
