#!/usr/bin/env bash
# The GPU check (issues 18, 21): on a fresh GPU machine with only this repository and the wheels it
# carries in .whl/ (`make wheels` / scripts/gpu_wheels.sh, run where pip can download), set up, then
# run, the most important numbers first: one discriminator iteration as the hosts run it (wall, GPU
# time, kernel launches, verdict GPU-/launch-bound), the GAN step vs RealESRGANModel + UNet-D (b16,
# 256², bf16), SFD-IQA vs the bare CLIP floor, the CUDA tests, the step's components, DDP with two
# ranks sharing the GPU, CSUD on CUDA and full-size CLIP, inside a time budget (6 minutes in all,
# setup included). Writes <out>/gpu-<date>.json and .md and prints a summary ending with every target
# (value, limit, met / missed); a failing step is recorded and the others still run (exit status 1).
#
#   bash scripts/gpu_check.sh                       # on the GPU machine
#   bash scripts/gpu_check.sh --cpu --out /tmp/gc   # the rehearsal: every step at tiny sizes on CPU
#   bash scripts/gpu_check.sh --plan decide         # = scripts/gpu_decide.sh (make gpu-decide, issue 31)
#
# Options: --cpu, --out DIR (default benchmarks/results), --python EXE (default .venv/bin/python
# when present, else python3), --wheels DIR (default .whl), --site DIR (where the wheels are
# installed, default $TMPDIR/sfd-gpu-check-site), --work DIR (step logs and outputs, default
# $TMPDIR/sfd-gpu-<plan>-work), --budget SECONDS (the whole check, setup included; default 360 on
# a GPU, 300 for --plan decide, 2400 for a CPU rehearsal), --steps LIST (comma list of steps to
# run; default all), --plan check|decide, --cap STEP=SECONDS (a step's limit; repeatable).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMDLINE="bash scripts/gpu_check.sh${*:+ $*}"
MODE=gpu
OUT=""
PY="${PYTHON:-}"
WHEELS="$ROOT/.whl"
SITE="${TMPDIR:-/tmp}/sfd-gpu-check-site"
WORK=""
BUDGET=""
STEPS=""
PLAN=check
CAPS=()

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) MODE=cpu ;;
        --out) OUT="${2:?--out needs a folder}"; shift ;;
        --python) PY="${2:?--python needs an interpreter}"; shift ;;
        --wheels) WHEELS="${2:?--wheels needs a folder}"; shift ;;
        --site) SITE="${2:?--site needs a folder}"; shift ;;
        --work) WORK="${2:?--work needs a folder}"; shift ;;
        --budget) BUDGET="${2:?--budget needs seconds}"; shift ;;
        --steps) STEPS="${2:?--steps needs a comma list}"; shift ;;
        --plan) PLAN="${2:?--plan needs check or decide}"; shift ;;
        --cap) CAPS+=(--cap "${2:?--cap needs STEP=SECONDS}"); shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
command -v "$PY" >/dev/null 2>&1 || { echo "gpu_check.sh: no Python at '$PY' (use --python)" >&2; exit 2; }
case "$PLAN" in check | decide) ;; *) echo "gpu_check.sh: --plan must be check or decide, not '$PLAN'" >&2; exit 2 ;; esac
OUT="${OUT:-$ROOT/benchmarks/results}"
WORK="${WORK:-${TMPDIR:-/tmp}/sfd-gpu-$PLAN-work}"
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

EXTRA=()
if [ -n "$BUDGET" ]; then EXTRA+=(--budget "$BUDGET"); fi
if [ -n "$STEPS" ]; then EXTRA+=(--steps "$STEPS"); fi
exec "$PY" -m sfd_lab.gpu_check.run run --plan "$PLAN" --mode "$MODE" --out "$OUT" --work "$WORK" \
    --setup "$SETUP" --setup-seconds "$SETUP_S" --command "$CMDLINE" ${EXTRA[@]+"${EXTRA[@]}"} ${CAPS[@]+"${CAPS[@]}"}
