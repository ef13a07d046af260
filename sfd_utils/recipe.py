"""Recipes are data: the one YAML loader sfd-basicsr reads recipes with, bounded in size and shape.

Recipes are shared like data (forums, papers' repositories, template collections), so reading one
must never run code, nor take unbounded time or memory. BasicSR's ``ordered_yaml()`` returns PyYAML's
full ``Loader``, which executes ``!!python/object/apply:os.system [...]``. Here:

- :class:`RecipeLoader` is PyYAML's *safe* loader (the C one when available) that builds mappings
  as ``OrderedDict`` (the recipe's order, as BasicSR's loader does) and resolves merge keys. A recipe
  holds mappings with text keys, lists, strings, numbers, booleans and null; the standard tags for
  those keep working (``!!float 1e-4``, ``!!int``, ``!!str``, ``!!bool``, ``!!null``). Refused with one
  line naming the file, the line and the key: every ``!!python/...`` and unknown tag (before anything
  is constructed from it), dates (``manual_seed: 2001-12-14`` is a YAML timestamp; quote it if it is
  text), ``!!binary``/``!!set``/``!!omap``/``!!pairs``, a value its tag cannot read (``!!float abc``,
  ``!!int 0xZZ``, a 5000-digit integer), a key that is not text (``5:``, ``~:``), a key given twice in
  one mapping, an alias to the node that contains it.
- Bounded input (:data:`LIMITS`): a recipe file over 1 MiB is refused before it is read; the YAML
  events are counted before a node is built, so more than :data:`MAX_DEPTH` levels of nesting (the C
  loader's recursion would overflow the stack) or more than :data:`MAX_NODES` nodes *after* aliases
  are expanded (a "billion laughs" alias bomb) are refused in one line.
- :func:`load_recipe` turns every problem of the file into one :class:`RecipeError` line.
- The command line (``--force_yml``) and basicsr's own ``parse_options`` are in
  :mod:`sfd_utils.train_command`, whose ``make_basicsr_safe`` puts both into a running basicsr.
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from typing import IO

import yaml

_SAFE_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_STD_PREFIX = "tag:yaml.org,2002:"
DATA_ONLY = "a recipe holds data only: mappings, lists, strings, numbers, booleans, null"
MAX_RECIPE_BYTES = 1 << 20  # 1 MiB: the largest shipped recipe is under 6 kB
MAX_DEPTH = 64  # nesting levels (a recipe uses about 5)
MAX_NODES = 200_000  # values, lists and mappings, counted with every alias expanded
LIMITS = {"recipe size": "1 MiB", "nesting": f"{MAX_DEPTH} levels", "nodes": f"{MAX_NODES} (aliases expanded)"}


class RecipeError(ValueError):
    """A recipe (or a ``--force_yml`` entry) that cannot be used; the message is one line."""


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_STD_PREFIX) :] if tag.startswith(_STD_PREFIX) else tag


def _where(loader, node_or_event) -> str:
    name = getattr(loader, "recipe_name", None) or "<recipe>"
    return f"{name}:{node_or_event.start_mark.line + 1}"


def _key_path(loader) -> str:
    keys = getattr(loader, "key_path", [])
    return ".".join(str(k) for k in keys) if keys else "the top level"


class RecipeLoader(_SAFE_BASE):
    """Safe, order-preserving, bounded recipe loader. Set ``recipe_name`` to the path for the messages."""

    recipe_name: str | None = None


def _construct_ordered_mapping(loader, node) -> OrderedDict:
    if not isinstance(node, yaml.MappingNode):
        raise RecipeError(f"{_where(loader, node)}: expected a mapping, found {node.id}")
    explicit = sum(1 for key_node, _ in node.value if key_node.tag != _STD_PREFIX + "merge")
    loader.flatten_mapping(node)  # `<<: *anchor` merge keys, as PyYAML's own mappings
    if not hasattr(loader, "key_path"):
        loader.key_path = []
    out, seen = OrderedDict(), {}
    for position, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            shown = "null" if key is None else repr(key)
            raise RecipeError(
                f"{_where(loader, key_node)}: a key under {_key_path(loader)} is {shown}, not text; keys are text "
                "(quote it if it is meant as a name)"
            )
        if position >= len(node.value) - explicit:  # merged keys may be overridden, explicit ones not twice
            if key in seen:
                raise RecipeError(
                    f"{_where(loader, key_node)}: {'.'.join([*map(str, loader.key_path), key])} is given twice "
                    f"(first at line {seen[key] + 1}); keep one"
                )
            seen[key] = key_node.start_mark.line
        loader.key_path.append(key)
        try:
            out[key] = loader.construct_object(value_node, deep=True)
        except RecipeError:
            raise
        except (ValueError, TypeError, OverflowError, yaml.YAMLError) as err:
            text = value_node.value if isinstance(value_node, yaml.ScalarNode) else value_node.id
            shown = text if len(str(text)) <= 40 else str(text)[:37] + "..."
            reason = str(getattr(err, "problem", None) or err).splitlines()[0].split(";")[0][:120]
            raise RecipeError(
                f"{_where(loader, value_node)}: {_key_path(loader)}: {shown!r} cannot be read as "
                f"{_short_tag(value_node.tag)} ({reason})"
            ) from None
        finally:
            loader.key_path.pop()
    return out


def _refuse_tag(loader, node):
    raise RecipeError(f"{_where(loader, node)}: refused tag {_short_tag(node.tag)} ({DATA_ONLY})")


def _refuse_date(loader, node):
    raise RecipeError(
        f"{_where(loader, node)}: {_key_path(loader)}: {node.value!r} reads as a YAML date, which no recipe "
        f"option takes; quote it ('{node.value}') if it is text, or write the number"
    )


RecipeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_ordered_mapping)
RecipeLoader.add_constructor(_STD_PREFIX + "timestamp", _refuse_date)
for _tag in ("binary", "set", "omap", "pairs"):
    RecipeLoader.add_constructor(_STD_PREFIX + _tag, _refuse_tag)
RecipeLoader.add_constructor(None, _refuse_tag)  # every tag without a constructor: python/*, local, unknown


class RecipeDumper(_SAFE_DUMPER):
    """Safe dumper that writes ``OrderedDict`` as a plain mapping, in its order."""


RecipeDumper.add_representer(OrderedDict, lambda dumper, data: dumper.represent_dict(data.items()))


def safe_ordered_yaml() -> tuple[type, type]:
    """Drop-in for ``basicsr.utils.options.ordered_yaml()``: the (Loader, Dumper) pair, both safe."""
    return RecipeLoader, RecipeDumper


def _count_nodes(loader: RecipeLoader) -> None:
    """Walk the YAML events (the C parser is not recursive; its composer is) and refuse a document
    nested deeper than :data:`MAX_DEPTH` or holding more than :data:`MAX_NODES` nodes once every alias
    is expanded, before any node is composed. An alias to a node still open (a recursive structure)
    is refused too."""
    open_nodes: list[list] = []  # [expanded size so far, anchor] per open mapping/sequence
    sizes: dict[str, int] = {}
    total = 0
    while loader.check_event():
        event = loader.get_event()
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            open_nodes.append([1, event.anchor])
            total += 1
            if len(open_nodes) > MAX_DEPTH:
                raise RecipeError(f"{_where(loader, event)}: nested more than {MAX_DEPTH} levels deep (not a recipe)")
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            size, anchor = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = size
            if open_nodes:
                open_nodes[-1][0] += size
            continue
        if isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for _, anchor in open_nodes):
                raise RecipeError(f"{_where(loader, event)}: alias *{event.anchor} refers to the node that contains it")
            size = sizes.get(event.anchor, 1)
        else:
            continue
        total += size
        if open_nodes:
            open_nodes[-1][0] += size
        if total > MAX_NODES:
            raise RecipeError(
                f"{_where(loader, event)}: more than {MAX_NODES} values once aliases are expanded (an alias bomb?)"
            )


def _yaml_error(err: yaml.YAMLError, name: str) -> RecipeError:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    return RecipeError(f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else ""))


def load_yaml_data(text: str, name: str):
    """Any YAML document in ``text`` as recipe data (limits and refusals of the module doc); one
    :class:`RecipeError` line for every problem."""
    if len(text) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{name}: {len(text)} characters; a recipe is at most {MAX_RECIPE_BYTES} bytes")
    for stage in ("count", "load"):
        loader = RecipeLoader(text)
        loader.recipe_name = name
        loader.key_path = []
        try:
            if stage == "count":
                _count_nodes(loader)
            else:
                return loader.get_single_data()
        except yaml.YAMLError as err:
            raise _yaml_error(err, name) from None
        except RecursionError:
            raise RecipeError(f"{name}: nested too deeply to be a recipe") from None
        finally:
            loader.dispose()
    return None


def parse_recipe(stream: str | IO, name: str = "<recipe>") -> OrderedDict:
    """Parse recipe text (or a stream, read up to the size limit); every problem is one
    :class:`RecipeError` line."""
    text = stream if isinstance(stream, str) else stream.read(MAX_RECIPE_BYTES + 1)
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    data = load_yaml_data(text, name)
    if data is None:
        return OrderedDict()
    if not isinstance(data, dict):
        raise RecipeError(f"{name}: a recipe is a mapping of options (key: value lines), not a {type(data).__name__}")
    return data


def read_text_file(path: str, what: str, limit: int) -> str:
    """The text of a regular file of at most ``limit`` bytes, checked before reading (a device,
    a FIFO, a folder or a larger file is refused in one line)."""
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise RecipeError(f"{what} {path!r} does not exist") from None
    except (OSError, ValueError) as err:
        raise RecipeError(f"{what} {path!r} cannot be read ({err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise RecipeError(f"{what} {path!r} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise RecipeError(f"{what} {path!r} is not a regular file (a device, pipe or socket)")
    if info.st_size > limit:
        raise RecipeError(f"{what} {path!r} has {info.st_size} bytes; the limit is {limit} bytes")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as err:
        raise RecipeError(f"{what} {path!r} cannot be read ({err.strerror or err})") from None
    if len(data) > limit:
        raise RecipeError(f"{what} {path!r} is larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def load_recipe(path: str) -> OrderedDict:
    """Read a recipe file safely (see the module doc); one :class:`RecipeError` line for any problem."""
    return parse_recipe(read_text_file(path, "options file", MAX_RECIPE_BYTES), path)


def dump_recipe(opt: dict, stream: IO | None = None) -> str | None:
    """Write an options dict (OrderedDict included) as YAML that :func:`load_recipe` reads back."""
    return yaml.dump(opt, stream, Dumper=RecipeDumper, sort_keys=False, allow_unicode=True)


def make_trainner_one_line() -> None:
    """traiNNer-redux decodes recipes with PyYAML's safe loader (``msgspec.yaml.decode``), so a python tag
    never runs there, but its refusal is a traceback. This makes ``traiNNer.utils.options.yaml_load``
    read the file with :func:`load_recipe` first: a recipe that is not data ends in one line (exit
    status 2). Opt-in like ``sfd_utils.train_command.make_basicsr_safe`` (``SFD_BASICSR_SAFE_YAML=1``).
    Idempotent."""
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
    try:
        return load_yaml_data(text, name)
    except RecipeError as err:
        message = str(err)
        if ": not valid YAML: " in message:
            raise RecipeError(
                f"{name}: {text!r} is not a YAML value: {message.split(': not valid YAML: ')[1]}"
            ) from None
        raise


def network_section(path: str, key: str = "network_g") -> dict:
    """``network_g`` (or ``key``) of a recipe file, read safely; one :class:`RecipeError` line when the
    file is not data or has no such mapping with a ``type``."""
    section = load_recipe(path).get(key)
    if not isinstance(section, dict) or not isinstance(section.get("type"), str):
        found = "missing" if section is None else f"{type(section).__name__} without a type"
        raise RecipeError(f"{path}: {key} is {found}; expected a mapping with type: <architecture> and its options")
    return dict(section)
