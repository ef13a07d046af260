"""Recipes are data: the one YAML loader sfd-basicsr reads recipes with, and safe ``--force_yml``.

Recipes are shared like data (forums, papers' repositories, template collections), so reading one
must never run code. BasicSR's ``ordered_yaml()`` returns PyYAML's full ``Loader``, which executes
``!!python/object/apply:os.system [...]``; BasicSR's ``--force_yml`` ``exec``s a string built from
the keys and ``eval``s a value that starts with ``[``. Here:

- :class:`RecipeLoader` is PyYAML's *safe* loader (the C one when available) that builds mappings
  as ``OrderedDict`` (the recipe's order, as BasicSR's loader does) and resolves merge keys. The
  standard YAML tags keep working (``!!float 1e-4``, ``!!int``, ``!!str``, ``!!bool``, ``!!null``,
  ``!!binary``, ``!!timestamp``, ...); every ``!!python/...`` tag and every unknown tag is refused
  with one line naming the file, the line and the tag, before anything is constructed from it.
  :class:`RecipeDumper` writes ``OrderedDict`` back as a plain mapping.
- :func:`load_recipe` turns every problem of the file into one :class:`RecipeError` line.
- :func:`parse_force_value` is BasicSR's ``--force_yml`` value rule with ``eval`` replaced by
  :func:`ast.literal_eval`, and :func:`check_force_key` refuses keys that would break out of the
  string BasicSR ``exec``s.
- :func:`make_basicsr_safe` puts both into a running basicsr (``basicsr.utils.options``): the
  launcher always does; a fork's own ``basicsr/train.py`` gets it only when the user sets
  ``SFD_BASICSR_SAFE_YAML=1`` (``sfd_utils.compat``).
"""

from __future__ import annotations

import ast
import copy
import sys
from collections import OrderedDict
from collections.abc import Sequence
from typing import IO

import yaml

_SAFE_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_STD_PREFIX = "tag:yaml.org,2002:"
DATA_ONLY = "a recipe holds data only: mappings, lists, strings, numbers, booleans, null"


class RecipeError(ValueError):
    """A recipe (or a ``--force_yml`` entry) that cannot be used; the message is one line."""


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_STD_PREFIX) :] if tag.startswith(_STD_PREFIX) else tag


def _where(loader, node) -> str:
    name = getattr(loader, "recipe_name", None) or getattr(node.start_mark, "name", "<recipe>")
    return f"{name}:{node.start_mark.line + 1}"


class RecipeLoader(_SAFE_BASE):
    """Safe, order-preserving recipe loader. Set ``recipe_name`` to the path for the messages."""

    recipe_name: str | None = None


def _construct_ordered_mapping(loader, node) -> OrderedDict:
    if not isinstance(node, yaml.MappingNode):
        raise RecipeError(f"{_where(loader, node)}: expected a mapping, found {node.id}")
    loader.flatten_mapping(node)  # `<<: *anchor` merge keys, as PyYAML's own mappings
    out = OrderedDict()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise RecipeError(
                f"{_where(loader, key_node)}: a mapping key must be a plain value, not a {type(key).__name__}"
            ) from None
        out[key] = loader.construct_object(value_node, deep=True)
    return out


def _refuse_tag(loader, node):
    raise RecipeError(f"{_where(loader, node)}: refused tag {_short_tag(node.tag)} ({DATA_ONLY})")


RecipeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_ordered_mapping)
RecipeLoader.add_constructor(None, _refuse_tag)  # every tag without a constructor: python/*, local, unknown


class RecipeDumper(_SAFE_DUMPER):
    """Safe dumper that writes ``OrderedDict`` as a plain mapping, in its order."""


RecipeDumper.add_representer(OrderedDict, lambda dumper, data: dumper.represent_dict(data.items()))


def safe_ordered_yaml() -> tuple[type, type]:
    """Drop-in for ``basicsr.utils.options.ordered_yaml()``: the (Loader, Dumper) pair, both safe."""
    return RecipeLoader, RecipeDumper


