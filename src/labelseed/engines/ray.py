"""The Ray engine: the same per-batch functions as the local engine, on a pool of Ray actors.

Each actor builds its worker once (a run's labeler with its index, an embedding model) and
takes batches round-robin; results come back in submission order with at most two batches
per actor in flight, so memory stays bounded and the caller writes each result as the local
engine does. The pool is kept smaller than the CPUs the cluster offers, leaving one for the
driver (on small nodes a pool as large as the node has hung: ray-project/ray issue 44687).
"""
from __future__ import annotations

import logging
import os
from collections import deque
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Sequence

from .._optional import require

log = logging.getLogger(__name__)

#: Batches in flight per actor: one running, one queued behind it.
IN_FLIGHT_PER_ACTOR = 2


class RayEngine:
    """A pool of `workers` actors (default: the cluster's CPUs minus one, at least one; at most
    as many as the cluster has CPUs). The driver only reads inputs and writes results, so it
    needs no CPU reserved for Ray tasks of its own; the default still leaves it one."""

    name = "ray"

    def __init__(self, workers: int | None = None) -> None:
        self.ray = require("ray", "ray")
        if not self.ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            if address:
                self.ray.init(address=address, log_to_driver=False)
            else:  # a local cluster of this machine's CPUs
                self.ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        cpus = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        if workers is None:
            self.workers = max(1, cpus - 1)
        else:  # as asked, but never more actors than CPUs: the extra ones would wait forever
            self.workers = min(workers, cpus)
            if workers > cpus:
                log.warning("--workers %d: the cluster offers %d CPUs; using %d actors", workers, cpus, cpus)

    @property
    def shards(self) -> int:
        """One shard of the data per actor (:meth:`map_sharded`)."""
        return self.workers

    def _actor_class(self) -> Any:
        @self.ray.remote(num_cpus=1)
        class _Worker:
            def __init__(self, make: Callable[..., Any], run: Callable[[Any, Any], Any], *args: Any) -> None:
                self.worker, self.run_fn = make(*args), run

            def run(self, item: Any) -> Any:
                return self.run_fn(self.worker, item)

        return _Worker

    def map(self, make_worker: Callable[[], Any], fn: Callable[[Any, Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """Batches round-robin over the pool, each actor holding a worker of its own."""
        from . import unsharded

        return self.map_sharded(partial(unsharded, make_worker), [None] * self.workers, fn,
                                ((k % self.workers, item) for k, item in enumerate(items)))

    def map_sharded(self, make_worker: Callable[[Any], Any], shard_data: Sequence[Any], fn: Callable[[Any, Any], Any],
                    items: Iterable[tuple[int, Any]]) -> Iterator[Any]:
        """Each shard's batches go to the one actor that holds that shard (started only when there is
        work for it)."""
        ray, worker_class = self.ray, self._actor_class()
        actors: dict[int, Any] = {}
        inflight: deque[Any] = deque()
        try:
            for shard, item in items:
                if shard not in actors:
                    actors[shard] = worker_class.remote(make_worker, fn, shard_data[shard])
                if len(inflight) >= IN_FLIGHT_PER_ACTOR * self.workers:
                    yield ray.get(inflight.popleft())
                inflight.append(actors[shard].run.remote(item))
            while inflight:
                yield ray.get(inflight.popleft())
        finally:
            for a in actors.values():
                ray.kill(a)
