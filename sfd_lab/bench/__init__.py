"""Benchmarks: timing/memory core plus one module per comparison (repository only, see sfd_lab)."""
