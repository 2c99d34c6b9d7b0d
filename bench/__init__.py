"""Benchmarks: scripts that measure Parley against a baseline in the same run and print Markdown tables.

``python -m bench.run_all`` (``make bench``) runs them all and rewrites ``docs/BENCHMARKS.md``; each one also runs
alone (``python -m bench.pipeline [--quick]``). See docs/BENCHMARKS.md for what each measures and why.
"""
