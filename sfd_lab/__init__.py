"""The lab: benchmarks, learning checks, the bake-off and the GPU check. Repository only.

This package is never installed (setup.py lists only the product) and nothing installed imports it.
It runs through ``scripts/`` and ``make`` from a checkout, imports the product freely, and shares
its timing helpers (``sfd_lab.timing``) between the benchmarks and the GPU check.

- ``sfd_lab.bench``: timing/memory harness and one module per comparison;
- ``sfd_lab.checks``: learning checks and the quality-aware tiny CLIP they train;
- ``sfd_lab.bakeoff``: the discriminator bake-off (contestants, runs, report);
- ``sfd_lab.gpu_check``: the budgeted GPU check.
"""
