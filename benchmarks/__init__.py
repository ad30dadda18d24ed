"""Benchmarks behind the tables that README.md and docs/ publish.

Not installed with labelsplat. Run each script from the repository root as a module, e.g.
``python -m benchmarks.refine_quality --help``; every script writes one JSON file under
``benchmarks/results/`` with the machine, the versions and the settings it ran with.
"""
