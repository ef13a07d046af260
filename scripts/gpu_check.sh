#!/usr/bin/env bash
# The GPU check (issue 18): on a fresh GPU machine with only this repository and the wheels it
# carries in .whl/ (`make wheels` / scripts/gpu_wheels.sh, run where pip can download), set up, then
# run the CUDA tests, the GPU benchmark rows (SFD step vs RealESRGANModel + UNetDiscriminatorSN at
# batch 16, 256², bf16), SFD-IQA throughput at 512² bf16, full-size CLIP RN50 / ViT-B-16 / ViT-L-14
# forward+backward in bf16 with peak memory, and a 2-process DDP smoke run when two GPUs exist,
# inside a time budget (8 minutes in all). Writes <out>/gpu-<date>.json and .md and prints a summary;
# a failing step is recorded and the others still run (exit status 1 when any failed).
#
#   bash scripts/gpu_check.sh                       # on the GPU machine
#   bash scripts/gpu_check.sh --cpu --out /tmp/gc   # the rehearsal: every step at tiny sizes on CPU
#
# Options: --cpu, --out DIR (default benchmarks/results), --python EXE (default .venv/bin/python
# when present, else python3), --wheels DIR (default .whl), --site DIR (where the wheels are
# installed, default $TMPDIR/sfd-gpu-check-site), --work DIR (step logs and outputs, default
# $TMPDIR/sfd-gpu-check-work), --budget SECONDS (for the steps after setup, default 420).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMDLINE="bash scripts/gpu_check.sh${*:+ $*}"
MODE=gpu
OUT=""
PY="${PYTHON:-}"
WHEELS="$ROOT/.whl"
SITE="${TMPDIR:-/tmp}/sfd-gpu-check-site"
WORK=""
BUDGET=420

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) MODE=cpu ;;
        --out) OUT="${2:?--out needs a folder}"; shift ;;
        --python) PY="${2:?--python needs an interpreter}"; shift ;;
        --wheels) WHEELS="${2:?--wheels needs a folder}"; shift ;;
        --site) SITE="${2:?--site needs a folder}"; shift ;;
        --work) WORK="${2:?--work needs a folder}"; shift ;;
        --budget) BUDGET="${2:?--budget needs seconds}"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
command -v "$PY" >/dev/null 2>&1 || { echo "gpu_check.sh: no Python at '$PY' (use --python)" >&2; exit 2; }
OUT="${OUT:-$ROOT/benchmarks/results}"
WORK="${WORK:-${TMPDIR:-/tmp}/sfd-gpu-check-work}"
mkdir -p "$OUT" "$WORK/logs"
OUT="$(cd "$OUT" && pwd)"
WORK="$(cd "$WORK" && pwd)"
cd "$ROOT"

# -- setup: the carried wheels (basicsr, open_clip, ftfy, ...) into a folder of their own ------------
START=$(date +%s)
SETUP="skipped (no wheels in $WHEELS)"
shopt -s nullglob
WHEEL_FILES=("$WHEELS"/*.whl)
shopt -u nullglob
if [ ${#WHEEL_FILES[@]} -gt 0 ]; then
    mkdir -p "$SITE"
    echo "[gpu_check] setup: installing ${#WHEEL_FILES[@]} wheels from $WHEELS into $SITE"
    if "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" "${WHEEL_FILES[@]}" >"$WORK/logs/setup.log" 2>&1; then
        SETUP="ok: ${#WHEEL_FILES[@]} wheels installed into $SITE"
    else
        SETUP="failed: pip install of the wheels (logs/setup.log)"
        cat "$WORK/logs/setup.log" >&2
    fi
fi
# The repository's packages first, then the installed wheels, then whatever the interpreter has.
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
# basicsr 1.4.2 imports a torchvision module removed in 0.17: sfd_utils.compat shims it (an installed
# sfd-basicsr does this at start-up; here only the repository is on the path).
if ! "$PY" -c "from sfd_utils.compat import install; install(); import torch, basicsr, open_clip" \
    >>"$WORK/logs/setup.log" 2>&1; then
    SETUP="failed: torch/basicsr/open_clip not importable after setup ($SETUP; see logs/setup.log)"
fi
echo "[gpu_check] setup: $SETUP"
SETUP_S=$(($(date +%s) - START))

exec "$PY" -m sfd_gpu_check.run run --mode "$MODE" --out "$OUT" --work "$WORK" --budget "$BUDGET" \
    --setup "$SETUP" --setup-seconds "$SETUP_S" --command "$CMDLINE"
