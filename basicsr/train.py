"""Thin launcher: ``python basicsr/train.py -opt options/<recipe>.yml`` from this repo's root.

This folder has no ``__init__.py`` on purpose: it never shadows the installed basicsr package
(a regular package wins over a namespace folder). Outputs go to ``experiments/`` and
``tb_logger/`` under the repo root, as with BasicSR.
"""

import os.path as osp
import sys

ROOT = osp.abspath(osp.join(__file__, osp.pardir, osp.pardir))
if ROOT not in sys.path:
    sys.path.append(ROOT)  # appended, so an installed sfd-basicsr / basicsr is found first

from sfd_utils.cli import require_dependencies  # noqa: E402

if __name__ == "__main__":
    require_dependencies()  # a Python without torch/basicsr: one line naming them and the fix
    from sfd_utils.cli import run_entry
    from sfd_utils.launcher import train_pipeline

    run_entry(lambda: train_pipeline(ROOT))  # the exit-status contract's top-level handler
