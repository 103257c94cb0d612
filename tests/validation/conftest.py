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

    # The settings apply while the workers start; outside this block they would stay set for every later test.
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn", "distributed.worker.daemon": False}):
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.WARNING
        )
    with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
        yield client
