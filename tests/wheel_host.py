"""Build this repository's wheel and install it into a fresh virtual environment (test helper).

The question a wheel test answers is "does ``pip install sfd-basicsr`` give a user a working plugin",
so the fresh environment must see the wheel's files and its declared dependencies, and nothing of this
checkout: not the editable install of the test environment (its ``__editable__`` finder and start-up
hook are ``.pth`` files), not the repository folder, not packages it merely happens to have.

Installing torch, open_clip, basicsr... into a new environment would cost minutes and gigabytes, so the
new environment borrows them from the test environment through a *dependency view*: a folder of
symbolic links to exactly the files of the distributions in the dependency closure of what is asked
for (the wheel's base ``Requires-Dist``, plus an extra such as ``basicsr``, plus a host's own
requirements), read from the installed ``RECORD`` files with their environment markers evaluated. One
``.pth`` line puts that folder on ``sys.path``. A plain path line of a ``.pth`` file is only appended
to ``sys.path``; the ``.pth`` files inside that folder are not processed, and the view holds none
anyway, so no editable finder or hook of the test environment can act there. A dependency the wheel
forgot to declare is therefore missing in the new environment, as it would be for a user; basicsr is
truly absent unless the ``basicsr`` extra is asked for.

The wheel is installed as the README says, ``pip install <wheel>`` or ``pip install '<wheel>[basicsr]'``,
run by the test environment's pip for the new environment (``pip --python``) with ``--no-index``:
pip resolves every declared requirement against what the new environment sees (the view) and
downloads nothing, so a requirement the view cannot satisfy (basicsr in a base requirement, say)
fails the install. ``python -m build --no-isolation`` builds the sdist and,
from it, the wheel, out of a copy of the checkout's files (git's tracked and untracked-not-ignored
files), so the build never writes into the working tree and a file missing from the sdist shows up.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

# The product: the import packages the wheel installs (the README's "Where things are" lists them), and
# nothing of the lab (sfd_lab: benchmarks, learning checks, bake-off, GPU check).
PRODUCT = {
    *("sfd_arch", "sfd_model", "sfd_loss", "sfd_data", "sfd_metric"),  # registered components
    "sfd_utils",  # shared helpers and the start-up hook
    "sfd_tools",  # the programs (console scripts)
    *("sfd_trainner", "sfd_pyiqa"),  # host glue: traiNNer-redux, pyiqa
}
HOOK = "sfd_basicsr_hook.pth"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE = sysconfig.get_paths()["purelib"]
# Where the test environment's distributions are: its site-packages and any site-packages folder a
# .pth line adds (a worktree's venv that borrows a main venv's packages), in sys.path order.
SITES = list(dict.fromkeys([SITE, *(p for p in sys.path if os.path.basename(p) == "site-packages")]))
SKIP_TOP = ("__pycache__", "..")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


def source_files(root: str = ROOT) -> list[str]:
    """The checkout's files as a fresh clone would have them (tracked + untracked not ignored)."""
    if os.path.exists(os.path.join(root, ".git")):
        out = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root).stdout
        return [f for f in out.split("\0") if f and os.path.isfile(os.path.join(root, f))]
    skip = {".venv", ".git", "build", "dist", "experiments", "results", "datasets", "tb_logger", "__pycache__"}
    found = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        found += [os.path.relpath(os.path.join(dirpath, f), root) for f in files]
    return found


def build_wheel(out_dir: str) -> str:
    """sdist + wheel of a copy of the checkout (``python -m build --no-isolation``); the wheel's path."""
    src = os.path.join(out_dir, "src")
    for rel in source_files():
        os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), os.path.join(src, rel))
    dist = os.path.join(out_dir, "dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, src], cwd=out_dir)
    wheels = [f for f in os.listdir(dist) if f.endswith(".whl")]
    assert len(wheels) == 1, os.listdir(dist)
    return os.path.join(dist, wheels[0])


def wheel_requirements(wheel: str) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode("utf-8").split("\n\n", 1)[0]
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def _installed() -> dict[str, metadata.Distribution]:
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=SITES):
        name = canonicalize_name(dist.metadata["Name"])
        # two copies (a worktree venv's own setuptools before the borrowed one): the newest, whose
        # version the other distributions' requirements were resolved against
        if name not in found or Version(dist.version) > Version(found[name].version):
            found[name] = dist
    return found


