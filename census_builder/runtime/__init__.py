"""Infrastructure that computes no Census value: dask cluster and task runner, TileDB settings, S3 client,
progress, faults. The one part of census_builder that validation may import; it imports nothing outside runtime/.
"""
