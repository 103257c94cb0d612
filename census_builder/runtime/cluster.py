"""The dask.distributed client a build runs on: a local cluster by default, or an existing scheduler."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


# glibc maps every block over 32 MiB afresh and a dask task thread gets its own malloc arena, so each
# chunk's arrays would be page-faulted in anew (dask even trims at 64 KiB); page faults cost ~25 us each
# on the 2-core benchmark machine. One arena that keeps what it freed for the next chunk: the trim
# threshold is above a chunk's working set (at 512 MiB a 4 M-value validation chunk sometimes crossed it
# and re-faulted everything: 0.27 M vs 2.7 M faults per run), and retaining freed memory never raises the
# peak, which the largest chunk bounds. Set the same variables on workers you start yourself (README).
WORKER_MALLOC_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": str(256 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(2 * 2**30),
}


def available_cpus(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota (containers)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with open(os.path.join(cgroup_root, "cpu.max"), encoding="ascii") as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        return max(1, n)
    if quota != "max" and int(period) > 0:
        n = min(n, max(1, int(quota) // int(period)))
    return max(1, n)


def tiledb_thread_env(n_workers: int, cpus: int | None = None) -> dict[str, str]:
    """Return the worker environment that makes TileDB's thread pools share the CPUs among the workers.

    Instead of each sizing itself to all of them (2 workers on 2 cores: 24.3 -> 23.0 s, 5% less CPU, at
    250 k cells in the validation).
    """
    threads = str(max(1, (cpus or available_cpus()) // max(1, n_workers)))
    return {"TILEDB_SM_COMPUTE_CONCURRENCY_LEVEL": threads, "TILEDB_SM_IO_CONCURRENCY_LEVEL": threads}


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while processes are started in here (they inherit it).

    A Ctrl-C then interrupts this process only, which stops the cluster, instead of every worker printing
    its own traceback.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def dask_client(
    *, workers: int | None = None, scheduler: str | None = None, memory_limit: str | None = None
) -> Iterator[Any]:
    """Yield a ``distributed.Client``.

    Local workers are separate spawned processes, one thread each (TileDB's threads do not survive a fork).
    """
    import dask
    from distributed import Client, LocalCluster

    settings = dask.config.set(  # only for this client's lifetime: nothing leaks into the caller's dask
        {
            "distributed.worker.multiprocessing-method": "spawn",
            "distributed.scheduler.allowed-failures": 2,
            "distributed.nanny.pre-spawn-environ": {
                **dask.config.get("distributed.nanny.pre-spawn-environ", {}),
                **WORKER_MALLOC_ENV,
            },
        }
    )
    with settings:
        for name in list(logging.root.manager.loggerDict):
            if name.split(".")[0] in ("distributed", "dask"):
                logging.getLogger(name).setLevel(logging.WARNING)
        if scheduler:
            logger.info("connecting to dask scheduler %s", scheduler)
            with Client(scheduler) as client:  # type: ignore[no-untyped-call]
                yield client
            return
        n = workers or available_cpus()
        logger.info("starting a local dask cluster: %d worker process(es)", n)
        with (
            LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never collide with another cluster
                memory_limit=memory_limit or "auto",
                silence_logs=logging.WARNING,
                preload=["census_builder.runtime.worker_setup"],  # workers leave Ctrl-C to the driver
            ) as cluster,
            Client(cluster) as client,  # type: ignore[no-untyped-call]
        ):
            try:
                yield client
            except KeyboardInterrupt:
                quiet_dask_logs()  # closing the cluster under a signal: what dask says about it is expected
                raise


DASK_LOGGERS = ("distributed", "dask", "tornado", "asyncio")


def quiet_dask_logs(level: int = logging.CRITICAL) -> None:
    """Silence dask's loggers once a run is interrupted (Ctrl-C, SIGTERM).

    What they report then is about the shutdown: workers the signal stopped too, cancelled tasks, lost
    connections, workers killed after the close timeout, distributed's cancel of an interrupted wait.
    Nothing the build does is logged by these loggers; its own errors propagate as exceptions.
    """
    for name in [*DASK_LOGGERS, *logging.root.manager.loggerDict]:
        if name.split(".")[0] in DASK_LOGGERS:
            logging.getLogger(name).setLevel(level)


def quiet_shutdown(client: Any) -> None:
    """Quiet dask in the driver and in the workers (they write to the same terminal).

    Called before an interrupted run cancels its tasks and closes the cluster.
    """
    quiet_dask_logs()
    try:
        client.run(quiet_dask_logs, callback_timeout=2, on_error="return")
    except Exception as e:  # workers already gone, or busy: their warnings are harmless, say nothing more
        logger.debug("could not quiet the workers' logs: %s", e)


@dataclass(frozen=True)
class TaskCall:
    """One task for the cluster: ``fn(*args)``; higher ``priority`` runs first."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    priority: int = 0


def run_calls(client: Any, calls: Sequence[TaskCall], on_done: Callable[[int, Any, Exception | None], None]) -> None:
    """Run ``calls`` on the cluster; ``on_done(i, result, error)`` for each as it completes (completion order).

    ``error`` is the exception the task raised (``result`` is then None). Each future is released once handled,
    so results stream through the driver instead of piling up on the workers. If anything raises here (an
    ``on_done`` included, or Ctrl-C), the remaining tasks are cancelled and the exception propagates; on
    Ctrl-C dask's shutdown chatter is quieted first.
    """
    from distributed import as_completed

    if not calls:
        return
    futures = [client.submit(c.fn, *c.args, pure=False, priority=c.priority) for c in calls]
    index = {f.key: i for i, f in enumerate(futures)}
    try:
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]
            try:
                res, err = fut.result(), None
            except Exception as e:
                res, err = None, e
            fut.release()
            on_done(index[fut.key], res, err)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            quiet_shutdown(client)
        client.cancel(futures)
        raise


def run_tasks(
    client: Any, fn: Callable[[T], R], items: Sequence[T], *, on_result: Callable[[T, R], None] | None = None
) -> list[R]:
    """Run ``fn`` over ``items`` on the cluster, calling ``on_result`` as each finishes (in completion order).

    A task's exception is re-raised in the driver after cancelling the rest. Results are returned in
    ``items`` order.
    """
    results: list[Any] = [None] * len(items)

    def done(i: int, res: Any, err: Exception | None) -> None:
        if err is not None:
            raise err
        results[i] = res
        if on_result is not None:
            on_result(items[i], res)

    run_calls(client, [TaskCall(fn, (it,)) for it in items], done)
    return results
