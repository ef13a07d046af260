"""Benchmarks and learning checks: timing/memory core plus one module per comparison."""
