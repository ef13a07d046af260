"""The programs behind ``scripts/`` and the console scripts, one sub-package per task.

- ``sfd_tools.sr``: super-resolution inference, evaluation, the perception-distortion plot, export;
- ``sfd_tools.iqa``: SFD-IQA scoring of folders and MOS tables, the degradation-ranking report;
- ``sfd_tools.csud``: deraining and synthetic-rain data;
- ``sfd_tools.demo``: ``make demo`` and its data.

Each sub-package keeps its argument parsers in ``cli.py`` (standard library only, so ``--help`` answers
at once). They import the registered components (sfd_arch, sfd_model, ...) and sfd_utils; nothing
imports them back, and nothing here imports the repository's lab code (sfd_lab).
"""
