"""Reading imports from source (test helper for ``test_layout.py`` and ``test_wheel_install.py``).

Everything a module can import is read from its text with ``ast``, so a lazy import cannot hide:
``import`` / ``from ... import`` statements anywhere (inside functions too, relative ones resolved),
``importlib.import_module("...")`` and ``__import__("...")`` with a literal name, and the
``"package.module:function"`` strings that ``sfd_utils.cli.launch`` imports when a program starts.
"""

from __future__ import annotations

import ast
import re

ENTRY_STRING = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):[A-Za-z_]\w*$")
MODULE_STRING = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


def source_imports(source: str, module: str, is_package: bool = False, filename: str = "<source>") -> set[str]:
    """Every name ``source`` (the text of ``module``) imports: absolute, relative (resolved), lazy,
    by importlib/``__import__`` string or by ``"module:function"`` entry string. ``from pkg import x``
    yields both ``pkg`` and ``pkg.x`` (x may be a module)."""
    tree = ast.parse(source, filename)
    package = module if is_package else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.add(node.args[0].value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ENTRY_STRING.match(node.value):
            out.add(ENTRY_STRING.match(node.value).group(1))
    return out


def module_strings(source: str, filename: str = "<source>") -> set[str]:
    """Every string constant that has the form of a dotted module name (or ``module:function``): the
    names a module may import through a variable (``PLUGIN_PACKAGES``, an adapter's name, ...)."""
    out = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.split(":")[0] if ENTRY_STRING.match(node.value) else node.value
            if MODULE_STRING.match(text):
                out.add(text)
    return out


def resolve(name: str, modules: set[str]) -> str | None:
    """The module of ``modules`` that importing ``name`` means: ``name`` itself, or the longest prefix
    of it that is a module (``pkg.mod.func`` -> ``pkg.mod``); None when none is."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None
