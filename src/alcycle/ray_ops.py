"""Ray behind one small module: joining a cluster, batch inference over the pool with Ray Data,
and running functions as Ray tasks across the cluster's nodes.

Imported only where a cluster is named (``compute.ray_address`` or ``RAY_ADDRESS``): the
one-machine path never imports Ray. Workers read the project's files at the paths the driver
gives them, so every node must see the project folder at the same path (shared storage, or a
checkout with the DVC-pulled data at that path; docs/scaling.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np


class BatchWork(Protocol):
    """A picklable callable: ``work(start)`` gives the outputs of rows ``start`` to ``start +
    batch_size`` as arrays of those rows; it loads what it needs (a model) on its first call,
    in the worker."""

    def __call__(self, start: int) -> dict[str, np.ndarray]: ...


@contextmanager
def connected(address: str) -> Iterator[None]:
    """Joined to the Ray cluster at ``address`` for the block (a connection already open is kept)."""
    import ray

    if ray.is_initialized():
        yield
        return
    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    _quiet_data()
    try:
        yield
    finally:
        ray.shutdown()


def _quiet_data() -> None:
    """No progress bars or per-operator logging from Ray Data: the stages print their own progress."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


class _Worker:
    """One Ray Data actor: runs ``work`` for each batch start it is given."""

    def __init__(self, work: BatchWork) -> None:
        self.work = work

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [self.work(int(start)) for start in batch["start"]]
        return {name: np.concatenate([r[name] for r in results]) for name in results[0]}


def map_batches(address: str, rows: int, batch_size: int, work: BatchWork) -> Iterator[dict[str, np.ndarray]]:
    """``work(start)`` for start = 0, batch_size, 2·batch_size, … < ``rows``, as Ray Data batch
    inference on the cluster at ``address``: one actor per CPU of the cluster, each loading
    its model once. Yields the results as they arrive, in no set order; each holds ``row``
    (the rows it covers) beside the work's own arrays. The batch boundaries are the local
    loop's, so each batch computes exactly what the local loop computes for it.
    """
    import ray
    import ray.data

    with connected(address):
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        starts = ray.data.from_items([{"start": start} for start in range(0, rows, batch_size)])
        outputs = starts.map_batches(_Worker, fn_constructor_args=(_WithRows(work, batch_size, rows),),
                                     batch_size=1, num_cpus=1,
                                     compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers))
        yield from outputs.iter_batches(batch_size=None, batch_format="numpy")


class _WithRows:
    """``work``'s outputs with ``row``: the rows of the batch."""

    def __init__(self, work: BatchWork, batch_size: int, rows: int) -> None:
        self.work, self.batch_size, self.rows = work, batch_size, rows

    def __call__(self, start: int) -> dict[str, np.ndarray]:
        return {"row": np.arange(start, min(start + self.batch_size, self.rows)), **self.work(start)}


def run_tasks(address: str, calls: Sequence[tuple[Callable[..., Any], tuple]], retries: int = 3,
              on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``function(*arguments)`` of each call as a Ray task (one CPU each) on the cluster at ``address``.

    Tasks spread over the cluster's nodes as CPUs free up; a task whose worker or node dies is
    run again, up to ``retries`` times, on a node still there. ``on_result(i, result)`` sees
    each call's result as it finishes. Returns the results in the order of ``calls``.
    """
    import ray

    with connected(address):
        remote = {}
        pending = {}
        for i, (function, arguments) in enumerate(calls):
            if function not in remote:
                remote[function] = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False)(function)
            pending[remote[function].remote(*arguments)] = i
        results: list[Any] = [None] * len(calls)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(done[0])
            results[i] = ray.get(done[0])
            if on_result is not None:
                on_result(i, results[i])
        return results
