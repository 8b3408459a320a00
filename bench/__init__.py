"""realtalk's benchmarks: each figure against a baseline measured in the same run.

Run them all with ``.venv/bin/python -m bench`` (``--quick`` for a CI smoke run, names to pick a
subset); the figures and how to read them are in ``docs/benchmarks.md``.
"""
