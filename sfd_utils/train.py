"""BasicSR's training entry with the plugin loaded and BasicSR's CPU/launcher pitfalls fixed.

Used by this repo's ``basicsr/train.py`` launcher and the ``sfd-train`` console script. It never
re-implements BasicSR's loop: it imports the plugin, patches a few names of the *running*
basicsr (no file of the installed package is touched) and calls ``train_pipeline``:

- ``load_resume_state``: basicsr maps the state to ``cuda(current_device())``, which crashes on a
  CPU-only machine; ours maps to CPU when CUDA is absent, and ``--auto_resume`` looks under the
  experiment's own folder (basicsr looks in ``./experiments`` relative to the working directory).
- ``init_dist``: basicsr calls ``torch.cuda.set_device`` and NCCL; without CUDA we use gloo. The
  recipes' ``dist_params.port`` is dropped for torchrun (basicsr would pass it on and crash).
- ``--local-rank=N`` (torch >= 2 launchers) is accepted as basicsr's ``--local_rank``.
- ``MessageLogger`` / ``build_model``: log lines with percent, rate and a non-negative ETA, a
  progress line at least every 20 s, and no duplicate final validation (``sfd_utils.progress``).
- ``create_train_val_dataloader`` / ``build_dataset`` / ``EnlargedSampler``: exact resume
  (sfd_utils.resume): the saved epoch continues after the samples it had consumed, and each
  sample's augmentation draws from its own seed, so a run killed and resumed with
  ``--auto_resume`` logs the same losses as one never interrupted.
- ``load_resume_state`` also skips a damaged latest state (truncated, empty, or with a damaged
  network file), naming it, and removes temporaries of interrupted writes.
- ``BaseModel.save_network`` / ``save_training_state``: written atomically (temporary + rename)
  for every model, not only the plugin's.
- ``parse_options``: after parsing, every file the recipe needs is checked (sfd_utils.options_check),
  and the RNGs are seeded again from the final ``manual_seed``: basicsr seeds *before* applying
  ``--force_yml``, so ``--force_yml manual_seed=1`` was logged but silently ignored.
"""

from __future__ import annotations

import os
import os.path as osp
import sys

from sfd_utils.compat import install, load_plugin


def load_resume_state(opt: dict):
    """CPU-safe replacement of ``basicsr.train.load_resume_state`` (same contract), damage-proof.

    ``--auto_resume`` takes the newest training state that loads and whose network files load
    (a truncated or empty one is named in a warning and passed over), looking under the
    experiment's own folder; temporaries of killed writes are removed. The saved data position is
    kept for :func:`create_train_val_dataloader`.
    """
    import torch

    import basicsr.train as bt
    from sfd_utils.checkpoint import remove_stale_temporaries
    from sfd_utils.resume import find_resume_state, read_state

    _resume["position"] = None
    if torch.cuda.is_available() and opt.get("num_gpu", 0) != 0:
        device_id = torch.cuda.current_device()

        def location(s, _):
            return s.cuda(device_id)
    else:
        location = "cpu"
    if opt.get("auto_resume"):
        roots = [
            osp.join(opt["path"]["experiments_root"], "training_states"),
            osp.join("experiments", opt["name"], "training_states"),
        ]
        found = find_resume_state(opt, [d for d in roots if osp.isdir(d)], location)
        if found is None:
            return None
        path, state = found
        opt["path"]["resume_state"] = path
    elif opt["path"].get("resume_state"):
        path = opt["path"]["resume_state"]
        if not osp.isfile(path):
            raise FileNotFoundError(f"path.resume_state: training state {path!r} does not exist")
        try:
            state = read_state(path, location)
        except ValueError as err:
            raise SystemExit(f"sfd-basicsr: path.resume_state: {err}") from None
    else:
        return None
    if opt.get("rank", 0) == 0:
        folders = [opt["path"]["models"], osp.dirname(osp.abspath(path))]
        for tmp in remove_stale_temporaries(folders):
            print(f"sfd-basicsr: removed {tmp} (left by a write that was interrupted)", file=sys.stderr)
    _resume["position"] = state.get("data_position")
    bt.check_resume(opt, state["iter"])
    return state


