"""Comparison helpers the steps share: sorted entries and their alignment, exact and toleranced comparisons.

Also fingerprints and the matching of the release's numbering to the sources; findings go to a task's lists.
"""
