"""The wheel holds the product and nothing of the lab, read from the built wheel's files themselves.

- Its top level is exactly the product's import packages (``wheel_host.PRODUCT``, the list the
  README's "Where things are" gives), the start-up hook ``.pth`` and the ``.dist-info`` folder.
- No benchmark, learning-check, bake-off or GPU-check code is in it: by module name, by the lab's
  entry functions (what ``scripts/`` and ``scripts/gpu_check.sh`` run), and by content (no function
  or class of the lab, compared as syntax trees, is defined in an installed module).
- The import graph of the installed modules (``import_graph.py``: every import statement, lazy ones
  included, importlib/``__import__`` strings and ``launch``'s ``"module:function"`` entries, plus the
  wheel's own entry points) has no cycle; every import of ours names a module the wheel holds, and
  nothing imports, or names as a module string, a repository-only module (the lab, ``scripts/``,
  ``tests/``, ``setup.py``).

Module-name strings held in variables (the start-up hook's ``PLUGIN_PACKAGES`` and adapters) are
checked to exist in the wheel and not to be the lab's, but are not drawn as edges: the hook imports
the plugin packages by name when a host loads, and each package calls the hook back to scan itself;
that by-name registration is the plugin pattern, not a dependency of the hook's code on theirs.
"""

from __future__ import annotations

import ast
import os
import re
import zipfile

import pytest
from import_graph import find_cycle, module_strings, resolve, source_imports
from wheel_host import HOOK, PRODUCT, ROOT

LAB = "sfd_lab"
# words that name lab code; no installed module's path may contain one
LAB_WORDS = ("bench", "bakeoff", "gpu_check", "learning_check", "quality_clip", "timing")


def wheel_modules(wheel: str) -> dict[str, tuple[str, bool]]:
    """module name -> (source text, is a package) for every .py file in the wheel."""
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.endswith(".py") and ".dist-info/" not in name:
                mod = name[:-3].replace("/", ".")
                is_pkg = mod.endswith(".__init__")
                out[mod.removesuffix(".__init__")] = (z.read(name).decode("utf-8"), is_pkg)
    return out


def wheel_entry_points(wheel: str) -> dict[str, str]:
    """'group/name' -> 'module:function' from the wheel's entry_points.txt."""
    with zipfile.ZipFile(wheel) as z:
        text = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))).decode()
    out, group = {}, ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            group = line.strip("[]")
        elif "=" in line:
            name, target = (p.strip() for p in line.split("=", 1))
            out[f"{group}/{name}"] = target
    return out


def repository_only() -> set[str]:
    """Top-level names importable from a checkout but not installed: the lab, setup.py, and the
    modules of scripts/ and tests/ (importable when their folder is on sys.path)."""
    names = {LAB, "setup"}
    for folder in ("scripts", "tests"):
        names |= {f[:-3] for f in os.listdir(os.path.join(ROOT, folder)) if f.endswith(".py")}
    return names


