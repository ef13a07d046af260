"""One discriminator iteration as the hosts run it (SFDModel, SFD in SRGANModel, UNet-D in
RealESRGANModel): wall, GPU time, kernel launches, host time, operators dispatched; optionally
side by side with another checkout (``--before-root``). Writes benchmarks/results/d_iteration-*.

Thin entry point: the arguments are parsed before torch is imported (``--help`` answers at once);
the program is ``sfd_lab.bench.d_iteration.run_d_iteration_cli``. SIGTERM (the GPU check's time
limit) is handled from the start (exit status 3): before the measurement begins it leaves
``<out>/d_iteration-stopped.json`` saying so; once it runs, the configurations measured so far.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_lab.bench.cli import d_iteration_parser  # noqa: E402
from sfd_lab.bench.stop import ResultFile, StopRequested  # noqa: E402
from sfd_utils.cli import EXIT_INTERRUPTED, launch, with_exit_codes  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args, _ = with_exit_codes(d_iteration_parser()).parse_known_args(argv)
    data = {"schema": "sfd-basicsr-d-iteration/1", "runs": [], "argv": sys.argv[1:] if argv is None else argv}
    ResultFile(os.path.join(args.out, "d_iteration-stopped.json"), data, write=False).stop_on_sigterm()
    try:
        return launch(d_iteration_parser, "sfd_lab.bench.d_iteration:run_d_iteration_cli", argv)
    except StopRequested:  # before the measurement began (its own handler writes what it measured)
        print("interrupted before the measurement began: d_iteration-stopped.json written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
