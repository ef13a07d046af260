"""Benchmark SFD against BasicSR's discriminators side by side (issue 8); see sfd_lab.bench/run.py.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_lab.bench.run.run_benchmark_cli``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.bench.cli import benchmark_parser  # noqa: E402
from sfd_utils.cli import launch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return launch(benchmark_parser, "sfd_lab.bench.run:run_benchmark_cli", argv)


if __name__ == "__main__":
    sys.exit(main())
