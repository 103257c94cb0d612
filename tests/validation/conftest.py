"""Fixtures for the validator's tests: one small dask cluster shared by the whole session."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def validation_client() -> Iterator[Any]:
    """A one-worker local cluster (spawned processes, one thread each), reused by every validation here."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn", "distributed.worker.daemon": False}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True,  # type: ignore[no-untyped-call]
                         dashboard_address=":0", silence_logs=logging.WARNING) as cluster, \
            Client(cluster) as client:  # type: ignore[no-untyped-call]
        yield client