def lab_sources() -> dict[str, str]:
    """module -> source of every module of the lab in this checkout."""
    out = {}
    for dirpath, _, files in os.walk(os.path.join(ROOT, LAB)):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                with open(path, encoding="utf-8") as fh:
                    out[os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")] = fh.read()
    return out


def lab_entry_functions() -> set[str]:
    """The lab's entry functions: what scripts/*.py import from the lab or launch by
    ``"sfd_lab...:function"``, and the functions (but ``main``) of each module ``scripts/gpu_check.sh``
    runs with -m."""
    names, lab = set(), lab_sources()
    scripts = os.path.join(ROOT, "scripts")
    for f in sorted(os.listdir(scripts)):
        path = os.path.join(scripts, f)
        text = open(path, encoding="utf-8").read()
        if f.endswith(".py"):
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(LAB):
                    names.update(a.name for a in node.names)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if node.value.startswith(LAB + ".") and ":" in node.value:
                        names.add(node.value.split(":")[1])
        for mod in re.findall(r"-m\s+(sfd_lab[\w.]*)", text):
            tree = ast.parse(lab[mod])
            names.update(n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name != "main")
    return names


def top_level_definitions(source: str) -> dict[str, str]:
    """name -> ast.dump of each top-level function and class (docstrings and line numbers excluded)."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]  # the docstring may differ; the code may not
            out[node.name] = ast.dump(type(node)(**{**vars(node), "body": body}), include_attributes=False)
    return out


@pytest.fixture(scope="module")
def modules(wheel) -> dict[str, tuple[str, bool]]:
    return wheel_modules(wheel)


def test_wheel_top_level_is_exactly_the_product(wheel):
    with zipfile.ZipFile(wheel) as z:
        tops = {n.split("/")[0] for n in z.namelist()}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1, tops
    assert tops - dist_info == PRODUCT | {HOOK}, sorted(tops)


def test_readme_lists_the_wheels_top_level():
    """The README's "Where things are" states the installed top-level set; it must be the wheel's."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    line = next((ln for ln in text.splitlines() if "<!-- wheel-top-level -->" in ln), None)
    assert line is not None, "README.md lacks the line marked <!-- wheel-top-level -->"
    listed = set(re.findall(r"`([\w.]+)`", line))
    assert listed == PRODUCT | {HOOK}, sorted(listed ^ (PRODUCT | {HOOK}))


def test_wheel_holds_no_lab_code(modules):
    assert modules, "no Python module in the wheel"
    by_name = [m for m in modules if m.split(".")[0] == LAB or any(w in m for w in LAB_WORDS)]
    assert not by_name, f"lab modules in the wheel: {by_name}"
    entries = lab_entry_functions()
    assert {"bakeoff_parser", "run_bakeoff_cli", "run_benchmark_cli", "run_check"} <= entries, entries
    defined = {name: mod for mod, (src, _) in modules.items() for name in top_level_definitions(src)}
    assert not entries & set(defined), {n: defined[n] for n in entries & set(defined)}
    lab_code = {
        dump: f"{mod}.{name}" for mod, src in lab_sources().items() for name, dump in top_level_definitions(src).items()
    }
    copied = [
        f"{mod}.{name} = {lab_code[dump]}"
        for mod, (src, _) in modules.items()
        for name, dump in top_level_definitions(src).items()
        if dump in lab_code
    ]
    assert not copied, f"lab code defined again in the wheel: {copied}"


def installed_graph(modules: dict[str, tuple[str, bool]], entry_points: dict[str, str]) -> tuple[dict, list[str]]:
    """(module -> modules of the wheel it imports, with their parent packages; problems found)."""
    names, repo_only, problems = set(modules), repository_only(), []
    graph: dict[str, set[str]] = {}
    for mod, (src, is_pkg) in sorted(modules.items()):
        deps = set()
        for name in sorted(source_imports(src, mod, is_pkg, mod)):
            top = name.split(".")[0]
            if top in repo_only:
                problems.append(f"{mod} imports {name}, which only the repository has")
            elif top in PRODUCT or top.startswith("sfd_"):
                found = resolve(name, names)
                if found is None:
                    problems.append(f"{mod} imports {name}, which the wheel does not hold")
                else:
                    parts = found.split(".")
                    deps |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}  # packages run first
        for text in sorted(module_strings(src, mod)):
            top = text.split(".")[0]
            if text.endswith(".py"):
                continue  # a file name (a program's name in its help), not a module
            if top == LAB or ("." in text and top in repo_only):
                problems.append(f"{mod} names the repository-only module {text!r}")
            elif top in PRODUCT and "." in text and resolve(text, names) is None:
                problems.append(f"{mod} names {text!r}, which the wheel does not hold")
        deps.discard(mod)
        graph[mod] = deps
    for key, target in sorted(entry_points.items()):
        module, _, func = target.partition(":")
        if module not in modules or func not in top_level_definitions(modules[module][0]):
            problems.append(f"entry point {key} = {target} is not a function of the wheel")
    return graph, problems


def test_installed_import_graph_has_no_cycle_and_no_repository_import(wheel, modules):
    graph, problems = installed_graph(modules, wheel_entry_points(wheel))
    assert not problems, "\n".join(problems)
    assert sum(len(d) for d in graph.values()) > 50, "the walker found almost no imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among the installed modules: " + " -> ".join(cycle)


def test_graph_walker_sees_lazy_string_and_lab_imports():
    """The walker itself: lazy, importlib-string and entry-string imports are edges; a lab import and
    a lab module string are problems; a missing module of ours is named; a cycle is found."""
    fake = {
        "sfd_tools": ("", True),
        "sfd_tools.a": ("def f():\n    import importlib\n    importlib.import_module('sfd_tools.b')\n", False),
        "sfd_tools.b": ("X = 'sfd_tools.c" + ":run'\n", False),  # split: not an entry string of this file
        "sfd_tools.c": ("def run():\n    from sfd_tools import a\n", False),
        "sfd_tools.d": ("def g():\n    from sfd_lab.bench import run\nN = 'sfd_lab.timing'\nimport sfd_arch.no\n", 0),
    }
    graph, problems = installed_graph(fake, {"console_scripts/x": "sfd_tools.c" + ":missing"})
    assert graph["sfd_tools.a"] >= {"sfd_tools.b"} and graph["sfd_tools.b"] >= {"sfd_tools.c"}
    assert find_cycle(graph) == ["sfd_tools.a", "sfd_tools.b", "sfd_tools.c", "sfd_tools.a"]
    assert any("imports sfd_lab.bench" in p for p in problems)
    assert any("'sfd_lab.timing'" in p for p in problems)
    assert any("sfd_arch.no" in p and "does not hold" in p for p in problems)
    assert any("entry point console_scripts/x" in p for p in problems)
