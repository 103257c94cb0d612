"""Step 3, check_contents (validation.contents.step): obs and X against the sources, in dask tasks.

Cell sets per dataset, row-chunk tasks (fast path), and the general path's fingerprints, release scan and detail.
"""
