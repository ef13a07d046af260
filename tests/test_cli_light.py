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
