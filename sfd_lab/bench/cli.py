"""Command lines of the benchmarks and learning checks (standard library only: ``--help`` never imports torch)."""

from __future__ import annotations

import argparse

BENCHMARK_DOC = """Benchmark SFD against BasicSR's discriminators side by side (issue 8); see sfd_lab.bench/run.py.

    python scripts/benchmark.py                      # auto: the GPU profile when CUDA is present, else CPU
    python scripts/benchmark.py --profile smoke      # seconds: tiny networks, checks the machinery
    python scripts/benchmark.py --profile cpu-real --rows gan_step,components   # batch 4 at 256² on CPU
    python scripts/benchmark.py --rows 1,2 --out /tmp/bench

Writes <out>/<device>-<date>.json and .md (ratios, command, versions, device, threads, date).
"""
BENCHMARK_CSUD_DOC = """CSUD training step on CPU: s/iter and peak memory of CSUDModel vs the released code's order of
forwards (with its retain_graph), same networks and batch, one process. Writes JSON + Markdown."""
HOSTS_DOC = """CLIP passes per iteration in every GAN host, and one iteration of the stock ESRGANModel drop-in
(feature reuse off / on) vs SFDModel, side by side. Writes JSON + Markdown (sfd_lab.bench.host_cost)."""
TEXT_TOWER_DOC = """Cost of the frozen-CLIP options (truncated text tower, CLIP input size, frozen-weight dtype):
writes benchmarks/results/text_tower-<device>-<date>.{json,md}. See sfd_lab.bench/text_tower.py."""
BIG_IMAGE_DOC = """Peak memory of tiled SR inference on one big photo (``scripts/bench_big_image.py``)."""
CLIP_BACKBONE_DOC = """Forward+backward time of the frozen CLIP backbone per 256² image (gradient to the input only),
RN50 and ViT-B-16 with random weights, side by side in one process. Writes JSON + Markdown."""
D_ITERATION_DOC = """One discriminator iteration as the hosts run it (issue 21): SFDModel + SFDDiscriminator (RN50,
ViT-B-16), SFDDiscriminator in SRGANModel, UNetDiscriminatorSN in RealESRGANModel, each a real BasicSR
model stepped with a stand-in generator. Per configuration: wall and host time per iteration, GPU
time, kernel launches, host synchronisations (torch.profiler), operators dispatched in eager mode,
verdict GPU-bound / launch-bound, and the issue's targets. See sfd_lab.bench/d_iteration.py.

    python scripts/bench_d_iteration.py                       # auto: gpu profile with CUDA, else cpu
    python scripts/bench_d_iteration.py --profile cpu --before-root /tmp/before
    python scripts/bench_d_iteration.py --profile decide --clip-models RN50    # eager beside auto (GPU)

Writes <out>/d_iteration-<device>-<date>.json and .md; SIGTERM stops it with what it measured written."""
# Kept equal to sfd_lab.bench.d_iteration.D_PROFILES (tests check it).
D_PROFILE_NAMES = ("smoke", "cpu", "gpu", "decide")
# Kept equal to sfd_lab.bench.profiles.PROFILES / ROWS and sfd_lab.bench.csud.PROFILES (tests check it).
PROFILE_NAMES = ("smoke", "cpu", "cpu-real", "gpu")
ROW_NAMES = ("gan_step", "clip_cost", "precision", "iqa", "csud", "components")
CSUD_PROFILE_NAMES = ("tiny", "cpu", "full")


