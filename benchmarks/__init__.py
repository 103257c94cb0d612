"""Benchmarks of the build and of consumer reads (``python -m benchmarks.run``, ``.read``, ``.floor``...).

Each module measures one thing on synthetic corpora; results go to benchmarks/results/ and RESULTS.md.
"""
