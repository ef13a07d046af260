"""The GPU check (issue 18): every CUDA path and GPU number in one budgeted run (scripts/gpu_check.sh)."""
