"""Infrastructure that computes no Census value: dask cluster, task runner, TileDB settings, S3, progress.

The one part of census_builder that validation may import; it imports nothing outside runtime/ (faults too).
"""
