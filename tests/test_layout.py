"""The tree states the architecture: who may import whom, no cycles, no grab-bag package or file.

Imports are read from the source (``ast``, ``import_graph.py``), including imports inside functions,
``importlib.import_module("...")`` strings and ``launch``'s ``"module:function"`` entries, so a lazy
import cannot hide a dependency.
"""

from __future__ import annotations

import ast
import os

import pytest
from import_graph import find_cycle, source_imports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPONENTS = {"sfd_arch", "sfd_loss", "sfd_model", "sfd_data", "sfd_metric"}
HELPERS = {"sfd_utils"}
PROGRAMS = {"sfd_tools"}  # one programs package: sfd_tools.sr / .iqa / .csud / .demo
HOSTS = {"sfd_trainner", "sfd_pyiqa"}  # host glue: traiNNer-redux, pyiqa
PRODUCT = COMPONENTS | HELPERS | PROGRAMS | HOSTS  # what the wheel installs
# the lab (repository only): rooms inside sfd_lab
BENCH = {"sfd_lab.bench", "sfd_lab.checks", "sfd_lab.timing"}  # benchmarks; learning checks; shared timing
PHOTOS = {"sfd_lab.photos"}  # the real photographs, split by scene
LAB = BENCH | PHOTOS | {"sfd_lab.bakeoff", "sfd_lab.gpu_check", "sfd_lab"}
PACKAGES = PRODUCT | {"sfd_lab"}
# room -> the rooms of ours it may import (besides itself); no product room imports the lab
ALLOWED = {
    **{p: COMPONENTS | HELPERS for p in COMPONENTS},
    "sfd_utils": set(),
    "sfd_tools": COMPONENTS | HELPERS,
    "sfd_trainner": COMPONENTS | HELPERS,
    "sfd_pyiqa": COMPONENTS | HELPERS,
    "sfd_lab": set(),
    "sfd_lab.timing": set(),
    "sfd_lab.photos": HELPERS,
    "sfd_lab.bench": COMPONENTS | HELPERS | PROGRAMS | PHOTOS | {"sfd_lab.timing"},
    "sfd_lab.checks": COMPONENTS | HELPERS | PROGRAMS | PHOTOS,
    "sfd_lab.bakeoff": COMPONENTS | HELPERS | PROGRAMS | BENCH | PHOTOS,
    "sfd_lab.gpu_check": COMPONENTS | HELPERS | PROGRAMS | BENCH | PHOTOS,
}


