"""The dask cluster a validation runs on: the caller's client, or a local cluster of spawned processes.

Built from census_builder.runtime.cluster's pieces (the worker malloc environment, TileDB's threads shared
among the workers, the worker count from the CPU quota, SIGINT left to the driver).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from census_builder.runtime.cluster import WORKER_MALLOC_ENV, available_cpus, sigint_ignored, tiledb_thread_env

logger = logging.getLogger(__name__)

# Workers log no state-machine chatter (a validation cancelled on Ctrl-C would print a line per task).
WORKER_LOGGING = {"DASK_LOGGING": "{'distributed.worker.state_machine': 'error'}"}


@contextmanager
def dask_cluster(client: Any, workers: int | None, scratch: Path | None = None) -> Iterator[Any]:
    """Yield ``client``, or a local cluster of ``workers`` processes (default: the CPUs this process may use).

    The local cluster's scratch space is ``scratch`` (not the system temp directory). Workers are spawned,
    not forked: TileDB's threads do not survive a fork.
    """
    if client is not None:
        yield client
        return
    import dask
    from distributed import Client, LocalCluster

    cpus = available_cpus()
    n = workers or cpus
    logger.info("starting a local dask cluster: %d worker process(es)", n)
    environ = {
        **dask.config.get("distributed.nanny.pre-spawn-environ", {}),
        **WORKER_MALLOC_ENV,
        **WORKER_LOGGING,
        **tiledb_thread_env(n, cpus),
    }
    config = {
        "distributed.worker.multiprocessing-method": "spawn",
        "distributed.worker.daemon": False,
        "distributed.nanny.pre-spawn-environ": environ,
    }
    if scratch is not None:
        config["temporary-directory"] = str(scratch)
    with dask.config.set(config):
        with sigint_ignored():
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,  # type: ignore[no-untyped-call]
                dashboard_address=":0",
                silence_logs=logging.WARNING,
            )
        with cluster, Client(cluster) as c:  # type: ignore[no-untyped-call]
            yield c