def benchmark_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=BENCHMARK_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="auto", choices=[*PROFILE_NAMES, "auto"], help="sizes (default: auto)")
    parser.add_argument(
        "--rows", default="all", help=f"comma list of 1-{len(ROW_NAMES)} or names {', '.join(ROW_NAMES)}"
    )
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown files")
    parser.add_argument(
        "--no-trace", action="store_true", help="do not torch.profiler configurations that miss a target"
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: the profile's, else one per core)")
    parser.add_argument("--notes", help="Markdown file appended to the table (findings)")
    parser.add_argument(
        "--max-spread",
        type=float,
        help="a time target whose repeats spread more than this ((max - min) / median) reads 'unstable' "
        "instead of met / missed (default: the profile's, 0.15)",
    )
    parser.add_argument("--tag", help="appended to the file names (e.g. run1, run2 for repeated runs on one day)")
    parser.add_argument("--clip-models", help="comma list of open_clip models instead of the profile's (e.g. RN50)")
    parser.add_argument("--repeats", type=int, help="timed repeats per configuration instead of the profile's")
    parser.add_argument("--warmup", type=int, help="warm-up steps per configuration instead of the profile's")
    return parser


def d_iteration_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=D_ITERATION_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--profile", default="auto", choices=[*D_PROFILE_NAMES, "auto"], help="sizes (default: auto)")
    p.add_argument(
        "--before-root",
        help="another checkout (e.g. `git worktree add /tmp/before <commit>`): its components measured "
        "the same way in a child process, reported side by side as before -> after",
    )
    p.add_argument("--after-root", help="measure this checkout's components as 'after' (default: the one running)")
    p.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown files")
    p.add_argument("--tag", help="appended to the file names")
    p.add_argument("--clip-models", help="comma list of open_clip models instead of the profile's (e.g. RN50)")
    p.add_argument("--only-sfd", action="store_true", help="SFDModel rows only (eager beside auto)")
    p.add_argument(
        "--emulate-graphs",
        action="store_true",
        help="on a CPU, run the fast_path auto rows through the graphs' emulation (the GPU check's rehearsal)",
    )
    return p


def benchmark_csud_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=BENCHMARK_CSUD_DOC)
    parser.add_argument("--profile", default="cpu", choices=sorted(CSUD_PROFILE_NAMES), help="(default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results", help="output folder (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    return parser


def clip_backbone_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, description=CLIP_BACKBONE_DOC)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results")
    return p


def hosts_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, description=HOSTS_DOC)
    p.add_argument("--clip", default="tiny-rn", help="open_clip model for the timing rows (random weights)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=128, help="HR crop size")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", default="benchmarks/results")
    return p


def text_tower_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, description=TEXT_TOWER_DOC)
    p.add_argument("--clip-model", default="RN50", help="open_clip model (random weights)")
    p.add_argument("--n-ctx", type=int, default=16)
    p.add_argument("--repeats", type=int, default=7, help="interleaved timings per variant")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--crop", type=int, default=128, help="training crop (HR) size")
    p.add_argument("--input-size", type=int, default=224, help="clip_input_size to compare with")
    p.add_argument("--skip", nargs="*", default=[], choices=["text_tower", "sfd_step", "clip_input", "frozen_weights"])
    p.add_argument("--out", default="benchmarks/results")
    return p


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    try:
        size = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return size


def big_image_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, description=BIG_IMAGE_DOC)
    p.add_argument("--size", type=parse_size, default=(6000, 4000), help="input WIDTHxHEIGHT (default: 6000x4000)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--tile", type=int, default=256)
    cases = ["bicubic", "rrdb", "rrdb23"]  # = sfd_lab.bench.big_image.CASES (rrdb23: the recipes' full RRDBNet-23)
    p.add_argument("--cases", nargs="+", default=["bicubic", "rrdb"], choices=cases)
    p.add_argument("--before-root", help="another checkout to measure as 'before' (same cases)")
    p.add_argument("--before-size", type=parse_size, help="input size for the 'before' code (default: --size)")
    p.add_argument("--before-cases", nargs="+", choices=cases, help="default: --cases")
    p.add_argument(
        "--working-tiles",
        nargs="*",
        type=int,
        default=[],
        metavar="TILE",
        help="also measure each case's working memory of one tile at these tile sizes (e.g. 64 128 256)",
    )
    p.add_argument("--only", choices=["before", "after"], help="measure one code only")
    p.add_argument("--merge", help="a JSON this script wrote earlier: its rows are kept in the new report")
    p.add_argument("--rss-limit-gb", type=float, help="kill a child above this RSS (default: available - 3 GB)")
    p.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown")
    p.add_argument("--name", default=None, help="file stem (default: big_image-cpu-<date>)")
    return p
