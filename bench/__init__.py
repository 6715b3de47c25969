"""Benchmark harness of the model registry: ``python -m bench`` (see ``bench/README.md``).

Every figure is measured next to a baseline taken in the same run and reported as a ratio,
because the machines it runs on are shared and noisy.
"""
