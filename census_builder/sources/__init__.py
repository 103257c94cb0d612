"""Inputs: the manifest, staging of each source H5AD, and the chunked H5AD reader."""
