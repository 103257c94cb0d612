"""Synthetic CELLxGENE H5AD files for tests, the example corpus and benchmarks."""
