#!/usr/bin/env bash
# make gpu-decide (issue 31): one run of about five minutes on a lent GPU (setup included) decides
# whether network_d.fast_path auto may become the default: gradient equality at real size first,
# then the A/B training, the D iteration eager beside auto, DDP and the CUDA tests. Prints one
# verdict line ("fast_path default: auto is SAFE" / "... NOT SAFE (reason)") and the D-iteration
# table; writes <out>/gpu-decide-<date>.{json,md}. docs/gpu-check.md says how to run it in one call.
#
#   bash scripts/gpu_decide.sh --out "$OUT"        # on the GPU machine (.whl/ carried: make wheels)
#   bash scripts/gpu_decide.sh --cpu --out /tmp/gd # the rehearsal: the same steps at tiny sizes
#
# Every option of scripts/gpu_check.sh applies (--budget, --steps, --cap STEP=SECONDS, ...).
set -euo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
fi
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/gpu_check.sh" --plan decide "$@"
