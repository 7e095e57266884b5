"""Magpie's benchmarks: ``python -m bench [name ...]`` (see :mod:`bench.__main__`)."""
