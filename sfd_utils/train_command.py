"""The training command line, read without ``exec``: ``-opt``, ``--force_yml`` and BasicSR's other flags.

BasicSR's ``parse_options`` turns each ``--force_yml key:sub=value`` into Python source
(``opt["key"]["sub"]=value``) and ``exec``s it, ``eval``ing a value that starts with ``[``; its argparse
parser also accepts any abbreviation (``--force_y``, ``--force``, ``--f=``). A shared command line (a
README, a CI file, a job script) is as untrusted as a shared recipe, so here:

- :func:`parse_command_line` reads BasicSR's flags with abbreviations off (``allow_abbrev=False``,
  and an abbreviation of one of them, ``-o``/``--force``/``--f=``..., is refused by name rather than
  passed on), in one line and exit status 2 for any mistake.
- ``--force_yml`` entries are ``key.path=value`` (BasicSR's ``key:sub=value`` spelling too): the keys are
  plain names, the value is read by the recipe's own safe YAML reader (:mod:`sfd_utils.recipe`: ``-1``
  is a number, ``[1, 2]`` a list, ``1e-3`` text as in a recipe file; ``none`` is null as in BasicSR),
  and :func:`apply_force_yml` applies them to the options dict.
- :func:`safe_parse_options` wraps BasicSR's ``parse_options``: BasicSR gets a command line without any
  ``--force_yml`` and, where it reads the recipe file, the already-updated options dict; its
  distributed set-up, seeding and derived paths then run as before, on the final options. The run's
  name must be one plain folder name (:func:`check_run_name`) and every folder BasicSR creates from
  ``path`` must lie under the output root (:func:`confine_outputs`).
- :func:`make_basicsr_safe` installs the reader and the wrapper into a running basicsr: the launcher
  always does; a fork's own ``basicsr/train.py`` and ``test.py`` get it with ``SFD_BASICSR_SAFE_YAML=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import re
import sys
from collections.abc import Sequence

from sfd_utils.recipe import RecipeError, load_recipe, load_yaml_data, safe_ordered_yaml

LAUNCHERS = ("none", "pytorch", "slurm")
# BasicSR's own flags (basicsr.utils.options.parse_options) and the launcher's --check
FLAGS = ("-opt", "--launcher", "--auto_resume", "--debug", "--local_rank", "--force_yml", "--check")
KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")
MAX_NAME_CHARS = 120  # below every file system's 255-byte name limit with basicsr's suffixes
OUTPUT_KEYS = ("experiments_root", "models", "training_states", "log", "visualization", "results_root")
READ_KEY_PARTS = ("strict_load", "pretrain_network", "resume", "param_key")  # keys basicsr never creates


class CommandLineError(RecipeError):
    """A command-line mistake (one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise CommandLineError(f"{message} (see --help)")


def training_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """BasicSR's training flags, abbreviations off; ``--force_yml`` may be given more than once."""
    parser = _Parser(
        prog=prog,
        allow_abbrev=False,
        description="Train with BasicSR and the sfd-basicsr plugin (BasicSR's own flags, read without exec).",
    )
    parser.add_argument("-opt", required=True, metavar="RECIPE.yml", help="the training recipe (YAML)")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none", help="job launcher (torchrun: pytorch)")
    parser.add_argument("--auto_resume", action="store_true", help="resume from the newest good training state")
    parser.add_argument("--debug", action="store_true", help="BasicSR's debug mode (name prefixed with debug_)")
    parser.add_argument("--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--force_yml",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override recipe values: train.total_iter=1000 or train:total_iter=1000; the value is read as "
        "YAML data, never run",
    )
    parser.add_argument(
        "--check", action="store_true", help="every start-up step up to the first iteration, then exit; writes nothing"
    )
    return parser


def refuse_abbreviations(argv: Sequence[str], flags: Sequence[str] = FLAGS) -> None:
    """Refuse, naming the flag, an argument that argparse (with abbreviations on, as in BasicSR) would
    read as one of ``flags``: ``--force``, ``--f=...``, ``-o``. A flag given in full passes."""
    for arg in argv:
        if arg == "--" or not arg.startswith("-") or arg[1:2].isdigit():
            continue
        name = arg.split("=", 1)[0]
        if name in flags:
            continue
        dashes = "--" if name.startswith("--") else "-"
        full = [f for f in flags if f.startswith(dashes) and f.startswith(name) and len(name) > len(dashes)]
        if full:
            raise CommandLineError(f"{name}: write the flag in full ({' or '.join(full)}); abbreviations are refused")


def parse_command_line(argv: Sequence[str], strict: bool = True) -> tuple[argparse.Namespace, list[str]]:
    """The training flags of ``argv`` (without the program name), and the arguments left for the
    caller's own parser (none when ``strict``: an unknown argument is refused). ``--local-rank=N``
    (torch >= 2 launchers) reads as ``--local_rank``. Raises :class:`CommandLineError`."""
    argv = ["--local_rank" + a[len("--local-rank") :] if a.startswith("--local-rank") else a for a in argv]
    refuse_abbreviations(argv)
    parser = training_parser()
    if strict:
        return parser.parse_args(argv), []
    return parser.parse_known_args(argv)


# -- --force_yml -------------------------------------------------------------------------------------------
def split_force_entry(entry: str) -> tuple[list[str], str]:
    """``'train.optim_g.lr=1e-4'`` or ``'train:optim_g:lr=1e-4'`` -> (['train', 'optim_g', 'lr'], '1e-4').
    Keys are plain names (letters, digits, ``_``, ``-``)."""
    if "=" not in entry:
        raise CommandLineError(f"--force_yml {entry!r}: write key=value, e.g. train.total_iter=1000")
    if not entry.isprintable():
        raise CommandLineError(f"--force_yml {entry!r}: control characters are not allowed")
    keys_text, value = entry.split("=", 1)
    keys = [k.strip() for k in re.split(r"[:.]", keys_text.strip())]
    for key in keys:
        if not KEY.match(key):
            shown = key if len(key) <= 40 else key[:37] + "..."
            raise CommandLineError(
                f"--force_yml {entry[:80]!r}: {shown!r} is not a recipe key (letters, digits, _ and -; "
                "write section.key=value)"
            )
    return keys, value.strip()


def parse_force_value(text: str, name: str = "--force_yml value"):
    """A ``--force_yml`` value read as YAML data like a value in the recipe (bounded, no tags but the
    standard ones); ``none``/``None`` is null, as BasicSR reads it."""
    if text.lower() == "none":
        return None
    return load_yaml_data(text, f"{name} {text[:60]!r}")


def apply_force_yml(opt: dict, entries: Sequence[str]) -> dict:
    """A deep copy of ``opt`` with the ``--force_yml`` entries applied as BasicSR applies them: a missing
    leaf is added, a missing section is refused (naming the closest key)."""
    import difflib

    out = copy.deepcopy(opt)
    for entry in entries:
        keys, text = split_force_entry(entry)
        node = out
        for i, key in enumerate(keys[:-1]):
            where = ".".join(keys[: i + 1])
            if not isinstance(node, dict) or key not in node:
                close = difflib.get_close_matches(key, [str(k) for k in node], n=1) if isinstance(node, dict) else []
                hint = f"; did you mean {'.'.join([*keys[:i], close[0]])}?" if close else ""
                raise CommandLineError(f"--force_yml {entry!r}: {where} is not in the recipe{hint}")
            node = node[key]
        if not isinstance(node, dict):
            raise CommandLineError(f"--force_yml {entry!r}: {'.'.join(keys[:-1])} is not a section")
        node[keys[-1]] = parse_force_value(text, f"--force_yml {'.'.join(keys)}")
    return out


def new_force_keys(opt: dict, entries: Sequence[str], source: str) -> list[str]:
    """Warnings for ``--force_yml`` keys the recipe does not have yet (allowed: BasicSR adds them), with
    the closest existing key."""
    import difflib

    warnings = []
    for entry in entries:
        keys, _ = split_force_entry(entry)
        node = opt
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and keys[-1] not in node:
            close = difflib.get_close_matches(keys[-1], [str(k) for k in node], n=1)
            hint = f"; did you mean {'.'.join([*keys[:-1], close[0]])}?" if close else ""
            warnings.append(f"--force_yml adds {'.'.join(keys)}, which {source} does not have{hint}")
    return warnings


# -- names and output folders -----------------------------------------------------------------------------
def run_name_problem(name) -> str | None:
    """Why ``name`` cannot be the run's folder name, or None. The name becomes a folder
    (``experiments/<name>``, ``tb_logger/<name>``) that BasicSR renames when it exists: one plain
    folder name, at most :data:`MAX_NAME_CHARS` characters."""
    if not isinstance(name, str):
        return f"expected text (the run's folder name under experiments/), got {name!r}"
    problem = None
    if not name.strip():
        problem = "is empty"
    elif name in (".", ".."):
        problem = "is . or .., not a folder name"
    elif "\x00" in name or not name.isprintable():
        problem = "holds a NUL or control character"
    elif "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        problem = "holds a path separator"
    elif len(name) > MAX_NAME_CHARS or len(name.encode("utf-8")) > 2 * MAX_NAME_CHARS:
        problem = f"has {len(name)} characters; at most {MAX_NAME_CHARS}"
    elif name != name.strip():
        problem = "starts or ends with a space"
    if problem is None:
        return None
    shown = name if len(name) <= 60 else name[:57] + "..."
    return f"{shown!r} {problem}; the run is written to experiments/<name>, so name is one plain folder name"


def check_run_name(name, key: str = "name") -> None:
    """:func:`run_name_problem` as a :class:`RecipeError`."""
    problem = run_name_problem(name)
    if problem:
        raise RecipeError(f"{key}: {problem}")


class OutputError(RecipeError):
    """An output folder that may not or cannot be created (one line, exit status 2)."""


def check_run_folder(path: str, root: str | None, folder: str) -> None:
    """``path`` (a folder basicsr creates, renaming it first when it exists) must be ``<root>/<folder>/<name>``
    with a plain run name: nothing outside the output root is created or renamed."""
    name = os.path.basename(os.path.normpath(path))
    problem = run_name_problem(name)
    parent = os.path.dirname(os.path.normpath(path))
    if problem is None and root is not None and os.path.abspath(parent) != os.path.abspath(os.path.join(root, folder)):
        problem = f"{path!r} is not a run folder under {os.path.join(root, folder)}"
    if problem:
        raise OutputError(f"refusing to create or rename {path!r}: {problem}")


def _inside(path: str, root: str) -> bool:
    path, root = os.path.abspath(os.path.normpath(path)), os.path.abspath(os.path.normpath(root))
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def confine_outputs(opt: dict, root_path: str) -> None:
    """Every folder BasicSR's ``make_exp_dirs`` creates from ``opt['path']`` (the run folder and any
    other ``path.<key>`` but the ones it only reads) must lie under ``root_path``."""
    import difflib

    for key, value in (opt.get("path") or {}).items():
        if any(part in str(key) for part in READ_KEY_PARTS):
            continue
        if not isinstance(value, str):
            known = ["pretrain_network_g", "param_key_g", "strict_load_g", "resume_state"]
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise RecipeError(
                f"path.{key}: {value!r} is not a folder; basicsr creates a folder for every path key but "
                f"pretrain_network_*, param_key_*, strict_load_* and resume_state{hint}"
            )
        if not _inside(value, root_path):
            raise RecipeError(
                f"path.{key}: {value!r} is outside the output root {root_path} (basicsr would create it); "
                "remove the key, or give a folder under the output root"
            )


# -- basicsr's parse_options with the options handed over ---------------------------------------------------
class _PreparedYaml:
    """Stands in for the ``yaml`` module inside basicsr's ``parse_options``: ``load`` returns the prepared
    options instead of parsing the file again."""

    def __init__(self, module, opt: dict) -> None:
        self._module, self._opt, self.used = module, opt, False

    def load(self, stream, Loader=None, **kwargs):  # noqa: N803  (yaml.load's own argument name)
        self.used = True
        return copy.deepcopy(self._opt)

    def __getattr__(self, name):
        return getattr(self._module, name)


@contextlib.contextmanager
def _handing_over(parse_options, opt: dict, argv: list[str]):
    """While inside: ``sys.argv`` is ``argv`` and ``parse_options``'s module reads ``opt`` for the recipe."""
    space = getattr(parse_options, "__globals__", {})
    saved = {k: space[k] for k in ("yaml", "yaml_load") if k in space}
    prepared = _PreparedYaml(saved.get("yaml"), opt)
    if "yaml" in space:
        space["yaml"] = prepared
    if "yaml_load" in space:  # newer BasicSR: opt = yaml_load(args.opt)

        def yaml_load(*args, **kwargs):
            return prepared.load(None)

        space["yaml_load"] = yaml_load
    old_argv = sys.argv
    sys.argv = argv
    try:
        yield prepared
    finally:
        sys.argv = old_argv
        space.update(saved)


def read_recipe(args: argparse.Namespace) -> dict:
    """The recipe of ``-opt`` read safely, with the ``--force_yml`` entries applied."""
    return apply_force_yml(load_recipe(args.opt), args.force_yml)


def basicsr_argv(args: argparse.Namespace, rest: Sequence[str]) -> list[str]:
    """A command line for basicsr's own parser: the flags of ``args`` without ``--force_yml``, then
    ``rest`` (a fork's own flags)."""
    out = [sys.argv[0], "-opt", args.opt, "--launcher", args.launcher, "--local_rank", str(args.local_rank)]
    out += ["--auto_resume"] * args.auto_resume + ["--debug"] * args.debug
    return out + list(rest)


def safe_parse_options(parse_options, strict: bool = False):
    """``parse_options`` (basicsr's or a fork's, same signature) that never sees a ``--force_yml``: the
    entries are applied here, without exec, and basicsr receives the updated options where it reads the
    recipe. The name and the output folders are checked (:func:`check_run_name`, :func:`confine_outputs`).
    Errors are :class:`RecipeError` lines (the launcher) or, unwrapped, one line and exit status 2."""
    if getattr(parse_options, "_sfd_safe", False):
        return parse_options

    def parse(root_path, is_train=True):
        args, rest = parse_command_line(sys.argv[1:], strict=strict)
        opt = read_recipe(args)
        if isinstance(opt.get("name"), str) and args.debug and not opt["name"].startswith("debug"):
            check_run_name("debug_" + opt["name"])
        check_run_name(opt.get("name"))
        seed = opt.get("manual_seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32):
            raise RecipeError(f"manual_seed: {seed!r}: expected a whole number from 0 to {2**32 - 1} (or null: random)")
        with _handing_over(parse_options, opt, basicsr_argv(args, rest)) as prepared:
            opt, basicsr_args = parse_options(root_path, is_train=is_train)
        if not prepared.used and args.force_yml:
            raise RecipeError(
                "this basicsr's parse_options reads the recipe its own way: write the values in the recipe"
            )
        confine_outputs(opt, root_path)
        return opt, basicsr_args

    parse._sfd_safe = True
    parse.__wrapped__ = parse_options
    parse.__doc__ = parse_options.__doc__
    return parse


def _one_line(parse):
    """For a fork's own entry (no launcher around it): a refusal is one line and exit status 2."""

    def parse_or_exit(*args, **kwargs):
        try:
            return parse(*args, **kwargs)
        except RecipeError as err:
            print(f"sfd-basicsr: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    parse_or_exit._sfd_safe = True
    parse_or_exit.__wrapped__ = parse
    return parse_or_exit


def make_basicsr_safe() -> None:
    """Make the running basicsr read recipes with the safe loader and ``--force_yml`` without
    ``eval``/``exec`` (``basicsr.utils.options.ordered_yaml``, ``_postprocess_yml_value`` and
    ``parse_options``, also as bound in ``basicsr.train`` and ``basicsr.test``). Idempotent."""
    import importlib

    bo = importlib.import_module("basicsr.utils.options")
    bo.ordered_yaml = safe_ordered_yaml
    bo._postprocess_yml_value = parse_force_value
    if not getattr(bo.parse_options, "_sfd_safe", False):
        bo.parse_options = _one_line(safe_parse_options(bo.parse_options))
    for name in ("basicsr.train", "basicsr.test"):
        module = sys.modules.get(name)
        if module is not None and not getattr(getattr(module, "parse_options", None), "_sfd_safe", True):
            module.parse_options = bo.parse_options
