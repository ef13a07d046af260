"""BasicSR's training entry with the plugin loaded and BasicSR's CPU/launcher pitfalls fixed.

Used by this repo's ``basicsr/train.py`` launcher and the ``sfd-train`` console script. It never
re-implements BasicSR's loop: it imports the plugin, patches a few names of the *running*
basicsr (no file of the installed package is touched) and calls ``train_pipeline``:

- ``load_resume_state``: basicsr maps the state to ``cuda(current_device())``, which crashes on a
  CPU-only machine; ours maps to CPU when CUDA is absent, and ``--auto_resume`` looks under the
  experiment's own folder (basicsr looks in ``./experiments`` relative to the working directory).
- ``init_dist``: basicsr calls ``torch.cuda.set_device`` and NCCL; without CUDA we use gloo. The
  recipes' ``dist_params.port`` is dropped for torchrun (basicsr would pass it on and crash).
- The command line is read by :mod:`sfd_utils.train_command` (abbreviations refused, ``--force_yml``
  applied without exec, ``--local-rank=N`` of torch >= 2 launchers accepted as ``--local_rank``) and
  basicsr's ``parse_options`` is handed the already-updated options dict.
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
- ``parse_options``: after parsing, every file the recipe needs is checked (sfd_utils.options_check:
  existing, regular, of sane size, weights loadable weights-only), and the RNGs are seeded again from
  the final ``manual_seed``.
- Recipes are data (sfd_utils.recipe, bounded in size, depth and nodes): before basicsr parses anything
  the recipe is read safely and checked (sfd_utils.recipe_check: structure and kinds;
  sfd_utils.recipe_values: ranges, the run's name, what this machine can hold); a refusal is one line.
  Errors a constructor raises while the data sets or the model are built from the recipe are one line
  too (``SFD_BASICSR_TRACEBACK=1``: traceback).
- ``make_exp_dirs`` / ``mkdir_and_rename``: only run folders under the output root are created or
  renamed (``experiments/<name>``, ``tb_logger/<name>``); a folder that cannot be created is one line.
- Data (sfd_utils.train_data): the first image pair is checked against ``scale`` and ``gt_size``, one
  batch against an epoch's samples; an item's data error during the run names the files.
- ``--check``: everything up to the first iteration, nothing written (:func:`check_start`).
- Exit status as every script's (sfd_utils.cli): 2 bad recipe, command line or data, or a machine that
  cannot hold the run (out of memory, a loader worker killed); 3 interrupted (Ctrl-C, SIGTERM); 4
  stopped on non-finite losses or failed unexpectedly (the traceback on screen and in the run's log).
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

from sfd_utils.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, sigterm_interrupts
from sfd_utils.compat import install, load_plugin
from sfd_utils.recipe import RecipeError


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
            raise RecipeError(f"path.resume_state: training state {path!r} does not exist")
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
    from sfd_utils.train_data import check_loader

    try:
        result = _basicsr_create_loaders(opt, logger)
    except RecipeError:
        raise
    except (*BUILD_ERRORS, OSError) as err:  # a data set the recipe describes but that cannot be built
        raise _build_error("the data sets", err) from None
    train_loader, train_sampler = result[0], result[1]
    check_loader(opt, train_loader, train_sampler)
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
    """basicsr's build_dataset, checked (not empty, the first pair fits ``scale`` and ``gt_size``) and with
    its items' data errors named (:mod:`sfd_utils.train_data`); the training set draws each sample's
    randomness from its own seed."""
    from basicsr.data import build_dataset as basicsr_build_dataset

    from sfd_utils.resume import SeededDataset
    from sfd_utils.train_data import NamedDataErrors, check_dataset

    dataset = basicsr_build_dataset(dataset_opt)
    check_dataset(dataset, dataset_opt)
    dataset = NamedDataErrors(dataset, dataset_opt)
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


def check_command_line(argv: list[str]) -> tuple[argparse.Namespace, dict, list[str]]:
    """Everything that can be checked before basicsr parses anything: the command line (abbreviations,
    unknown flags and ``--force_yml`` entries refused by name: :mod:`sfd_utils.train_command`), the
    recipe read safely (:mod:`sfd_utils.recipe`) with the ``--force_yml`` entries applied, its structure
    and values (:func:`sfd_utils.recipe_check.check_recipe`) and what this machine can hold
    (:func:`sfd_utils.recipe_values.check_machine`). A ``--force_yml`` key the recipe does not have yet
    is allowed (basicsr adds it) but warned about, with the closest existing key. Raises
    :class:`~sfd_utils.recipe.RecipeError` (one line); prints the warnings and returns (the parsed
    command line, the options, the warnings)."""
    from sfd_utils.recipe import load_recipe
    from sfd_utils.recipe_check import _Checker, check_recipe
    from sfd_utils.recipe_values import check_machine
    from sfd_utils.train_command import apply_force_yml, new_force_keys, parse_command_line

    args, _ = parse_command_line(argv[1:], strict=True)
    raw = load_recipe(args.opt)
    opt = apply_force_yml(raw, args.force_yml)
    warnings = [f"warning: {w}" for w in new_force_keys(raw, args.force_yml, args.opt)]
    warnings += [f"warning: {w}" for w in check_recipe(opt, args.opt)]
    check_machine(_Checker(args.opt), opt, dist=args.launcher != "none")
    for line in warnings:
        print(f"sfd-basicsr: {line}", file=sys.stderr)
    return args, opt, warnings


def prepare_basicsr() -> None:
    """Install the shim, import the plugin and patch the running basicsr's entry functions."""
    install()
    import basicsr.utils.options as bo

    import basicsr.train as bt

    load_plugin()
    from basicsr.models.base_model import BaseModel

    from sfd_utils.resume import ResumableSampler, save_network, save_training_state
    from sfd_utils.train_command import make_basicsr_safe

    make_basicsr_safe()  # recipes are data: safe loader, no eval/exec of --force_yml
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
    if not getattr(bt.make_exp_dirs, "_sfd_confined", False):
        bt.make_exp_dirs = _confined(bt.make_exp_dirs, "experiments")
        bt.mkdir_and_rename = _confined(bt.mkdir_and_rename, "tb_logger")
    from sfd_utils.progress import make_message_logger, with_progress

    if bt.MessageLogger.__module__ != "sfd_utils.progress":
        bt.MessageLogger = make_message_logger(bt.MessageLogger)
    if not getattr(bt.build_model, "_sfd_one_line", False):
        bt.build_model = _one_line_build(with_progress(bt.build_model))