def parse_recipe(stream: str | IO, name: str = "<recipe>") -> OrderedDict:
    """Parse recipe text (or a stream); every problem is one :class:`RecipeError` line."""
    loader = RecipeLoader(stream)
    loader.recipe_name = name
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        context = getattr(err, "context", None)
        raise RecipeError(f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")) from None
    except RecursionError:
        raise RecipeError(f"{name}: nested too deeply to be a recipe") from None
    finally:
        loader.dispose()
    if data is None:
        return OrderedDict()
    if not isinstance(data, dict):
        raise RecipeError(f"{name}: a recipe is a mapping of options (key: value lines), not a {type(data).__name__}")
    return data


def load_recipe(path: str) -> OrderedDict:
    """Read a recipe file safely (see the module doc); one :class:`RecipeError` line for any problem."""
    import os

    if not os.path.isfile(path):
        raise RecipeError(f"options file {path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            return parse_recipe(f, path)
    except UnicodeDecodeError as err:
        raise RecipeError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def dump_recipe(opt: dict, stream: IO | None = None) -> str | None:
    """Write an options dict (OrderedDict included) as YAML that :func:`load_recipe` reads back."""
    return yaml.dump(opt, stream, Dumper=RecipeDumper, sort_keys=False, allow_unicode=True)


# -- --force_yml ---------------------------------------------------------------------------------------
_FORBIDDEN_KEY_CHARS = ('"', "\\", "\n", "\r", "\x00")


def check_force_key(entry: str, key: str) -> None:
    """BasicSR builds ``opt["<key>"]...=value`` and ``exec``s it: a key must not leave the quotes."""
    if not key:
        raise RecipeError(f"--force_yml {entry!r}: an empty key; write section:key=value")
    if any(c in key for c in _FORBIDDEN_KEY_CHARS) or not key.isprintable():
        raise RecipeError(f"--force_yml {entry!r}: key {key!r} may not hold quotes, backslashes or control characters")


def split_force_entry(entry: str) -> tuple[list[str], str]:
    """``'train:optim_g:lr=1e-4'`` -> (['train', 'optim_g', 'lr'], '1e-4'); keys checked."""
    if entry.count("=") != 1:
        raise RecipeError(f"--force_yml {entry!r}: write one key=value, e.g. train:total_iter=1000")
    keys_text, value = entry.split("=")
    keys = [k.strip() for k in keys_text.strip().split(":")]
    for key in keys:
        check_force_key(entry, key)
    return keys, value.strip()


def parse_force_value(value: str):
    """BasicSR's ``_postprocess_yml_value`` without ``eval``: ``~``/``none`` -> None, ``true``/``false``,
    ``!!float x``, digits -> int, one-dot decimals -> float, ``[...]`` -> a Python literal list
    (:func:`ast.literal_eval`), anything else stays a string (``1e-3`` too, as in BasicSR)."""
    if value == "~" or value.lower() == "none":
        return None
    if value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    try:
        if value.startswith("!!float"):
            return float(value.replace("!!float", ""))
        if value.isascii() and value.isdigit():
            return int(value)
        if value.isascii() and value.replace(".", "", 1).isdigit() and value.count(".") < 2:
            return float(value)
    except ValueError:
        raise RecipeError(f"--force_yml value {value!r} is not a number") from None
    if value.startswith("["):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise RecipeError(
                f"--force_yml value {value!r}: a list must be a literal such as [1, 2] or ['a', 'b']"
            ) from None
        if not isinstance(parsed, list):
            raise RecipeError(f"--force_yml value {value!r}: expected a list")
        return parsed
    return value


def apply_force_yml(opt: dict, entries: Sequence[str]) -> dict:
    """A deep copy of ``opt`` with the ``--force_yml`` entries applied as BasicSR applies them (a
    missing section is an error; a missing leaf is added)."""
    out = copy.deepcopy(opt)
    for entry in entries:
        keys, text = split_force_entry(entry)
        node = out
        for i, key in enumerate(keys[:-1]):
            if not isinstance(node, dict) or key not in node:
                raise RecipeError(f"--force_yml {entry!r}: {':'.join(keys[: i + 1])} is not in the recipe")
            node = node[key]
        if not isinstance(node, dict):
            raise RecipeError(f"--force_yml {entry!r}: {':'.join(keys[:-1])} is not a section")
        node[keys[-1]] = parse_force_value(text)
    return out


def force_entries_in(argv: Sequence[str]) -> list[str]:
    """The ``--force_yml`` entries of a BasicSR command line (argparse ``nargs='+'`` rules)."""
    entries, taking = [], False
    for arg in argv:
        if arg == "--force_yml" or arg.startswith("--force_yml="):
            taking = True
            if "=" in arg and arg.startswith("--force_yml="):
                entries.append(arg.split("=", 1)[1])
            continue
        if taking and arg.startswith("-") and not arg[1:2].isdigit():
            taking = False
        if taking:
            entries.append(arg)
    return entries


# -- a running basicsr -----------------------------------------------------------------------------------
def _one_line_parse_options(parse_options):
    """Wrap basicsr's ``parse_options``: ``--force_yml`` keys checked before basicsr ``exec``s them, and a
    refused recipe ends in one line (exit status 2) instead of a traceback."""
    if getattr(parse_options, "_sfd_safe", False) or getattr(parse_options, "_sfd_checked", False):
        return parse_options

    def parse_options_safely(*args, **kwargs):
        try:
            for entry in force_entries_in(sys.argv[1:]):
                split_force_entry(entry)
            return parse_options(*args, **kwargs)
        except RecipeError as err:
            print(f"sfd-basicsr: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    parse_options_safely._sfd_safe = True
    parse_options_safely.__wrapped__ = parse_options
    parse_options_safely.__doc__ = parse_options.__doc__
    return parse_options_safely


def make_basicsr_safe() -> None:
    """Make the running basicsr read recipes with :class:`RecipeLoader` and parse ``--force_yml``
    without ``eval``/unchecked ``exec`` (``basicsr.utils.options.ordered_yaml``,
    ``_postprocess_yml_value`` and ``parse_options``, also as bound in ``basicsr.train`` and
    ``basicsr.test``). No file of the installed package is changed. Idempotent."""
    import importlib

    bo = importlib.import_module("basicsr.utils.options")
    bo.ordered_yaml = safe_ordered_yaml
    bo._postprocess_yml_value = parse_force_value
    bo.parse_options = _one_line_parse_options(bo.parse_options)
    for name in ("basicsr.train", "basicsr.test"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "parse_options"):
            module.parse_options = _one_line_parse_options(module.parse_options)


def make_trainner_one_line() -> None:
    """traiNNer-redux decodes recipes with PyYAML's safe loader (``msgspec.yaml.decode``), so a python tag
    never runs there, but its refusal is a traceback. This makes ``traiNNer.utils.options.yaml_load``
    read the file with :func:`load_recipe` first: a recipe that is not data ends in one line (exit
    status 2). Opt-in like :func:`make_basicsr_safe` (``SFD_BASICSR_SAFE_YAML=1``). Idempotent."""
    import importlib

    options = importlib.import_module("traiNNer.utils.options")
    original = options.yaml_load
    if getattr(original, "_sfd_safe", False):
        return

    def yaml_load(file_path, *args, **kwargs):
        try:
            load_recipe(str(file_path))
        except RecipeError as err:
            print(f"sfd-basicsr: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        return original(file_path, *args, **kwargs)

    yaml_load._sfd_safe = True
    yaml_load.__wrapped__ = original
    options.yaml_load = yaml_load
    utils = sys.modules.get("traiNNer.utils")
    if utils is not None and getattr(utils, "yaml_load", None) is original:
        utils.yaml_load = yaml_load


def parse_value(text: str, name: str) -> object:
    """One YAML value given on a command line (``--arch-opt scale=4``), read as data like a recipe."""
    loader = RecipeLoader(text)
    loader.recipe_name = name
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RecipeError(f"{name}: {text!r} is not a YAML value: {problem}") from None
    finally:
        loader.dispose()


def network_section(path: str, key: str = "network_g") -> dict:
    """``network_g`` (or ``key``) of a recipe file, read safely; one :class:`RecipeError` line when the
    file is not data or has no such mapping with a ``type``."""
    section = load_recipe(path).get(key)
    if not isinstance(section, dict) or not isinstance(section.get("type"), str):
        found = "missing" if section is None else f"{type(section).__name__} without a type"
        raise RecipeError(f"{path}: {key} is {found}; expected a mapping with type: <architecture> and its options")
    return dict(section)
