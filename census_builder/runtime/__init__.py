"""Infrastructure that computes no Census value: dask client and task runner, progress, faults."""
