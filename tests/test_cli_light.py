"""Every script answers --help and argument errors without importing torch, basicsr or OpenCV, and a
Python that lacks the dependencies gets one line naming them and the fix (no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(f for f in os.listdir(os.path.join(ROOT, "scripts")) if f.endswith(".py"))
HEAVY = ("torch", "basicsr", "cv2", "open_clip", "numpy")
PROBE = """
import runpy, sys
sys.argv = [{script!r}, *{args!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as e:
    code = e.code
else:
    code = 0
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def _probe(script: str, *args: str) -> subprocess.CompletedProcess:
    path = os.path.join(ROOT, "scripts", script)
    code = PROBE.format(script=path, args=list(args), heavy=HEAVY)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_imports_nothing_heavy(script):
    proc = _probe(script, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    assert proc.stderr.strip().endswith("HEAVY:"), f"--help of {script} imported {proc.stderr.split('HEAVY:')[-1]}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_argument_errors_import_nothing_heavy(script):
    proc = _probe(script, "--no-such-option")
    assert proc.returncode == 2 and "error:" in proc.stderr
    assert proc.stderr.strip().endswith("HEAVY:"), f"an argument error of {script} imported heavy modules"


def test_parser_choices_match_the_programs():
    from sfd_lab.bench import cli as bench_cli
    from sfd_lab.bench.csud import PROFILES as CSUD_PROFILES
    from sfd_lab.bench.profiles import PROFILES, ROWS

    assert tuple(PROFILES) == bench_cli.PROFILE_NAMES and ROWS == bench_cli.ROW_NAMES
    assert tuple(CSUD_PROFILES) == bench_cli.CSUD_PROFILE_NAMES


def test_python_without_dependencies_gets_one_line(tmp_path):
    """A Python whose imports of torch/basicsr fail (simulated: a path entry shadowing them with
    modules that raise ModuleNotFoundError would not count as missing, so hide them from find_spec)."""
    hide = tmp_path / "sitecustomize.py"
    hide.write_text(
        "import importlib.util, sys\n"
        "_find = importlib.util.find_spec\n"
        "def find_spec(name, package=None):\n"
        "    return None if name.split('.')[0] in ('torch', 'basicsr') else _find(name, package)\n"
        "importlib.util.find_spec = find_spec\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for cmd in (["scripts/inference_sr.py", "-i", "x"], ["basicsr/train.py", "-opt", "options/demo_SFD_cpu.yml"]):
        proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, env=env)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert "torch" in proc.stderr and "basicsr" in proc.stderr and ".venv" in proc.stderr


def _parser_factories():
    """Every ``*_parser()`` of the programs' and the lab's cli modules."""
    import glob
    import importlib
    import inspect

    found = []
    for path in sorted(
        glob.glob(os.path.join(ROOT, "sfd_tools", "*", "cli.py"))
        + glob.glob(os.path.join(ROOT, "sfd_lab", "*", "cli.py"))
    ):
        module = importlib.import_module(os.path.relpath(path, ROOT)[:-3].replace(os.sep, "."))
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.endswith("_parser") and fn.__module__ == module.__name__:
                found.append((f"{module.__name__}.{name}", fn))
    return found


def _with_subparsers(parser) -> list:
    """``parser`` and every sub-command parser below it."""
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [parser, *(p for sub in subs for child in sub.choices.values() for p in _with_subparsers(child))]


@pytest.mark.parametrize("name, factory", _parser_factories(), ids=[n for n, _ in _parser_factories()])
def test_every_parser_refuses_abbreviations(name, factory):
    """``--forc`` must not be taken for ``--force``: no parser of ours (nor a sub-command's) accepts an
    abbreviated option."""
    import argparse

    for parser in _with_subparsers(factory()):
        assert parser.allow_abbrev is False, parser.prog
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue  # its options are tried on each sub-command's parser
        for action in parser._actions:  # so that only the option under test is parsed
            action.required = False
        longs = [o for a in parser._actions for o in a.option_strings if o.startswith("--") and len(o) > 4]
        assert longs, parser.prog
        positionals = [str(next(iter(a.choices or ["x"]))) for a in parser._actions if not a.option_strings]
        for option in longs:
            abbrev = option[:-1]
            if abbrev not in parser._option_string_actions:
                ns, extra = parser.parse_known_args([*positionals, abbrev])
                # an argument list handed on whole (nargs=REMAINDER, e.g. pytest's) may take it as it is
                passed_on = [v for a in parser._actions if a.nargs == argparse.REMAINDER for v in getattr(ns, a.dest)]
                assert abbrev in extra or abbrev in passed_on, (parser.prog, option)


def test_every_argument_parser_is_built_without_abbreviations():
    """Every ``ArgumentParser(...)`` (or subclass) construction in our code says ``allow_abbrev=False``."""
    import ast

    problems, sources = [], []
    for root in ("scripts", "basicsr", *(d for d in os.listdir(ROOT) if d.startswith("sfd_"))):
        for dirpath, _, names in os.walk(os.path.join(ROOT, root)):
            sources += [os.path.join(dirpath, f) for f in names if f.endswith(".py")]
    trees = {p: ast.parse(open(p, encoding="utf-8").read()) for p in sources}
    parsers = {"ArgumentParser"} | {
        node.name
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(getattr(b, "attr", getattr(b, "id", "")) == "ArgumentParser" for b in node.bases)
    }
    count = 0
    for path, tree in trees.items():
        for node in ast.walk(tree):
            called = getattr(node.func, "attr", getattr(node.func, "id", None)) if isinstance(node, ast.Call) else None
            if called in parsers or called == "add_parser":
                count += 1
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get("allow_abbrev"), ast.Constant) and kw["allow_abbrev"].value is False):
                    problems.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    assert count >= 20 and not problems, problems
