"""Comparison helpers the steps share: sorted entries and their alignment, exact and toleranced value checks,
fingerprints, matching the release's numbering to the sources; findings go to a task's capped lists.
"""
