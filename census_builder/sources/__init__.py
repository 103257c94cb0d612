"""Inputs: the manifest, staging of each source H5AD (local copy, hard link or S3 download), the staged set.

And the chunked H5AD reader; what a valid count is and which cells and genes count are Census rules (census/).
"""
