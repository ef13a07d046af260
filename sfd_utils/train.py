"""BasicSR's training entry with the plugin loaded and BasicSR's CPU/launcher pitfalls fixed.

Used by this repo's ``basicsr/train.py`` launcher and the ``sfd-train`` console script. It never
re-implements BasicSR's loop: it imports the plugin, patches three functions of the *running*
basicsr (no file of the installed package is touched) and calls ``train_pipeline``:

- ``load_resume_state``: basicsr maps the state to ``cuda(current_device())``, which crashes on a
  CPU-only machine; ours maps to CPU when CUDA is absent, and ``--auto_resume`` looks under the
  experiment's own folder (basicsr looks in ``./experiments`` relative to the working directory).
- ``init_dist``: basicsr calls ``torch.cuda.set_device`` and NCCL; without CUDA we use gloo. The
  recipes' ``dist_params.port`` is dropped for torchrun (basicsr would pass it on and crash).
- ``--local-rank=N`` (torch >= 2 launchers) is accepted as basicsr's ``--local_rank``.
- ``MessageLogger`` / ``build_model``: log lines with percent, rate and a non-negative ETA, a
  progress line at least every 20 s, and no duplicate final validation (``sfd_utils.progress``).
- ``parse_options``: after parsing, every file the recipe needs is checked (sfd_utils.options_check),
  and the RNGs are seeded again from the final ``manual_seed``: basicsr seeds *before* applying
  ``--force_yml``, so ``--force_yml manual_seed=1`` was logged but silently ignored.
"""

from __future__ import annotations

import glob
import os
import os.path as osp
import sys

from sfd_utils.compat import install, load_plugin


def _latest_state(state_dir: str) -> str | None:
    states = glob.glob(osp.join(state_dir, "*.state"))
    if not states:
        return None
    return max(states, key=lambda p: int(osp.basename(p).split(".")[0]))


def load_resume_state(opt: dict):
    """CPU-safe replacement of ``basicsr.train.load_resume_state`` (same contract)."""
    import torch

    import basicsr.train as bt

    path = None
    if opt.get("auto_resume"):
        roots = [
            osp.join(opt["path"]["experiments_root"], "training_states"),
            osp.join("experiments", opt["name"], "training_states"),
        ]
        for state_dir in roots:
            path = _latest_state(state_dir) if osp.isdir(state_dir) else None
            if path:
                opt["path"]["resume_state"] = path
                break
    elif opt["path"].get("resume_state"):
        path = opt["path"]["resume_state"]
    if path is None:
        return None
    if not osp.isfile(path):
        raise FileNotFoundError(f"path.resume_state: training state {path!r} does not exist")
    if torch.cuda.is_available() and opt.get("num_gpu", 0) != 0:
        device_id = torch.cuda.current_device()
        state = torch.load(path, map_location=lambda s, loc: s.cuda(device_id), weights_only=True)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    bt.check_resume(opt, state["iter"])
    return state


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
    bt.load_resume_state = load_resume_state
    bo.init_dist = init_dist
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

    sys.argv = _normalise_argv(sys.argv)
    check_command_line(sys.argv)
    try:
        bt.train_pipeline(root_path)
    except CheckpointError as err:  # a pretrained/resumed file that does not fit: the user's to fix
        raise SystemExit(f"sfd-basicsr: {err}") from None


def main() -> None:
    """Console script ``sfd-train``: like ``python basicsr/train.py`` with the current folder as root."""
    train_pipeline(os.getcwd())


if __name__ == "__main__":
    main()