_basicsr_create_loaders = None  # basicsr's create_train_val_dataloader, set by prepare_basicsr
_resume: dict = {"position": None}  # data position of the state being resumed, for the train loader


def create_train_val_dataloader(opt: dict, logger):
    """basicsr's function, then: the train sampler gets the run's seed and, when resuming, the saved
    position in the epoch; the loader draws its worker seeds from its own generator, so creating
    an iterator (every epoch, and once more on resume) never advances the global torch RNG."""
    import torch

    from sfd_utils.resume import ResumableSampler

    result = _basicsr_create_loaders(opt, logger)
    train_loader, train_sampler = result[0], result[1]
    if isinstance(train_sampler, ResumableSampler):
        train_sampler.seed = int(opt["manual_seed"])
        train_loader.generator = torch.Generator().manual_seed(int(opt["manual_seed"]))
        pos = _resume["position"]
        if pos is not None:
            same = pos.get("total") == len(train_sampler) and pos.get("world_size") == opt["world_size"]
            if same:
                train_sampler.resume_from(pos["epoch"], pos["samples"])
                logger.info(f"Resuming the data order: epoch {pos['epoch']}, after sample {pos['samples']}")
            else:
                logger.warning(
                    "The data set size or the number of processes changed since the saved state: "
                    "the resumed epoch restarts from its first batch (training is not an exact continuation)"
                )
    return result


def build_dataset(dataset_opt: dict):
    """basicsr's build_dataset; the training set draws each sample's randomness from its own seed."""
    from basicsr.data import build_dataset as basicsr_build_dataset

    from sfd_utils.resume import SeededDataset

    dataset = basicsr_build_dataset(dataset_opt)
    return SeededDataset(dataset) if dataset_opt.get("phase") == "train" else dataset


def init_dist(launcher: str, backend: str = "nccl", **kwargs) -> None:
    """basicsr's ``init_dist`` with a gloo fallback when CUDA is absent."""
    import torch
    import torch.distributed as dist
    from basicsr.utils import dist_util

    if launcher == "pytorch":
        kwargs.pop("port", None)  # torchrun passes MASTER_PORT; init_process_group rejects `port`
        if not torch.cuda.is_available():
            dist.init_process_group(backend="gloo", **kwargs)
            return
    dist_util.init_dist(launcher, backend=backend, **kwargs)


def _normalise_argv(argv: list[str]) -> list[str]:
    out = []
    for arg in argv:
        if arg.startswith("--local-rank"):
            arg = "--local_rank" + arg[len("--local-rank") :]
        out.append(arg)
    return out


def check_command_line(argv: list[str]) -> None:
    """Catch what basicsr would turn into a traceback: a missing ``-opt`` file, a ``--force_yml``
    entry without ``key=value`` or below a key the recipe lacks. A ``--force_yml`` key the recipe
    does not have yet is allowed (basicsr adds it) but warned about, with the closest existing key."""
    import argparse
    import difflib

    import yaml
    from basicsr.utils.options import ordered_yaml

    # The two options basicsr's own parser reads here, parsed the same way (the rest is basicsr's).
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("-opt")
    parser.add_argument("--force_yml", nargs="+", default=[])
    args, _ = parser.parse_known_args(argv[1:])
    recipe = args.opt
    if not recipe:
        return  # basicsr's argparse reports the missing -opt
    if not osp.isfile(recipe):
        raise SystemExit(f"sfd-basicsr: options file {recipe!r} does not exist")
    try:
        with open(recipe, encoding="utf-8") as f:
            opt = yaml.load(f, Loader=ordered_yaml()[0]) or {}  # basicsr's loader: the recipe as it will see it
    except yaml.YAMLError as err:
        raise SystemExit(f"sfd-basicsr: {recipe} is not valid YAML: {err}") from None
    for entry in args.force_yml:
        if entry.count("=") != 1:
            raise SystemExit(f"sfd-basicsr: --force_yml {entry!r}: write one key=value, e.g. train:total_iter=1000")
        keys = [k.strip() for k in entry.split("=")[0].split(":")]
        node, path = opt, []
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if not isinstance(node, dict):
                raise SystemExit(f"sfd-basicsr: --force_yml {entry!r}: {':'.join(path)} is not a section")
            if key not in node:
                close = difflib.get_close_matches(key, [str(k) for k in node], n=1)
                hint = f"; did you mean {':'.join([*path, close[0]])}?" if close else ""
                where = ":".join([*path, key])
                if not last:
                    raise SystemExit(f"sfd-basicsr: --force_yml {entry!r}: {where} is not in {recipe}{hint}")
                print(
                    f"sfd-basicsr: warning: --force_yml adds {where}, which {recipe} does not have{hint}",
                    file=sys.stderr,
                )
                break
            node, path = node[key], [*path, key]


