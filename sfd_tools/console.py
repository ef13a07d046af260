"""The console scripts the wheel installs (setup.py ``entry_points``); ``scripts/*.py`` call the same
functions. Standard library only until the arguments are read: each parser lives in its sub-package's
``cli`` module and the program is named by a ``"module:function"`` string that :func:`launch` imports
afterwards, so ``--help`` answers at once and no program module imports this one back.
"""

from __future__ import annotations

from sfd_tools.csud.cli import derain_parser
from sfd_tools.iqa.cli import sfd_iqa_eval_parser
from sfd_tools.sr.cli import evaluate_parser, export_parser, inference_parser, plot_pd_parser
from sfd_utils.cli import SCORING, launch


def inference_main(argv: list[str] | None = None) -> int:
    """``sfd-infer`` = ``python scripts/inference_sr.py``."""
    return launch(inference_parser, "sfd_tools.sr.inference:run_inference", argv)


def evaluate_main(argv: list[str] | None = None) -> int:
    """``sfd-evaluate`` = ``python scripts/evaluate_sr.py``."""
    return launch(evaluate_parser, "sfd_tools.sr.evaluation:run_evaluate", argv)


def plot_pd_main(argv: list[str] | None = None) -> int:
    """``sfd-plot-pd`` = ``python scripts/plot_pd.py``."""
    return launch(plot_pd_parser, "sfd_tools.sr.plot_pd:run_plot_pd", argv, needs=("numpy", "matplotlib"))


def export_main(argv: list[str] | None = None) -> int:
    """``sfd-export`` = ``python scripts/export.py``."""
    return launch(export_parser, "sfd_tools.sr.export:run_export", argv)


def sfd_iqa_eval_main(argv: list[str] | None = None) -> int:
    """``sfd-iqa`` = ``python scripts/sfd_iqa_eval.py``; needs no basicsr."""
    return launch(sfd_iqa_eval_parser, "sfd_tools.iqa.evaluate:run_iqa_eval", argv, needs=SCORING)


def derain_main(argv: list[str] | None = None) -> int:
    """``sfd-derain`` = ``python scripts/derain.py``."""
    return launch(derain_parser, "sfd_tools.csud.derain:run_derain", argv)
