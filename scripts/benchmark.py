"""Benchmark SFD against BasicSR's discriminators side by side (issue 8); see sfd_bench/run.py.

    python scripts/benchmark.py                      # auto: the GPU profile when CUDA is present, else CPU
    python scripts/benchmark.py --profile smoke      # seconds: tiny networks, checks the machinery
    python scripts/benchmark.py --rows 1,2 --out /tmp/bench

Writes <out>/<device>-<date>.json and .md (ratios, command, versions, device, threads, date).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sfd_utils.compat import install  # noqa: E402

install()  # before anything imports basicsr

from sfd_bench.profiles import PROFILES, ROWS  # noqa: E402
from sfd_bench.run import run_benchmark  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="auto", choices=[*PROFILES, "auto"], help="sizes (default: auto)")
    parser.add_argument("--rows", default="all", help=f"comma list of 1-{len(ROWS)} or names {', '.join(ROWS)}")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown files")
    parser.add_argument(
        "--no-trace", action="store_true", help="do not torch.profiler configurations that miss a target"
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: the profile's, else one per core)")
    parser.add_argument("--notes", help="Markdown file appended to the table (findings)")
    args = parser.parse_args(argv)
    notes = open(args.notes).read() if args.notes else None
    command = " ".join(
        shlex.quote(a) for a in ["python", "scripts/benchmark.py", *(argv if argv is not None else sys.argv[1:])]
    )
    results = run_benchmark(
        args.profile, args.rows, args.out, command=command, trace=not args.no_trace, notes=notes, threads=args.threads
    )
    print(open(results["files"]["markdown"]).read())
    print(f"wrote {results['files']['json']} and {results['files']['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