def prepare_basicsr() -> None:
    """Install the shim, import the plugin and patch the running basicsr's entry functions."""
    install()
    import basicsr.utils.options as bo

    import basicsr.train as bt

    load_plugin()
    from basicsr.models.base_model import BaseModel

    from sfd_utils.resume import ResumableSampler, save_network, save_training_state

    global _basicsr_create_loaders
    if bt.create_train_val_dataloader is not create_train_val_dataloader:
        _basicsr_create_loaders = bt.create_train_val_dataloader
    bt.load_resume_state = load_resume_state
    bt.create_train_val_dataloader = create_train_val_dataloader
    bt.build_dataset = build_dataset
    bt.EnlargedSampler = ResumableSampler
    bo.init_dist = init_dist
    BaseModel.save_network = save_network
    BaseModel.save_training_state = save_training_state
    if not getattr(bt.parse_options, "_sfd_checked", False):
        bt.parse_options = _checked(bt.parse_options)
    from sfd_utils.progress import make_message_logger, with_progress

    if bt.MessageLogger.__module__ != "sfd_utils.progress":
        bt.MessageLogger = make_message_logger(bt.MessageLogger)
    bt.build_model = with_progress(bt.build_model)


def _checked(parse_options):
    """Wrap basicsr's parse_options: missing files stop the run at start-up, naming the YAML key;
    seed from the final ``manual_seed`` (nothing random runs between basicsr's seeding and here,
    so without a ``--force_yml`` seed this reproduces basicsr's state exactly)."""
    from basicsr.utils import set_random_seed

    from sfd_utils.options_check import check_options

    def parse_and_check(root_path, is_train=True):
        opt, args = parse_options(root_path, is_train=is_train)
        try:
            check_options(opt)
        except (FileNotFoundError, ValueError) as err:  # a user's recipe problem: no traceback
            raise SystemExit(f"sfd-basicsr: cannot start {args.opt}: {err}") from None
        set_random_seed(int(opt["manual_seed"]) + opt["rank"])
        return opt, args

    parse_and_check._sfd_checked = True
    return parse_and_check


def train_pipeline(root_path: str) -> None:
    """``basicsr.train.train_pipeline`` with the plugin; outputs go under ``root_path``."""
    prepare_basicsr()
    import basicsr.train as bt
    from sfd_utils.checkpoint import CheckpointError
    from sfd_utils.resume import NonFiniteLossError

    sys.argv = _normalise_argv(sys.argv)
    check_command_line(sys.argv)
    try:
        bt.train_pipeline(root_path)
    except (CheckpointError, NonFiniteLossError) as err:  # the user's to fix: one line, no traceback
        raise SystemExit(f"sfd-basicsr: {err}") from None


def main() -> None:
    """Console script ``sfd-train``: like ``python basicsr/train.py`` with the current folder as root."""
    train_pipeline(os.getcwd())


if __name__ == "__main__":
    main()
