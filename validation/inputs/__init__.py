"""What the validator reads: the manifest, the source H5ADs (h5py, a slice at a time), the release (tiledbsoma).

Reading only: no Census rule is applied here (that is validation.expected).
"""
