"""Running a sweep's tasks: in this process, or on Dask (a loopback LocalCluster or an existing scheduler).

Each Dask worker is its own process with one thread, so it holds its own
dataset and circuit simulator; the scheduler, workers and their HTTP
endpoints bind 127.0.0.1 (the dashboard is off unless asked for).
"""
from __future__ import annotations

import importlib.util
import logging
import time
from contextlib import contextmanager

from ..errors import ConfigError
from .point import run_point


def run_serial(tasks, references, on_row, stop) -> None:
    """Run the tasks one after another in this process."""
    for task in tasks:
        if stop():
            return
        on_row(run_point(task, references[task["reference"]]))


@contextmanager
def dask_client(workers: int, scheduler: str | None = None, dashboard: str | None = None):
    """A Client on ``scheduler``, else on a new LocalCluster of ``workers`` single-threaded processes."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as e:
            raise ConfigError(f"cannot connect to the Dask scheduler {scheduler!r} ({e})") from None
        try:
            yield client
        finally:
            client.close()
        return
    if workers < 1:
        raise ConfigError(f"workers must be >= 1 for a Dask cluster, got {workers}")
    if dashboard is not None:
        if importlib.util.find_spec("bokeh") is None:
            raise ConfigError("the Dask dashboard needs bokeh (pip install 'bokeh>=3.1'); omit --dashboard to run without")
        dash = {"dashboard_address": _loopback(dashboard)}
    else:  # the scheduler still serves health/metrics over HTTP: keep it on a free loopback port
        dash = {"dashboard_address": None, "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"}}
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           silence_logs=logging.ERROR, **dash)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def _loopback(address: str) -> str:
    """Dashboard address ``PORT`` or ``127.0.0.1:PORT``: only loopback is accepted."""
    host, _, port = str(address).rpartition(":")
    if host not in ("", "127.0.0.1", "localhost") or not port.isdigit():
        raise ConfigError(f"dashboard address {address!r}: give a port (e.g. 8787) or 127.0.0.1:PORT")
    return f"127.0.0.1:{port}"


def run_dask(client, tasks, references, on_row, stop) -> None:
    """Submit every task; hand rows to ``on_row`` as they finish; on ``stop()`` cancel what is left."""
    from distributed import as_completed

    refs = {k: client.scatter([v], broadcast=True)[0] for k, v in references.items()}
    futures = [client.submit(run_point, t, refs[t["reference"]], key=f"sweep-{t['key']}", pure=False)
               for t in tasks]
    done = as_completed(futures)
    try:
        while not done.is_empty():
            if stop():
                break
            if not done.has_ready():
                time.sleep(0.05)
                continue
            for fut in done.next_batch(block=False):
                on_row(fut.result())  # a task's exception is raised here
    finally:
        client.cancel(futures)
