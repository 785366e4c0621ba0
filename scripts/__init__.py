"""Launchers for the whole service (used by `make run`, the tests and the benchmarks)."""
