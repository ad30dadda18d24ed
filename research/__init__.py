"""Studies of the label-quality questions (not installed, not part of the default test run).

Run each study from the repository root as ``python -m research.<name>``; see research/README.md.
"""
