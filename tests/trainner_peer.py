"""Locate, or install from the peer source archive, the traiNNer-redux checkout the tests run.

traiNNer-redux is not on the package registry as a working package: its ``pyproject.toml`` packages
only ``traiNNer/__init__.py``, and ``train.py`` must run from the source root. The tests therefore
use an editable install of a source tree. If the interpreter already imports ``traiNNer`` from a
tree that has ``train.py``, that tree is used; otherwise the archive in ``<repo>/../shared/peers/``
is extracted to ``<sys.prefix>/src/`` (next to the virtual environment, like pip's own editable
checkouts) and installed with ``pip install -e`` under ``constraints.txt`` (its dependencies come
from the package registry; no installed version is changed). Without the archive the caller skips.

``python tests/trainner_peer.py`` does the same by hand and prints the source root.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(os.path.dirname(ROOT), "shared", "peers")
ARCHIVE_GLOB = "traiNNer-redux-*.tar.gz"


class PeerUnavailable(RuntimeError):
    """traiNNer-redux is neither installed nor installable here; the message says why."""


def installed_root() -> str | None:
    """Source root (the folder holding ``train.py``) of the importable ``traiNNer``, or None."""
    spec = importlib.util.find_spec("traiNNer")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        root = os.path.dirname(os.path.abspath(folder))
        if os.path.isfile(os.path.join(root, "train.py")) and os.path.isdir(os.path.join(folder, "archs")):
            return root
    return None


def _archive() -> str:
    found = sorted(glob.glob(os.path.join(PEERS, ARCHIVE_GLOB)))
    if not found:
        raise PeerUnavailable(
            f"traiNNer-redux is not installed and no {ARCHIVE_GLOB} source archive is in {PEERS} "
            "(install it editable from a traiNNer-redux checkout: pip install -e <checkout>)"
        )
    return found[-1]


def _extract(archive: str, dest_parent: str) -> str:
    """Extract the archive (one top folder) under ``dest_parent`` once; return the source root."""
    with tarfile.open(archive) as tar:
        tops = {m.name.split("/")[0] for m in tar.getmembers()}
        if len(tops) != 1:
            raise PeerUnavailable(f"{archive}: expected one top-level folder, found {sorted(tops)}")
        root = os.path.join(dest_parent, tops.pop())
        if not os.path.isfile(os.path.join(root, "train.py")):
            os.makedirs(dest_parent, exist_ok=True)
            tar.extractall(dest_parent, filter="data")
    return root


def ensure_trainner() -> str:
    """Return the traiNNer-redux source root, installing it from the peer archive if needed."""
    root = installed_root()
    if root is not None:
        return root
    root = _extract(_archive(), os.path.join(sys.prefix, "src"))
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    cmd += ["-c", os.path.join(ROOT, "constraints.txt"), "-e", root]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PeerUnavailable(f"pip install -e {root} failed:\n{proc.stderr[-2000:]}")
    importlib.invalidate_caches()
    return root


if __name__ == "__main__":
    print(ensure_trainner())
