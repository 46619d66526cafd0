"""Benchmark suite for balance_api: ``python -m bench`` (see bench/README.md)."""
