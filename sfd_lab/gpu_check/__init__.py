"""The GPU check: every CUDA path and GPU number in one budgeted run (scripts/gpu_check.sh)."""
