#!/usr/bin/env bash
# Wheels for the GPU check (scripts/gpu_check.sh) on a machine that cannot download: the packages
# this project needs beyond what a PyTorch GPU image has (torch, torchvision, numpy, opencv, scipy,
# scikit-image, timm, PyYAML, regex, tqdm, pytest), at the versions in constraints.txt, for
# CPython 3.12 on x86-64 Linux (GPU_PYTHON_VERSION / GPU_PLATFORMS to change), into .whl/ (ignored).
# Run it where pip reaches PyPI; carry .whl/ with the repository.
#
#   bash scripts/gpu_wheels.sh [DEST]        # or: make wheels
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.whl}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
PYVER="${GPU_PYTHON_VERSION:-3.12}"
read -r -a PLATFORMS <<<"${GPU_PLATFORMS:-manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64}"

pin() {  # name -> name==version from constraints.txt (case-insensitive), else the bare name
    local line
    line="$(grep -i "^$1==" "$ROOT/constraints.txt" | head -n 1 || true)"
    echo "${line:-$1}"
}

# open_clip and its text cleaner; basicsr's own requirements the image lacks (addict, future,
# lmdb, yapf + platformdirs). basicsr's tb-nightly is not needed (tensorboard is in the image).
PACKAGES=()
for name in open_clip_torch ftfy wcwidth addict future yapf platformdirs lmdb; do
    PACKAGES+=("$(pin "$name")")
done
PLATFORM_ARGS=()
for p in "${PLATFORMS[@]}"; do PLATFORM_ARGS+=(--platform "$p"); done

mkdir -p "$DEST"
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$PYVER" --implementation cp "${PLATFORM_ARGS[@]}" -d "$DEST" "${PACKAGES[@]}"
# basicsr is published as a source archive only; its wheel is pure Python (no CUDA extensions built).
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$DEST" "$(pin basicsr)"
ls -la "$DEST"
du -sh "$DEST"