def room(module: str) -> str:
    """The layout room of a module: its top-level package, or ``sfd_lab.<part>`` inside the lab."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "sfd_lab" and len(parts) > 1 else parts[0]


MAX_FILE_LINES = 600
MAX_PACKAGE_SHARE = 0.25


def _modules() -> dict[str, str]:
    """module name -> file, for every package of ours."""
    found = {}
    for pkg in sorted(PACKAGES):
        for dirpath, _, files in os.walk(os.path.join(ROOT, pkg)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(dirpath, f)
                    mod = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[mod.removesuffix(".__init__")] = path
    return found


def imported_modules(path: str, module: str) -> set[str]:
    """Every module of ours that ``path`` imports (absolute, relative, lazy, by importlib string or by
    ``"module:function"`` entry string)."""
    with open(path, encoding="utf-8") as f:
        found = source_imports(f.read(), module, path.endswith("__init__.py"), path)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for mod, path in mods.items():
        # `from pkg import name` adds "pkg.name" even when name is a function: keep real modules only
        graph[mod] = {m if m in mods else m.rpartition(".")[0] for m in imported_modules(path, mod)} & set(mods)
        graph[mod].discard(mod)
    return graph


def test_packages_import_only_what_their_room_allows():
    bad = []
    for mod, deps in import_graph().items():
        pkg = room(mod)
        for dep in sorted(deps):
            dep_pkg = room(dep)
            if dep_pkg != pkg and dep_pkg not in ALLOWED[pkg]:
                bad.append(f"{mod} imports {dep}")
    assert not bad, "imports across rooms that the layout forbids:\n" + "\n".join(bad)


def _defines(path: str | None, name: str) -> bool:
    """Whether the module at ``path`` binds ``name`` at top level (def, class, assignment, import)."""
    if path is None:
        return False
    for node in ast.parse(open(path, encoding="utf-8").read()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            while any(isinstance(t, (ast.Tuple, ast.List, ast.Starred)) for t in targets):  # a, b = ... too
                targets = [e for t in targets for e in (t.elts if isinstance(t, (ast.Tuple, ast.List)) else
                           [t.value] if isinstance(t, ast.Starred) else [t])]  # fmt: skip
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return True
    return False


def test_every_import_of_ours_exists():
    """A moved module leaves no import behind (lazy imports fail only when their code path runs)."""
    mods = _modules()
    users = dict(mods)
    for folder in ("scripts", "tests"):
        for f in os.listdir(os.path.join(ROOT, folder)):
            if f.endswith(".py"):
                users[f"{folder}.{f[:-3]}"] = os.path.join(ROOT, folder, f)
    missing = [
        f"{mod} imports {dep}"
        for mod, path in users.items()
        for dep in sorted(imported_modules(path, mod))
        if dep not in mods and not _defines(mods.get(dep.rpartition(".")[0]), dep.rpartition(".")[2])
    ]
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_no_import_cycles():
    graph = import_graph()
    assert find_cycle(graph) is None, f"module import cycle: {' -> '.join(find_cycle(graph))}"
    packages: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        packages.setdefault(room(mod), set()).update(room(d) for d in deps)
    for pkg, deps in packages.items():
        deps.discard(pkg)
    assert find_cycle(packages) is None, f"package import cycle: {' -> '.join(find_cycle(packages))}"


def test_checker_catches_a_forbidden_import_and_a_cycle(tmp_path):
    """The walker itself: a lazy import inside a function and an importlib string are seen."""
    src = tmp_path / "m.py"
    src.write_text(
        "import importlib\n"
        "def f():\n"
        "    from sfd_tools.sr.inference import main\n"
        "    importlib.import_module('sfd_lab.bench.run')\n"
    )
    assert imported_modules(str(src), "sfd_arch.m") >= {"sfd_tools.sr.inference", "sfd_lab.bench.run"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _code_files() -> list[str]:
    """Every Python file of the project but the tests (packages, scripts/, basicsr/ launcher, setup.py)."""
    out = []
    for dirpath, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        if rel.split(os.sep)[0] in {"tests", ".venv", ".git", "build", "experiments", "datasets", "results"}:
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".") and not d.endswith(".egg-info")]
        out += [os.path.join(dirpath, f) for f in files if f.endswith(".py")]
    return out


def _lines(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f)


@pytest.mark.parametrize(
    "path",
    _code_files()
    + [os.path.join(ROOT, "tests", f) for f in os.listdir(os.path.join(ROOT, "tests")) if f.endswith(".py")],
    ids=lambda p: os.path.relpath(p, ROOT),
)
def test_no_file_over_600_lines(path):
    assert _lines(path) <= MAX_FILE_LINES, f"{os.path.relpath(path, ROOT)}: split it by concept"


def test_no_package_holds_more_than_a_quarter_of_the_code():
    """Per room: a top-level package, or one room of the lab (sfd_lab.bench, sfd_lab.bakeoff, ...)."""
    files = _code_files()
    total = sum(_lines(p) for p in files)
    per_package: dict[str, int] = {}
    for p in files:
        top = room(os.path.relpath(p, ROOT)[:-3].replace(os.sep, "."))
        per_package[top] = per_package.get(top, 0) + _lines(p)
    big = {k: f"{v / total:.0%}" for k, v in per_package.items() if v > MAX_PACKAGE_SHARE * total}
    assert not big, f"packages over a quarter of the {total} lines of code: {big}"
