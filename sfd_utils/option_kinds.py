"""Kinds of option values (integer, number, boolean, string, list, mapping, null) and what a
constructor's signature says a keyword argument must be; used by :mod:`sfd_utils.recipe_check`.

An annotation names kinds when it is made of ``int``, ``float``, ``bool``, ``str``, ``None``, ``list`` /
``tuple`` / ``Sequence``, ``dict`` / ``Mapping`` (as text under ``from __future__ import annotations``
or as typing objects); anything else (``Tensor``, ``Any``, a class) names no kind and is not checked.
Without such an annotation a numeric or boolean default still tells that a string is wrong.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping

KINDS = {"integer": "an integer", "number": "a number", "boolean": "true or false", "string": "a string"}
KINDS.update({"list": "a list", "mapping": "a mapping", "null": "null (~)"})
GOT = {**KINDS, "boolean": "a boolean", "null": "null"}
_ANNOTATION_KINDS = {
    "int": {"integer"},
    "float": {"integer", "number"},
    "bool": {"boolean"},
    "str": {"string"},
    "None": {"null"},
    "NoneType": {"null"},
    "list": {"list"},
    "tuple": {"list"},
    "Sequence": {"list"},
    "dict": {"mapping"},
    "Mapping": {"mapping"},
}


def kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "mapping"
    return type(value).__name__


def accepts(expected: set[str], value) -> bool:
    k = kind(value)
    return (
        k in expected
        or (k == "integer" and "number" in expected)
        or (k == "integer" and "boolean" in expected and value in (0, 1))
    )


def describe(expected: set[str]) -> str:
    order = ("integer", "number", "boolean", "string", "list", "mapping", "null")
    names = [KINDS[k] for k in order if k in expected and not (k == "integer" and "number" in expected)]
    return " or ".join(names)


def a_kind(value) -> str:
    return KINDS.get(kind(value), f"a {kind(value)}")


def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def _kinds_of_text(text: str) -> set[str] | None:
    text = text.strip()
    for wrapper in ("Optional[", "typing.Optional["):
        if text.startswith(wrapper) and text.endswith("]"):
            inner = _kinds_of_text(text[len(wrapper) : -1])
            return None if inner is None else inner | {"null"}
    for wrapper in ("Union[", "typing.Union["):
        if text.startswith(wrapper) and text.endswith("]"):
            return _union([_kinds_of_text(p) for p in _split_top(text[len(wrapper) : -1], ",")])
    parts = _split_top(text, "|")
    if len(parts) > 1:
        return _union([_kinds_of_text(p) for p in parts])
    return _ANNOTATION_KINDS.get(text.split("[")[0].split(".")[-1])


def _union(parts: list[set[str] | None]) -> set[str] | None:
    return None if any(p is None for p in parts) else set().union(*parts)


def kinds_of_annotation(annotation) -> set[str] | None:
    """The value kinds an annotation admits, or None when it names anything else (Tensor, Any...)."""
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        return _kinds_of_text(annotation)
    if annotation is None or annotation is type(None):
        return {"null"}
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _union([kinds_of_annotation(a) for a in typing.get_args(annotation)])
    return _ANNOTATION_KINDS.get(getattr(origin or annotation, "__name__", ""))


def expected_kinds(param: inspect.Parameter) -> tuple[set[str] | None, bool]:
    """(kinds, strict): from the annotation when it names plain kinds (strict); else from a numeric or
    boolean default, where only a string is refused (``lr: '1e-3'``, ``use_rot: 'false'``)."""
    kinds = kinds_of_annotation(param.annotation)
    if kinds is not None:
        return (kinds | {"null"} if param.default is None else kinds), True
    default = param.default
    if isinstance(default, bool):
        return {"boolean", "null"}, False
    if isinstance(default, (int, float)):
        return {"integer", "number"}, False
    return None, False


def signature_params(obj) -> tuple[dict[str, inspect.Parameter], bool]:
    """Keyword-settable parameters of a class's constructor (or a function), following ``**kwargs``
    into the base classes' constructors; and whether unknown names may still be accepted."""
    params: dict[str, inspect.Parameter] = {}
    targets = [obj]
    if inspect.isclass(obj):
        import torch

        targets = [c.__init__ for c in obj.__mro__ if "__init__" in vars(c) and c not in (object, torch.nn.Module)]
    open_kwargs = False
    for target in targets:
        try:
            sig = inspect.signature(target)
        except (TypeError, ValueError):
            return params, True
        names = list(sig.parameters.values())
        if inspect.isclass(obj) and names and names[0].name == "self":
            names = names[1:]
        open_kwargs = any(p.kind is p.VAR_KEYWORD for p in names)
        for p in names:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                params.setdefault(p.name, p)
        if not open_kwargs:
            break
    return params, open_kwargs