def dependency_closure(requirements: list[str], extras: tuple[str, ...] = ()) -> set[str]:
    """Canonical names of the installed distributions that ``requirements`` need (with ``extras`` of
    the top level), transitively, markers evaluated for this interpreter. A requirement that is not
    installed here raises: the test environment must hold what the wheel declares."""
    installed = _installed()
    wanted: set[str] = set()
    todo = [(r, extras) for r in requirements]
    while todo:
        text, active = todo.pop()
        req = Requirement(text)
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (*active, "")):
            continue
        name = canonicalize_name(req.name)
        if name in wanted:
            continue
        if name not in installed:
            raise LookupError(f"{req.name} (needed by the wheel) is not installed in {SITES}")
        wanted.add(name)
        todo += [(r, tuple(req.extras)) for r in installed[name].requires or ()]
    return wanted


def dependency_view(folder: str, names: set[str], exclude: tuple[str, ...] = ()) -> str:
    """A folder of symlinks to every top-level file/folder of the named distributions (their RECORD),
    without ``.pth`` files, editable finders and the names in ``exclude``."""
    installed = _installed()
    os.makedirs(folder, exist_ok=True)
    for name in sorted(names):
        for entry in installed[name].files or ():
            top = str(entry).split("/")[0]
            if top in SKIP_TOP or top.endswith(".pth") or top.startswith("__editable__") or top in exclude:
                continue
            link = os.path.join(folder, top)
            source = os.path.join(str(installed[name].locate_file("")), top)
            if not os.path.lexists(link) and os.path.exists(source):
                os.symlink(source, link)
    return folder


def fresh_venv(
    folder: str, wheel: str, path_entries: list[str], extras: tuple[str, ...] = (), from_index: bool = False
) -> str:
    """A new virtual environment (no pip of its own) with ``path_entries`` appended to its ``sys.path``
    by one ``.pth`` line each and ``wheel[extras]`` installed by the test environment's pip, offline,
    its requirements resolved against those entries; returns its python. ``from_index``: what those
    entries lack is downloaded from the package index (pip's cache is used), niced; a failure raises
    :class:`IndexInstallError` with pip's output."""
    _run([sys.executable, "-m", "venv", "--without-pip", folder])
    python = os.path.join(folder, "bin", "python")
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    with open(os.path.join(site, "zz_test_dependency_view.pth"), "w", encoding="utf-8") as f:
        f.write("".join(p + "\n" for p in path_entries))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", python]
    target = wheel + (f"[{','.join(extras)}]" if extras else "")
    if not from_index:
        _run([*pip, "install", "-q", "--no-index", target])
        return python
    proc = subprocess.run(["nice", "-n", "10", *pip, "install", "-q", target], capture_output=True, text=True)
    if proc.returncode != 0:
        raise IndexInstallError(f"pip install {target} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return python


class IndexInstallError(RuntimeError):
    """``pip install`` from the package index failed (the message holds pip's output)."""


def index_reachable(package: str) -> str | None:
    """None if pip can read ``package``'s versions from the configured index, else pip's last line."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "index", "versions", package]
    proc = subprocess.run(pip, capture_output=True, text=True, timeout=120)
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return None if proc.returncode == 0 else (lines[-1] if lines else f"pip exited {proc.returncode}")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for processes of the fresh venv: no PYTHONPATH, no autoload switch, 2 threads."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SFD_BASICSR_NO_AUTOLOAD", "VIRTUAL_ENV")}
    env.update({"OMP_NUM_THREADS": "2", "PYTHONDONTWRITEBYTECODE": "1", **extra})
    return env
