"""The Ray engine: the same per-batch functions as the local engine, on a pool of Ray actors.

Work known up front as small descriptors whose workers read their own input (labeling new
items: each chunk of the input file; embedding a project: each batch's row ranges, read with
the content-hash cache from the project's store) runs as a Ray Data pipeline, ``map_batches``
over an actor pool (:meth:`RayEngine.map_list`). Work the driver must feed (the graph's blocks,
each to the actor that holds its shard of the lists) goes to a pool of actors the engine runs
itself (:meth:`RayEngine.map`, :meth:`RayEngine.map_sharded`).

Each actor builds its worker once (a run's labeler with its index, an embedding model) and
takes batches round-robin; results come back in submission order with at most two batches
per actor in flight, so memory stays bounded and the caller writes each result as the local
engine does. The pool is kept smaller than the CPUs the cluster offers, leaving one for the
driver (on small nodes a pool as large as the node has hung: ray-project/ray issue 44687).
"""
from __future__ import annotations

import logging
import os
import pickle
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .._optional import require
from ..exceptions import InputError, MissingDependencyError

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
                self.ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            else:  # a local cluster of this machine's CPUs
                self.ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                              logging_level=logging.WARNING)
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
        work for it). Each item is submitted (its arguments serialized) before a result is handed
        back, as :meth:`Engine.map_sharded` promises."""
        ray, worker_class = self.ray, self._actor_class()
        actors: dict[int, Any] = {}
        inflight: deque[Any] = deque()
        try:
            for shard, item in items:
                if shard not in actors:
                    actors[shard] = worker_class.remote(make_worker, fn, shard_data[shard])
                inflight.append(actors[shard].run.remote(item))
                if len(inflight) > IN_FLIGHT_PER_ACTOR * self.workers:
                    yield ray.get(inflight.popleft())
            while inflight:
                yield ray.get(inflight.popleft())
        finally:
            for a in actors.values():
                ray.kill(a)

    def _cluster_gpus(self) -> float:
        return float(self.ray.cluster_resources().get("GPU", 0))

    def gpus_for(self, device: str) -> float:
        """One GPU per actor for ``cuda`` (and for ``auto`` where the cluster has GPUs): Ray sets
        each actor's visible GPU, so the model's ``cuda`` is that actor's own. The driver's
        machine need not have a GPU. ``cuda:N`` is refused: Ray, not the user, picks each actor's
        GPU, and inside an actor that GPU is the only one torch sees."""
        from ..embed import check_device

        device = check_device(device)
        if device == "cpu":
            return 0.0
        if device.startswith("cuda:"):
            raise InputError(f"--device {device} with --engine ray: Ray gives each embedding actor one GPU of its "
                             "own and picks which; use --device cuda (or auto).")
        if self._cluster_gpus() >= 1:
            return 1.0
        if device == "auto":
            return 0.0
        raise InputError(f"--device {device} with --engine ray: the Ray cluster offers no GPU; use --device cpu or "
                         "auto, or add nodes with GPUs to the cluster.")

    def map_list(self, make_worker: Callable[[], Any], fn: Callable[[Any, Any], Any],
                 items: Sequence[Any], gpus: float = 0.0) -> Iterator[Any]:
        """A Ray Data pipeline: the items (pickled) as a data set of one row per block,
        ``map_batches`` over an actor pool of :attr:`workers` actors (one CPU each, and `gpus`
        GPUs each: then at most as many actors as the cluster's GPUs allow, since more would wait
        for ever), each building its worker once and running ``fn`` on one item per batch;
        results come back in item order."""
        if not items:
            return
        data = require("ray.data", "ray")
        size = self.workers
        if gpus:
            size = max(1, min(size, int(self._cluster_gpus() // gpus)))
        with _quiet_ordered(data):
            ds = data.from_items([{"item": pickle.dumps(item)} for item in items], override_num_blocks=len(items))
            ds = _map_batches(ds, data.ActorPoolStrategy(size=size), make_worker, fn, gpus)
            for row in ds.iter_rows():
                got = pickle.loads(row["result"])
                if isinstance(got, _BadInput):
                    raise InputError(got.message)
                yield got


def _map_batches(ds: Any, compute: Any, make_worker: Callable[[], Any], fn: Callable[[Any, Any], Any],
                 gpus: float = 0.0) -> Any:
    """``map_batches`` of :class:`_DataWorker`, one item per batch, one CPU (and `gpus` GPUs) per actor. The actors
    are not restarted: a job whose actor died fails and resumes as after a kill, and Ray then
    need not keep the constructor arguments for a restart (with restarts it logs an error line
    about them on the driver's stderr at every start). Ray 2.60 takes ``max_restarts`` among
    the deprecated free-form remote arguments; where a later Ray refuses it, restarts stay on."""
    import warnings

    kwargs = dict(fn_constructor_args=(make_worker, fn), batch_size=1, compute=compute, num_cpus=1)
    if gpus:
        kwargs["num_gpus"] = gpus
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation of free-form remote arguments
        try:
            return ds.map_batches(_DataWorker, max_restarts=0, **kwargs)
        except TypeError:
            return ds.map_batches(_DataWorker, **kwargs)


@dataclass(frozen=True)
class _BadInput:
    """A worker's :class:`~labelseed.exceptions.InputError`, sent back as a result: Ray Data wraps
    what a worker raises in exceptions that keep only its traceback's text."""

    message: str


class _DataWorker:
    """A Ray Data actor: builds its worker once; each row of a batch holds one pickled item."""

    def __init__(self, make_worker: Callable[[], Any], fn: Callable[[Any, Any], Any]) -> None:
        self.fn, self.missing = fn, None
        try:
            self.worker = make_worker()
        except MissingDependencyError as exc:  # an extra this node lacks: said per batch, below
            self.worker, self.missing = None, exc

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = []
        for b in batch["item"]:
            try:
                if self.missing is not None:
                    raise self.missing
                got = self.fn(self.worker, pickle.loads(b))
            except InputError as exc:  # bad input: one line on the driver, not a retried crash
                got = _BadInput(str(exc))
            except MissingDependencyError as exc:  # a worker node without the extra the step needs
                got = _BadInput(f"on a Ray worker: {exc}")
            out.append(pickle.dumps(got))
        return {"result": np.asarray(out, dtype=object)}


@contextmanager
def _quiet_ordered(data: Any) -> Iterator[None]:
    """Ray Data in item order, without its progress bars and log lines (the CLI renders its own
    progress, and an error raised by a worker is raised here); the settings are put back after."""
    ctx = data.DataContext.get_current()
    opts = ctx.execution_options
    before = (opts.preserve_order, ctx.enable_progress_bars)
    logger = logging.getLogger("ray.data")
    level = logger.level
    opts.preserve_order, ctx.enable_progress_bars = True, False
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        opts.preserve_order, ctx.enable_progress_bars = before
        logger.setLevel(level)