# Errors of a model's constructor that come from the recipe's values (a string where a number
# belongs, an option the network does not take, a checkpoint that does not fit the network).
BUILD_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, AssertionError, NotImplementedError)
TRACEBACK_ENV = "SFD_BASICSR_TRACEBACK"


def _one_line_build(build_model):
    """The start-up checks cannot foresee every value a network's constructor refuses: a recipe that
    passed them but fails while the model is built ends in one line naming the model type and the
    error (``SFD_BASICSR_TRACEBACK=1`` shows the traceback instead)."""

    def build(opt):
        try:
            return build_model(opt)
        except BUILD_ERRORS as err:
            raise _build_error(str(opt.get("model_type")), err) from None
        except RuntimeError as err:  # torch refusing a size (negative, overflowing); memory: see below
            if _resource_problem(err):
                raise
            raise _build_error(str(opt.get("model_type")), err) from None

    build._sfd_one_line = True
    return build


def _build_error(what: str, err: Exception) -> RecipeError:
    """One line for an error raised while building ``what`` from the recipe (re-raised as it is when
    ``SFD_BASICSR_TRACEBACK=1``)."""
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        raise err
    detail = (str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)).splitlines()
    return RecipeError(
        f"cannot build {what} from the recipe: {type(err).__name__}: {detail[0] if detail else ''} "
        f"(set {TRACEBACK_ENV}=1 to see where)"
    )


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
    parse_and_check._sfd_safe = getattr(parse_options, "_sfd_safe", False)
    return parse_and_check


def _confined(make, folder: str):
    """basicsr's ``make_exp_dirs(opt)`` / ``mkdir_and_rename(path)``: what they create or rename (an
    existing run folder is renamed ``<name>_archived_<time>``) must be a run folder under the output
    root; a folder that cannot be created is one line naming it."""

    def guarded(arg):
        from sfd_utils.train_command import OutputError, check_run_folder

        path = arg["path"].get("experiments_root") if isinstance(arg, dict) else arg
        root = arg.get("root_path") if isinstance(arg, dict) else _output_root["path"]
        check_run_folder(path, root, folder)
        try:
            return make(arg)
        except OSError as err:
            raise OutputError(f"cannot create {err.filename or path}: {err.strerror or err}") from None

    guarded._sfd_confined = True
    return guarded


_output_root: dict = {"path": None}  # the root_path of the running train_pipeline


CHECK_FLAG = "--check"


