"""Where per-batch work runs: in this process (``local``) or on a Ray cluster (``ray``).

Both engines run the *same* per-batch functions (``ops._label_item`` for new items,
``project._embed_batch`` for a project's embedding, the graph's block search), so there is no second code path: an engine
only decides where a worker lives and where each batch goes. A worker is built once per
process that holds it (a run's labeler and its index; an embedding model), then fed batches
in order; results come back in the order the batches went in, with a bounded number in
flight, so the caller writes them (part files, the embeddings file) exactly as the local
engine does and a killed job resumes the same way. Work over data split into shards (the IVF
lists of a kNN graph: :meth:`Engine.map_sharded`) sends each shard's data to one worker only,
and each batch to the worker that holds its shard.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence, TypeVar

from ..exceptions import InputError

ENGINES = ("local", "ray")

W = TypeVar("W")
T = TypeVar("T")
R = TypeVar("R")


class Engine(Protocol):
    name: str

    @property
    def shards(self) -> int:
        """Workers that each hold a part of the data (the IVF lists of a kNN graph): 1 in this process."""
        ...

    def map(self, make_worker: Callable[[], Any], fn: Callable[[Any, Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``fn(worker, item)`` for every item, in order; `make_worker` builds a worker where it runs."""
        ...

    def map_sharded(self, make_worker: Callable[[Any], Any], shard_data: Sequence[Any], fn: Callable[[Any, Any], Any],
                    items: Iterable[tuple[int, Any]]) -> Iterator[Any]:
        """``fn(worker of shard s, item)`` for every ``(s, item)``, in order; shard s's worker is
        ``make_worker(shard_data[s])``, built once where it runs (only that shard's data goes there).
        An item is taken in (run, or sent) before the next result is handed back, so the caller may
        reuse an item's buffer once it holds a result (the graph reads every block into one)."""
        ...

    def map_list(self, make_worker: Callable[[], Any], fn: Callable[[Any, Any], Any],
                 items: Sequence[Any], gpus: float = 0.0) -> Iterator[Any]:
        """:meth:`map` over small items known up front (descriptors of the work, whose worker reads
        its own input): on Ray a Ray Data pipeline, ``map_batches`` over an actor pool whose
        actors each hold `gpus` GPUs (an embedding model on a GPU); here `gpus` changes nothing."""
        ...

    def gpus_for(self, device: str) -> float:
        """GPUs each worker holds to run a torch model on `device` (:data:`labelseed.embed.DEVICES`),
        or one line saying why that device cannot run here."""
        ...


class LocalEngine:
    """Every batch in this process, one after the other."""

    name = "local"
    shards = 1

    def map(self, make_worker: Callable[[], W], fn: Callable[[W, T], R], items: Iterable[T]) -> Iterator[R]:
        return self.map_sharded(partial(unsharded, make_worker), [None], fn, ((0, item) for item in items))

    def map_list(self, make_worker: Callable[[], W], fn: Callable[[W, T], R], items: Sequence[T],
                 gpus: float = 0.0) -> Iterator[R]:
        return self.map(make_worker, fn, items)

    def gpus_for(self, device: str) -> float:
        from ..embed import resolve_device

        resolve_device(device)  # a GPU this machine lacks is bad input before any model loads
        return 0.0

    def map_sharded(self, make_worker: Callable[[Any], W], shard_data: Sequence[Any], fn: Callable[[W, T], R],
                    items: Iterable[tuple[int, T]]) -> Iterator[R]:
        workers: dict[int, W] = {}
        for shard, item in items:
            if shard not in workers:  # built only when there is work (a resumed job may have none)
                workers[shard] = make_worker(shard_data[shard])
            yield fn(workers[shard], item)


def unsharded(make_worker: Callable[[], W], _data: Any) -> W:
    """A worker that needs no shard of data: :meth:`Engine.map` as :meth:`Engine.map_sharded`."""
    return make_worker()


def get_engine(name: str = "local", *, workers: int | None = None) -> Engine:
    """The engine called `name`: ``"local"`` or ``"ray"`` (connects to ``RAY_ADDRESS`` or
    starts a local cluster; needs ``pip install 'labelseed[ray]'``)."""
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1; got {workers}.")
    if name == "local":
        return LocalEngine()
    if name == "ray":
        from .ray import RayEngine

        return RayEngine(workers=workers)
    raise InputError(f"--engine must be one of {', '.join(ENGINES)}; got {name!r}.")
