"""CSUD training step on CPU: s/iter and peak memory of CSUDModel vs the released code's order of
forwards (with its retain_graph), same networks and batch, one process. Writes JSON + Markdown."""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()
from sfd_bench.csud import PROFILES, run_csud_benchmark  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES), help="(default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results", help="output folder (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    result = run_csud_benchmark(args.profile, args.out, args.threads)
    print(json.dumps({k: result[k] for k in ("profile", "methods", "speedup_released_over_ours")}, indent=2))


if __name__ == "__main__":
    main()