def check_start(root_path: str) -> None:
    """``--check``: everything the launcher does before the first iteration (the recipe and command-line
    checks, basicsr's option parsing, the file checks, the data sets, the model with its networks,
    losses, optimizers and schedulers), then one line and exit status 0. Writes nothing: no
    experiment folder, log or checkpoint; for a recipe downloaded or edited before a long run."""
    from basicsr.utils import get_root_logger

    import basicsr.train as bt

    opt, args = bt.parse_options(root_path, is_train=True)
    opt["root_path"] = root_path
    train_loader = create_train_val_dataloader(opt, get_root_logger())[0]
    bt.build_model(opt)
    n_train = len(train_loader.dataset) if train_loader is not None else 0
    print(f"sfd-basicsr: {args.opt}: start-up checks passed; {opt['model_type']} built, {n_train} training images")


MEMORY_HINT = "lower datasets.train.batch_size_per_gpu, gt_size or num_worker_per_gpu, or the network's size"


def _resource_problem(err: BaseException) -> str | None:
    """One line for what only the run can tell about the machine: memory ran out (in this process or a
    loader worker, which the kernel kills), or a loader worker died."""
    text = str(err)
    if isinstance(err, MemoryError):
        return f"out of memory ({type(err).__name__}); {MEMORY_HINT}"
    if not isinstance(err, RuntimeError):
        return None
    if "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text:
        return f"out of memory ({text.splitlines()[0][:160]}); {MEMORY_HINT}"
    if "DataLoader worker" in text and ("killed" in text or "exited unexpectedly" in text):
        return (
            f"a data loader worker died ({text.splitlines()[0][:160]}), most often for memory: "
            "lower datasets.train.num_worker_per_gpu or batch_size_per_gpu"
        )
    return None


def _keep_traceback() -> None:
    """The traceback of an unexpected error on screen and, once the run has one, in its log file."""
    import logging
    import traceback

    traceback.print_exc()
    record = logging.LogRecord("basicsr", logging.ERROR, __file__, 0, "failed unexpectedly", None, sys.exc_info())
    for handler in logging.getLogger("basicsr").handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _usage(argv: list[str]) -> None:
    """``--help`` and command-line mistakes before anything heavy is imported."""
    from sfd_utils.cli import with_exit_codes
    from sfd_utils.train_command import parse_command_line, training_parser

    if "-h" in argv[1:] or "--help" in argv[1:]:
        with_exit_codes(training_parser()).parse_args(["--help"])
    parse_command_line(argv[1:], strict=True)


def train_pipeline(root_path: str) -> None:
    """``basicsr.train.train_pipeline`` with the plugin; outputs go under ``root_path``. Exit status as
    every script's (sfd_utils.cli): 2 for a bad command line, recipe or data, or a machine that cannot
    hold the run (one line), 3 when interrupted (Ctrl-C, SIGTERM; resume with ``--auto_resume``), 4 when
    training stopped on non-finite losses or failed unexpectedly (traceback on screen and in the log)."""
    from sfd_utils.checkpoint import CheckpointError
    from sfd_utils.resume import NonFiniteLossError
    from sfd_utils.train_data import one_line

    def stop(message: str, code: int):
        print(message, file=sys.stderr)
        raise SystemExit(code)

    _output_root["path"] = root_path
    with sigterm_interrupts():
        try:
            _usage(sys.argv)
            prepare_basicsr()
            import basicsr.train as bt

            args, _, _ = check_command_line(sys.argv)
            sys.argv = [a for a in sys.argv if a != CHECK_FLAG]
            if args.check:
                check_start(root_path)
            else:
                bt.train_pipeline(root_path)
        except (CheckpointError, RecipeError) as err:  # the user's to fix: one line, no traceback
            stop(f"sfd-basicsr: {one_line(err)}", EXIT_USAGE)
        except NonFiniteLossError as err:
            stop(f"sfd-basicsr: {err}", EXIT_FAILED)
        except KeyboardInterrupt:
            stop("sfd-basicsr: interrupted; the last saved checkpoint resumes with --auto_resume", EXIT_INTERRUPTED)
        except SystemExit as err:
            if isinstance(err.code, str):  # basicsr's and our one-line start-up refusals
                stop(err.code, EXIT_USAGE)
            raise
        except Exception as err:
            problem = _resource_problem(err)
            if problem:
                stop(f"sfd-basicsr: {problem}", EXIT_USAGE)
            _keep_traceback()
            stop(
                f"sfd-basicsr: failed unexpectedly (exit status {EXIT_FAILED}); the traceback above says where",
                EXIT_FAILED,
            )


def main() -> None:
    """Console script ``sfd-train``: like ``python basicsr/train.py`` with the current folder as root,
    under the exit-status contract's top-level handler (sfd_utils.cli.run_entry)."""
    from sfd_utils.cli import run_entry

    run_entry(lambda: train_pipeline(os.getcwd()))


if __name__ == "__main__":
    main()
