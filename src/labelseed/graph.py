"""The kNN graph: cosine similarity on L2-normalised float32 vectors.

Exact (blocked matrix products) up to ``exact_max_rows`` rows, approximate
above it with a faiss IVF index (chosen by measurement against hnswlib, usearch,
pynndescent and faiss HNSW: ``bench/ann_choice.py``, ``bench/README.md``). The graph is built once per
data set and reused by everything downstream: cross-validation folds,
thresholds and the final labeling.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import time
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from functools import partial
from typing import Any, Callable, Iterator, Literal, Sequence, overload

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from ._validation import check_int
from .engines import Engine, LocalEngine
from .exceptions import InputError

log = logging.getLogger(__name__)

#: Progress callback: (stage, done, total).
Progress = Callable[[str, int, int], None]

#: Bumped when the graph algorithm changes, so cached graphs are rebuilt.
GRAPH_FORMAT = 3

#: Up to this many rows the graph is exact; above, IVF (see bench/README.md).
EXACT_MAX_ROWS = 5_000
#: Neighbours per row: the one default of every entry point (10 gave the best coverage, bench/README.md).
N_NEIGHBORS = 10

GraphMethod = Literal["auto", "exact", "ivf"]


@dataclass(frozen=True)
class KnnGraph:
    """Each row's nearest neighbours by cosine similarity (itself excluded).

    Attributes
    ----------
    indices : ndarray of shape (n_rows, n_neighbors), int64
        Neighbour row numbers, most similar first; -1 where a row has fewer neighbours.
    similarities : ndarray of shape (n_rows, n_neighbors), float32
        Cosine similarities matching `indices` (0 where the index is -1).
    method : str
        ``"exact"`` or ``"ivf"``.
    recall_estimate : float
        Recall@k against exact neighbours, measured on a sample of rows (1.0 when exact).
    nprobe : int or None
        IVF lists probed per row (None when exact).
    """

    indices: NDArray[np.int64]
    similarities: NDArray[np.float32]
    method: str
    recall_estimate: float = 1.0
    nprobe: int | None = None
    #: the IVF index the graph was searched with (not part of the saved graph; saved beside it)
    index: "PoolIndex | None" = field(default=None, compare=False, repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.indices.shape[0])

    @property
    def n_neighbors(self) -> int:
        return int(self.indices.shape[1])

    def save(self, path: str | Path) -> None:
        """Write the graph to `path` (.npz) atomically: a temporary file renamed into place; its
        index, if any, beside it (``.faiss``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.index is not None:
            self.index.save(path.with_suffix(".faiss"))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, indices=self.indices.astype(np.int32 if self.n_rows < 2**31 else np.int64),
                         similarities=self.similarities, method=np.array(self.method),
                         recall_estimate=np.array(self.recall_estimate),
                         nprobe=np.array(-1 if self.nprobe is None else self.nprobe),
                         index_kind=np.array("" if self.index is None else self.index.kind),
                         k_factor=np.array(1 if self.index is None else self.index.k_factor))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | Path) -> "KnnGraph":
        """Read a graph written by :meth:`save` (with its index when that was saved and reads)."""
        path = Path(path)
        with np.load(path, allow_pickle=False) as z:
            nprobe = int(z["nprobe"])
            kind = str(z["index_kind"]) if "index_kind" in z.files else ""
            k_factor = int(z["k_factor"]) if "k_factor" in z.files else 1
            index = None
            if kind and path.with_suffix(".faiss").exists():
                try:
                    index = PoolIndex.load(path.with_suffix(".faiss"), kind, None if nprobe < 0 else nprobe, k_factor)
                except RuntimeError as exc:  # a damaged index is rebuilt by whoever needs it
                    log.warning("ignoring unreadable index %s: %s", path.with_suffix(".faiss"), exc)
            return cls(indices=z["indices"].astype(np.int64), similarities=z["similarities"],
                       method=str(z["method"]), recall_estimate=float(z["recall_estimate"]),
                       nprobe=None if nprobe < 0 else nprobe, index=index)

    def affinity(self, weighting: Literal["cosine", "connectivity"] = "cosine") -> sparse.csr_matrix:
        """Symmetric sparse affinity W (CSR, float32), memory O(n * k).

        An edge exists where either row is among the other's neighbours
        (``W = max(A, A.T)``); its weight is the cosine similarity clipped at 0,
        or 1 with ``weighting="connectivity"``. The diagonal is zero.
        """
        n, k = self.indices.shape
        if weighting == "cosine":
            vals = np.clip(self.similarities, 0.0, None).astype(np.float32, copy=False)
        elif weighting == "connectivity":
            vals = np.ones((n, k), dtype=np.float32)
        else:
            raise InputError(f"`weighting` must be 'cosine' or 'connectivity'; got {weighting!r}.")
        keep = (self.indices >= 0) & (vals > 0) & (self.indices != np.arange(n)[:, None])  # no self-loops
        # rows arrive in order, so CSR is built directly (no COO sort, no setdiag on a missing diagonal)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.count_nonzero(keep, axis=1), out=indptr[1:])
        A = sparse.csr_matrix((vals[keep], self.indices[keep], indptr), shape=(n, n))
        A.sort_indices()
        W = A.maximum(A.T).tocsr()
        W.eliminate_zeros()
        return W


def _inverse_norms(X: NDArray[np.float32], name: str = "X") -> NDArray[np.float32]:
    """1 / (L2 norm) of each row (float32); a zero row is an input error."""
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))  # no n x d temporary
    big = np.flatnonzero(~np.isfinite(norms))
    if len(big):  # values near 1e19 and above overflow a float32 sum of squares: those rows in float64
        norms[big] = np.linalg.norm(np.asarray(X[big], dtype=np.float64), axis=1)
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        shown = ", ".join(str(r) for r in zero[:5])
        raise InputError(
            f"`{name}` has {len(zero)} all-zero row(s) (rows {shown}); a zero vector has no direction "
            "for cosine similarity: remove or re-embed them."
        )
    return (1.0 / norms).astype(np.float32)  # one division per row, not per value


def normalize_rows(X: NDArray[np.float32], name: str = "X") -> NDArray[np.float32]:
    """L2-normalise rows (float32, a new array); zero rows are an input error."""
    return np.multiply(X, _inverse_norms(X, name)[:, None], dtype=np.float32)


class _UnitRows:
    """The rows of `X` scaled to unit length on demand, a block at a time, so the IVF
    path never holds a normalised n x d copy (1.5 GB at 1M x 384)."""

    def __init__(self, X: NDArray[np.float32], normalized: bool) -> None:
        self.X = X
        self.scale = None if normalized else _inverse_norms(X)
        self._buf = np.empty((0, X.shape[1]), dtype=np.float32)  # grows to the largest span asked for

    def take(self, rows: NDArray[np.int64]) -> NDArray[np.float32]:
        """A new array of the given rows, unit length."""
        out = np.ascontiguousarray(self.X[rows], dtype=np.float32)
        if self.scale is not None:
            out *= self.scale[rows, None]
        return out

    def span(self, start: int, stop: int) -> NDArray[np.float32]:
        """Rows ``start:stop``, unit length; valid until the next call."""
        if self.scale is None:
            return np.ascontiguousarray(self.X[start:stop], dtype=np.float32)
        if len(self._buf) < stop - start:
            self._buf = np.empty((stop - start, self.X.shape[1]), dtype=np.float32)
        out = self._buf[: stop - start]
        np.multiply(self.X[start:stop], self.scale[start:stop, None], out=out)
        return out


#: Column chunks whose maxima bound each row's k-th largest value in :func:`_top_k_rows`.
TOPK_CHUNKS = 256


def _top_k_rows(S: NDArray[np.float32], k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The `k` largest values of each row of `S` (shape (m, n), k <= n) and their columns,
    largest first (equal values: the lower column first).

    numpy's ``argpartition`` costs 15-30 ns per entry here, most of a small exact search. Instead
    the k-th largest of the maxima of :data:`TOPK_CHUNKS` column chunks bounds each row's k-th
    largest value from below (they are k distinct entries), and only the entries at or above that
    bound, a few times k per row, are sorted."""
    m, n = S.shape
    width = -(-n // TOPK_CHUNKS)
    full = n // width
    if full < k or k <= 0:  # too few chunks to bound the k-th value: select directly
        part = np.argpartition(-S, k - 1, axis=1)[:, :k] if 0 < k < n else np.tile(np.arange(n), (m, 1))[:, :k]
        vals = np.take_along_axis(S, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        return np.take_along_axis(part, order, axis=1).astype(np.int64), np.take_along_axis(vals, order, axis=1)
    chunk_max = S[:, : full * width].reshape(m, full, width).max(axis=2)
    if full * width < n:
        chunk_max = np.concatenate([chunk_max, S[:, full * width :].max(axis=1, keepdims=True)], axis=1)
    bound = -np.partition(-chunk_max, k - 1, axis=1)[:, k - 1]
    rows, cols = np.nonzero(S >= bound[:, None])
    vals = S[rows, cols]
    order = np.lexsort((cols, -vals, rows))  # by row, then largest first, then lower column
    first = np.searchsorted(rows[order], np.arange(m))
    take = order[first[:, None] + np.arange(k)]  # every row has at least k entries at its bound
    return cols[take].astype(np.int64), vals[take]


def _topk_exact(
    Q: NDArray[np.float32],
    X: NDArray[np.float32],
    k: int,
    block_rows: int,
    progress: Progress | None,
    self_rows: NDArray[np.int64] | None = None,
    col_scale: NDArray[np.float32] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Exact top-k by blocked matrix products; query i never returns row ``self_rows[i]``.

    With `col_scale`, similarities to row j of `X` are multiplied by ``col_scale[j]``
    (1 / its norm, for an `X` that is not normalised)."""
    n_q, n = Q.shape[0], X.shape[0]
    k_eff = min(k, n - (1 if self_rows is not None else 0))
    idx = np.full((n_q, k), -1, dtype=np.int64)
    sim = np.zeros((n_q, k), dtype=np.float32)
    if k_eff <= 0:
        return idx, sim
    for start in range(0, n_q, block_rows):
        stop = min(start + block_rows, n_q)
        S = Q[start:stop] @ X.T
        if col_scale is not None:
            S *= col_scale
        if self_rows is not None:
            S[np.arange(stop - start), self_rows[start:stop]] = -np.inf
        idx[start:stop, :k_eff], sim[start:stop, :k_eff] = _top_k_rows(S, k_eff)
        if progress:
            progress("knn graph (exact)", stop, n_q)
    return idx, sim


def _block_rows(n: int) -> int:
    """Query rows per block so a block's similarities (and argpartition's int64
    result) stay near 16M entries, about 200 MB, whatever the pool size."""
    return max(1, min(4096, (16 << 20) // max(1, n)))


def exact_neighbors(
    Q: NDArray[np.float32], X: NDArray[np.float32], k: int, progress: Progress | None = None
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Exact top-`k` cosine neighbours in `X` of each row of `Q` (both L2-normalised)."""
    return _topk_exact(Q, X, k, _block_rows(X.shape[0]), progress)


#: IVF lists per sqrt(n) rows.
IVF_LISTS_PER_SQRT_N = 2.0
#: k-means iterations that place the IVF lists.
IVF_NITER = 5
#: Training rows per IVF list (a random sample of this many times the lists).
IVF_TRAIN_PER_LIST = 32

#: Rows whose exact neighbours check the IVF recall (standard error about 0.006 at recall 0.95).
SAMPLE_ROWS = 128

#: nprobe values tried, in order, when tuning the IVF search to the recall target.
NPROBE_STEPS = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)

#: Rows normalised, added and searched per block on the IVF path (about 12 MB at 384 dims).
ROW_BLOCK = 8192

#: Dimensions tried for candidate generation in a reduced (principal component) space; the
#: candidates are then re-ranked by exact cosine on the fp16-stored vectors.
REDUCED_DIMS = (64, 96, 128)
#: Candidates re-ranked per neighbour wanted.
K_FACTOR = 4
#: Share of a sampled row's true neighbours that must be among its reduced-space candidates
#: (on a subsample of the pool) for the reduced space to be used.
REDUCED_RECALL = 0.97
#: Rows of the subsample that test the reduced space.
REDUCED_TEST_ROWS = 50_000
#: Pools smaller than this keep the full space without testing (measured at 20,000 rows: the test
#: and the re-ranking cost more than the cheaper scan saves; bench/README.md, "Scale").
REDUCED_MIN_ROWS = 100_000
#: Nearest IVF lists found per row in the pass that adds it (full space); a tuned nprobe up to
#: this searches from them instead of routing every row through the centroids again.
COARSE_PROBES = 8
#: Tuning stops when one more step would raise the sample's neighbour similarity mass by less
#: than this share: the neighbours it would add are as similar as those found, so the spread
#: scores (similarity-weighted means) would not move (measured on the final labels: bench/scale.py).
SIMILARITY_GAIN_STOP = 0.001
#: Tuning stops before a step whose full search is projected to take longer than this (seconds).
SEARCH_BUDGET_S = 600.0
#: A sample's search projected past the budget is timed up to this many times and the fastest
#: kept: one search of 128 rows takes milliseconds, so a single pause of the process (another job
#: on the machine) had projected a 1M-row search past the budget and stopped tuning at recall 0.79
#: (bench/README.md, "Scale"). One within the budget needs no repeat.
TIMING_REPEATS = 3


class PoolIndex:
    """An index of a pool's unit vectors: nearest pool rows by cosine for any query.

    Built with the kNN graph (the graph is this index searched with every pool row) and saved
    with a run, so that new items are labeled against the fitted pool without a rebuild.
    Exact (a flat index) for small pools; faiss IVF above, with candidates generated in a
    reduced principal-component space and re-ranked exactly where that keeps the neighbours.

    Attributes
    ----------
    index : faiss.Index
    kind : str
        ``"exact"``, ``"ivf"`` or ``"ivf-reduced"``.
    nprobe : int or None
        IVF lists probed per query.
    k_factor : int
        Candidates re-ranked per neighbour (reduced space only).
    """

    def __init__(self, index: Any, kind: str, nprobe: int | None = None, k_factor: int = 1,
                 parts: tuple[Any, ...] = ()) -> None:
        self._index, self.kind, self.k_factor = index, kind, int(k_factor)
        self._parts = parts  # faiss objects a composed index points to: kept alive with it
        self.path: Path | None = None  # the file it was saved to or read from
        self._temporary: Any = None  # removes a file written only to release the index
        self.nprobe: int | None = None
        self.set_nprobe(nprobe)

    @property
    def index(self) -> Any:
        """The faiss index, read back from :attr:`path` if it was released."""
        if self._index is None:
            import faiss

            self._index = faiss.read_index(str(self.path))
            self.set_nprobe(self.nprobe)
        return self._index

    def release(self) -> None:
        """Free the index's memory until it is next used (0.8 GB at 1M x 384): it is read back
        from its file, written to a temporary one first if it has none (kept in memory when
        that cannot be written)."""
        import faiss

        if self._index is None:
            return
        if self.path is None or not self.path.exists():
            fd, tmp = tempfile.mkstemp(prefix="labelseed-index-", suffix=".faiss")
            os.close(fd)
            try:
                faiss.write_index(self._index, tmp)
            except (OSError, RuntimeError) as exc:
                os.unlink(tmp)
                log.info("keeping the index in memory (%s)", exc)
                return
            self.path = Path(tmp)
            self._temporary = weakref.finalize(self, _unlink_quietly, tmp)
        self._index = None
        self._parts = ()

    @property
    def n_rows(self) -> int:
        return int(self.index.ntotal)

    @property
    def n_dims(self) -> int:
        return int(self.index.d)

    def set_nprobe(self, nprobe: int | None) -> None:
        import faiss

        self.nprobe = nprobe
        if self._index is None:
            return  # applied when it is read back
        if nprobe is not None:
            faiss.extract_index_ivf(self._index).nprobe = int(nprobe)
        if self.kind == "ivf-reduced":
            self._index.k_factor = float(self.k_factor)

    def search(self, Q: NDArray[np.float32], k: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """faiss's ``(similarities, indices)`` of unit-length queries `Q` (n_queries, n_dims)."""
        return self.index.search(np.ascontiguousarray(Q, dtype=np.float32), k)  # type: ignore[no-any-return]

    def neighbors(self, Q: NDArray[np.float32], k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Top-`k` pool rows of each unit-length query: ``(indices, similarities)``, -1 / 0 where
        fewer exist."""
        D, I = self.search(Q, k)
        D = np.where(I >= 0, D, 0.0).astype(np.float32)
        return I.astype(np.int64), D

    def save(self, path: str | Path) -> None:
        """Write the index to `path` atomically (a released index is copied from its file)."""
        import shutil

        import faiss

        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            if self._index is None and self.path is not None:
                shutil.copyfile(self.path, tmp)
            else:
                faiss.write_index(self.index, tmp)
            os.replace(tmp, path)
            if self._temporary is None:  # a temporary file stays the one this index reads back
                self.path = path
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | Path, kind: str, nprobe: int | None, k_factor: int) -> "PoolIndex":
        import faiss

        out = cls(faiss.read_index(str(path)), kind, nprobe, k_factor)
        out.path = Path(path)
        return out

    @classmethod
    def exact(cls, unit: "_UnitRows") -> "PoolIndex":
        """A flat inner-product index of every row (small pools)."""
        import faiss

        index = faiss.IndexFlatIP(unit.X.shape[1])
        for start in range(0, unit.X.shape[0], ROW_BLOCK):
            index.add(unit.span(start, min(start + ROW_BLOCK, unit.X.shape[0])))
        return cls(index, "exact")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _search_block(search: Callable[[NDArray[np.float32], int], tuple[NDArray[np.float32], NDArray[np.int64]]],
                  Q: NDArray[np.float32], rows: NDArray[np.int64], k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Top-`k` neighbours of pool rows `rows` (unit vectors `Q`), each row itself dropped;
    ``search(x, kk)`` returns faiss's ``(D, I)``."""
    D, I = search(Q, k + 1)
    return _drop_self(D, I, rows, k)


def _drop_self(D: NDArray[np.float32], I: NDArray[np.int64], rows: NDArray[np.int64],
               k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The `k` best of each row's ``k + 1`` results (most similar first), the row itself dropped
    where found, else the least similar result."""
    m = len(rows)
    own = I == rows[:, None]
    # drop the row itself where found, else the least similar result
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
    keep = np.ones_like(own)
    keep[np.arange(m), drop] = False
    idx, sim = I[keep].reshape(m, k), D[keep].reshape(m, k).astype(np.float32)
    sim[idx < 0] = 0.0
    return idx, sim


@dataclass(frozen=True)
class _GraphBlock:
    """One engine batch of the graph search: some pool rows (`rows`), their unit vectors and,
    where the lists are assigned in the full space, the lists each row probes."""

    rows: NDArray[np.int64]
    Q: NDArray[np.float32]
    lists: NDArray[np.int64] | None
    list_sims: NDArray[np.float32] | None
    k: int


@dataclass
class _ShardIndex:
    """A worker's part of the pool index: the IVF lists of one shard (every list, unsharded).
    `ids` maps the index's own row numbers to pool rows (None: they are pool rows)."""

    pool: "PoolIndex"
    ids: NDArray[np.int64] | None = None
    # the lists' rows as float32 (ids, vectors), decoded on first use where that fits
    # BLAS_SCAN_MAX_BYTES; None: the lists are scanned by faiss
    _decoded: list[tuple[NDArray[np.int64], NDArray[np.float32]]] | None = None
    _tried: bool = False

    def decoded_lists(self) -> list[tuple[NDArray[np.int64], NDArray[np.float32]]] | None:
        if not self._tried:
            self._decoded, self._tried = _decode_lists(faiss_ivf(self.pool)), True
        return self._decoded


#: Largest float32 copy of a shard's IVF lists scanned by matrix products (:func:`_scan_lists`);
#: larger shards are scanned by faiss from their fp16 codes.
BLAS_SCAN_MAX_BYTES = 256 << 20


def _decode_lists(ivf: Any) -> list[tuple[NDArray[np.int64], NDArray[np.float32]]] | None:
    """Every list's ``(pool rows, float32 vectors)`` of a full-space index of fp16 codes; None
    for any other kind of index or one whose copy would pass :data:`BLAS_SCAN_MAX_BYTES`."""
    import faiss

    index = faiss.downcast_index(ivf)
    if (not isinstance(index, faiss.IndexIVFScalarQuantizer) or index.by_residual
            or index.sq.qtype != faiss.ScalarQuantizer.QT_fp16 or index.ntotal * index.d * 4 > BLAS_SCAN_MAX_BYTES):
        return None
    out = []
    for lst in range(index.nlist):
        ids, codes = _list_entries(index, lst)
        out.append((ids, codes.view(np.float16).reshape(len(ids), index.d).astype(np.float32)))
    return out


def _scan_part(lists: list[tuple[NDArray[np.int64], NDArray[np.float32]]], Q: NDArray[np.float32],
               probe_rows: NDArray[np.int64], probed: NDArray[np.int64], starts: NDArray[np.int64],
               ends: NDArray[np.int64], lengths: NDArray[np.int64], k1: int
               ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Each query's `k1` best among some lists: list ``probed[s]`` (``lengths`` rows) against the
    queries ``probe_rows[s:e]`` that probe it, one matrix product each, into per-query heaps (faiss's)."""
    import faiss

    m = len(Q)
    D = np.empty((m, k1), dtype=np.float32)
    I = np.empty((m, k1), dtype=np.int64)
    heaps = faiss.float_minheap_array_t()  # keeps the largest
    heaps.k, heaps.nh = k1, m
    heaps.val, heaps.ids = faiss.swig_ptr(D), faiss.swig_ptr(I)
    heaps.heapify()
    # the gathered rows and the products go into buffers reused from list to list: fresh arrays
    # of this size are mapped anew by malloc each time, and their page faults cost more than the
    # copy itself (one thread, 160k gathered rows of 384: gather 0.22 -> 0.05 s, products 0.20 -> 0.13 s;
    # whole graph of the noisy clusters, medians of 7: 0.82 -> 0.76 s)
    n_rows = ends - starts
    q_buf = np.empty((int(n_rows.max(initial=0)), Q.shape[1]), dtype=np.float32)
    s_buf = np.empty(int((n_rows * lengths).max(initial=0)), dtype=np.float32)
    for s, e, length in zip(starts, ends, lengths):
        if length == 0:
            continue
        ids, V = lists[probed[s]]
        rows = probe_rows[s:e]
        G = np.take(Q, rows, axis=0, out=q_buf[:len(rows)], mode="clip")  # rows are valid: unbuffered
        S = np.matmul(G, V.T, out=s_buf[:len(rows) * length].reshape(len(rows), length))
        heaps.addn_query_subset_with_ids(len(rows), faiss.swig_ptr(rows), S.shape[1], faiss.swig_ptr(S),
                                         faiss.swig_ptr(ids), 0)
    heaps.reorder()
    return D, I


def _scan_lists(lists: list[tuple[NDArray[np.int64], NDArray[np.float32]]], block: _GraphBlock
                ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """faiss's ``search_preassigned`` of the block's rows over their probed lists, by matrix
    products: each list once against all the block's rows that probe it (BLAS at full speed)
    instead of each row against its lists one by one. The lists are split between threads
    (faiss's thread count), each with one BLAS thread and its own heaps, merged at the end;
    the similarities are those of the same fp16-rounded vectors, to float rounding."""
    import faiss

    from .spreading import _one_blas_thread

    assert block.lists is not None
    k1 = block.k + 1
    m, n_probe = block.lists.shape
    flat = block.lists.ravel()
    order = np.argsort(flat, kind="stable")
    probed = flat[order]
    order, probed = order[probed >= 0], probed[probed >= 0]  # -1: fewer lists than asked for
    probe_rows = order // n_probe
    starts = np.flatnonzero(np.r_[True, probed[1:] != probed[:-1]]) if len(probed) else np.empty(0, np.int64)
    ends = np.r_[starts[1:], len(probed)].astype(np.int64)
    threads = max(1, min(int(faiss.omp_get_max_threads()), 8))
    lengths = np.array([len(lists[lst][0]) for lst in probed[starts]], dtype=np.int64)
    # about equal work per thread: rows probing a list times its length
    work = np.cumsum((ends - starts) * lengths)
    cuts = np.searchsorted(work, work[-1] * np.arange(1, threads) / threads) if len(work) else []
    parts = [(starts[p], ends[p], lengths[p]) for p in np.split(np.arange(len(starts)), cuts)]
    Q = np.ascontiguousarray(block.Q, dtype=np.float32)
    omp = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # the heaps' OpenMP threads would fight the scan's
    try:
        with _one_blas_thread():
            if threads == 1:
                results = [_scan_part(lists, Q, probe_rows, probed, a, b, n, k1) for a, b, n in parts]
            else:  # threads made per block (a pool kept across calls would not survive a fork)
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(threads, thread_name_prefix="labelseed-scan") as pool:
                    futures = [pool.submit(_scan_part, lists, Q, probe_rows, probed, a, b, n, k1)
                               for a, b, n in parts]
                    results = [f.result() for f in futures]
    finally:
        faiss.omp_set_num_threads(omp)
    # sorted as shards' results are merged, so that equal similarities come in one order
    # whatever the number of threads
    return _merge_shards(np.concatenate([r[0] for r in results], axis=1),
                         np.concatenate([r[1] for r in results], axis=1), k1)


def _graph_block(shard: _ShardIndex, block: _GraphBlock
                 ) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
    """The ``k + 1`` nearest rows the shard holds for each row of the block: ``(rows, D, I)``, faiss's
    ``(D, I)`` in pool rows (the per-batch function of every engine; the caller merges the shards'
    results and drops each row itself)."""
    pool = shard.pool
    if block.lists is not None:
        lists = shard.decoded_lists()
        if lists is not None:
            D, I = _scan_lists(lists, block)
        else:
            D, I = faiss_ivf(pool).search_preassigned(block.Q, block.k + 1, block.lists, block.list_sims)
    else:
        D, I = pool.search(block.Q, block.k + 1)
    if shard.ids is not None:
        I = np.where(I >= 0, shard.ids[np.maximum(I, 0)], -1)
    return block.rows, D, I


@dataclass(frozen=True)
class _Shard:
    """What one worker needs to hold a shard of the IVF lists: the trained index without rows
    (serialized), the lists' entries and, for the reduced-space index, the re-ranking codes of
    the rows they hold."""

    empty: NDArray[np.uint8]
    kind: str
    nprobe: int
    k_factor: int
    parallel_mode: int
    lists: NDArray[np.int64]  # list numbers
    sizes: NDArray[np.int64]  # entries of each
    ids: NDArray[np.int64]  # the entries' pool rows, list after list
    codes: NDArray[np.uint8]  # their IVF codes, (n_entries, code_size)
    refine_codes: NDArray[np.uint8] | None  # reduced space: their full-space codes, (n_entries, size)


def _pool_from_bytes(data: NDArray[np.uint8], kind: str, nprobe: int | None, k_factor: int,
                     parallel_mode: int, _shard: None = None) -> _ShardIndex:
    """A worker's copy of the whole pool index (sent to it serialized): the one-shard case."""
    import faiss

    pool = PoolIndex(faiss.deserialize_index(data), kind, nprobe, k_factor)
    if kind != "exact":
        faiss_ivf(pool).parallel_mode = parallel_mode
    return _ShardIndex(pool)


def _shard_index(shard: _Shard) -> _ShardIndex:
    """Build a worker's shard: the empty trained index filled with its lists' entries only. In the
    reduced space the index numbers its rows 0.. (its re-ranking store is positional)."""
    import faiss

    index: Any = faiss.deserialize_index(shard.empty)
    pool = PoolIndex(index, shard.kind, shard.nprobe, shard.k_factor)
    ivf = faiss_ivf(pool)
    ivf.parallel_mode = shard.parallel_mode
    reduced = shard.refine_codes is not None
    local = np.arange(len(shard.ids), dtype=np.int64) if reduced else shard.ids
    start = 0
    for lst, size in zip(shard.lists, shard.sizes):
        if size:
            ids = np.ascontiguousarray(local[start : start + size])
            codes = np.ascontiguousarray(shard.codes[start : start + size])
            ivf.invlists.add_entries(int(lst), int(size), faiss.swig_ptr(ids), faiss.swig_ptr(codes))
        start += int(size)
    ivf.ntotal = len(shard.ids)
    if not reduced:
        return _ShardIndex(pool)
    refine = faiss.downcast_index(index.refine_index)
    refine.add_sa_codes(np.ascontiguousarray(shard.refine_codes))
    faiss.downcast_index(index.base_index).ntotal = len(shard.ids)
    index.ntotal = len(shard.ids)
    return _ShardIndex(pool, shard.ids)


def _list_entries(ivf: Any, lst: int) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """One IVF list's ``(ids, codes)``, copied out of the index."""
    import faiss

    n = int(ivf.invlists.list_size(lst))
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty((0, ivf.code_size), dtype=np.uint8)
    ids = faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), n).copy()
    codes = faiss.rev_swig_ptr(ivf.invlists.get_codes(lst), n * ivf.code_size).copy().reshape(n, ivf.code_size)
    return ids.astype(np.int64), codes


class _Shards(Sequence[_Shard]):
    """The pool index's IVF lists split into parts of about equal rows (largest lists first, each
    to the part with the fewest rows so far). A part's entries are copied out of the index only
    when it is asked for, so the driver holds one part's copy at a time besides the index."""

    def __init__(self, pool: "PoolIndex", empty: NDArray[np.uint8], n_shards: int, parallel_mode: int) -> None:
        ivf = faiss_ivf(pool)
        self.pool, self.empty, self.parallel_mode = pool, empty, parallel_mode
        self.sizes = np.array([ivf.invlists.list_size(lst) for lst in range(ivf.nlist)], dtype=np.int64)
        self.owner = np.empty(ivf.nlist, dtype=np.int64)  # the part holding each list
        load = np.zeros(n_shards, dtype=np.int64)
        for lst in np.argsort(-self.sizes, kind="stable"):
            self.owner[lst] = int(np.argmin(load))
            load[self.owner[lst]] += self.sizes[lst]
        self.rows = load

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, s: int) -> _Shard: ...

    @overload
    def __getitem__(self, s: slice) -> list[_Shard]: ...

    def __getitem__(self, s: int | slice) -> _Shard | list[_Shard]:
        if isinstance(s, slice):
            return [self[i] for i in range(*s.indices(len(self)))]
        if not -len(self) <= s < len(self):
            raise IndexError(s)
        import faiss

        pool, ivf = self.pool, faiss_ivf(self.pool)
        lists = np.flatnonzero(self.owner == s % len(self))
        entries = [_list_entries(ivf, int(lst)) for lst in lists]
        ids = np.concatenate([e[0] for e in entries]) if entries else np.empty(0, dtype=np.int64)
        codes = (np.concatenate([e[1] for e in entries]) if entries
                 else np.empty((0, ivf.code_size), dtype=np.uint8))
        refine_codes = None
        if pool.kind == "ivf-reduced":
            whole: Any = pool.index
            refine: Any = faiss.downcast_index(whole.refine_index)
            # a view of the index's own codes: only this part's rows are copied
            every = faiss.rev_swig_ptr(refine.codes.data(), refine.ntotal * refine.code_size)
            refine_codes = every.reshape(refine.ntotal, refine.code_size)[ids]
        return _Shard(self.empty, pool.kind, int(pool.nprobe or 1), pool.k_factor, self.parallel_mode, lists,
                      self.sizes[lists], ids, codes, refine_codes)


def _contiguous(a: NDArray[Any] | None) -> NDArray[Any] | None:
    return None if a is None else np.ascontiguousarray(a)


def _merge_shards(D: NDArray[np.float32], I: NDArray[np.int64], k1: int
                  ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Each row's `k1` most similar of the shards' results (side by side in `D`, `I`; -1 where a
    shard had none for the row), most similar first."""
    D = np.where(I >= 0, D, -np.inf).astype(np.float32)
    # most similar first, equal similarities in faiss's order (the larger row number first)
    best = np.lexsort((-I, -D), axis=1)[:, :k1]
    return np.take_along_axis(D, best, axis=1), np.take_along_axis(I, best, axis=1)


def _recall(found: NDArray[np.int64], truth: NDArray[np.int64], k: int) -> float:
    """Mean share of each row's `k` true neighbours (rows of `truth`) among those `found`."""
    return float(np.mean([len(np.intersect1d(a, b)) for a, b in zip(found, truth)]) / k)


def _reduced_candidates(unit: "_UnitRows", P: NDArray[np.float32], Q: NDArray[np.float32],
                        rows: NDArray[np.int64], dims: list[int], n_cand: int) -> dict[int, NDArray[np.int64]]:
    """For each of `dims`, the `n_cand` pool rows nearest to each query (``Q``, pool rows `rows`,
    themselves left out) by inner product in the first `dims` principal components of `P`: a
    pass over the pool a block at a time, keeping a running top list per query."""
    Qp = Q @ P.T
    best = {m: (np.full((len(Q), 0), -np.inf, dtype=np.float32), np.zeros((len(Q), 0), dtype=np.int64))
            for m in dims}
    n = unit.X.shape[0]
    for start in range(0, n, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n)
        R = unit.span(start, stop) @ P.T
        cols = np.arange(start, stop)
        for m in dims:
            sc = Qp[:, :m] @ R[:, :m].T
            sc[rows[:, None] == cols[None, :]] = -np.inf
            sc = np.concatenate([best[m][0], sc], axis=1)
            ix = np.concatenate([best[m][1], np.broadcast_to(cols, (len(Q), len(cols)))], axis=1)
            keep = np.argpartition(-sc, min(n_cand, sc.shape[1]) - 1, axis=1)[:, :n_cand]
            best[m] = (np.take_along_axis(sc, keep, axis=1), np.take_along_axis(ix, keep, axis=1))
    return {m: best[m][1] for m in dims}


def _reduction(unit: "_UnitRows", k: int, rng: np.random.Generator) -> NDArray[np.float32] | None:
    """The projection (dims x d) onto the fewest principal components of :data:`REDUCED_DIMS`
    whose top-(K_FACTOR k) candidates hold :data:`REDUCED_RECALL` of the true neighbours; None
    when none does (high intrinsic dimension: search the full space). The components come from
    a subsample; the test runs against the whole pool, whose density decides which dimensions
    hold a row's nearest neighbours (a 50,000-row subsample passed data whose 1M-row
    neighbours the components miss: candidate recall 0.22 at 64 dims)."""
    n, d = unit.X.shape
    dims = [m for m in REDUCED_DIMS if m <= d // 3]
    if not dims or n < REDUCED_MIN_ROWS:
        return None
    sub = np.sort(rng.choice(n, min(n, REDUCED_TEST_ROWS), replace=False))
    S = unit.take(sub)
    centred = S - S.mean(axis=0)
    cov = (centred.T @ centred).astype(np.float64)
    del S, centred
    _, vecs = np.linalg.eigh(cov)
    P = np.ascontiguousarray(vecs[:, ::-1][:, : max(dims)].T, dtype=np.float32)  # top components first
    q = np.sort(rng.choice(n, min(n, SAMPLE_ROWS), replace=False))
    Q = unit.take(q)
    truth, _ = _topk_exact(Q, unit.X, k, _block_rows(n), None, self_rows=q, col_scale=unit.scale)
    # uncentred projection: inner products in it approximate those of the full space
    cands = _reduced_candidates(unit, P, Q, q, dims, K_FACTOR * k)
    for m in dims:
        recall = _recall(cands[m], truth, k)
        log.info("reduced space %d dims: candidate recall %.3f", m, recall)
        if recall >= REDUCED_RECALL:
            return np.ascontiguousarray(P[:m])
    return None


def faiss_ivf(pool: PoolIndex) -> Any:
    """The IVF part of a pool index (for its number of lists)."""
    import faiss

    return faiss.extract_index_ivf(pool.index)


#: Each row's nearest IVF lists found when it was added (similarities, list numbers), shape
#: (n_rows, COARSE_PROBES) each: the full-space graph search starts from them.
Routes = tuple[NDArray[np.float32], NDArray[np.int64]]


@dataclass
class _Router:
    """A worker's copy of what assigns rows to IVF lists: the coarse quantizer (inner product
    over the centroids) and, for the reduced-space index, the projection into that space."""

    quantizer: Any
    project: Any = None  # faiss.LinearTransform, or None in the full space


def _router(centroids: NDArray[np.float32], projection: NDArray[np.float32] | None = None) -> _Router:
    """A :class:`_Router` built where it runs, from the centroids and the projection matrix."""
    import faiss

    q = faiss.IndexFlatIP(centroids.shape[1])
    q.add(centroids)
    if projection is None:
        return _Router(q)
    proj = faiss.LinearTransform(projection.shape[1], projection.shape[0], False)
    faiss.copy_array_to_vector(np.ascontiguousarray(projection, dtype=np.float32).ravel(), proj.A)
    proj.is_trained = True
    return _Router(q, proj)


def _route_block(n_coarse: int, router: _Router, block: NDArray[np.float32]
                 ) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32] | None]:
    """Each row's `n_coarse` nearest IVF lists (similarities, list numbers), in the reduced space
    with the projected rows too: its own list is the first, the lists its search starts from
    are the first nprobe."""
    Z = router.project.apply(block) if router.project is not None else block
    D, I = router.quantizer.search(Z, n_coarse)
    return D, I, (Z if router.project is not None else None)


def ivf_index(unit: "_UnitRows", k: int, rng: np.random.Generator, random_state: int,
              progress: Progress | None = None, keep_empty: bool = False, engine: "Engine | None" = None,
              ) -> tuple[PoolIndex, Routes, NDArray[np.uint8] | None]:
    """Train and fill the IVF index of every row (2 sqrt(n) lists): in a reduced space with
    exact re-ranking where :func:`_reduction` finds one that keeps the neighbours, else fp16
    codes of the full vectors; with each row's routes. nprobe is left unset. With
    `keep_empty`, the trained index before any row was added is returned too, serialized (the
    start of every shard's copy); else None. The k-means trains here on a sample; the routes
    (the pass of every row over the centroids, in the reduced space after the projection) run
    on `engine`, a block of rows per batch, each worker holding a copy of the
    centroids (and the projection), and the rows are added here to the lists the routes give
    them."""
    import faiss

    n, d = unit.X.shape
    nlist = max(1, int(IVF_LISTS_PER_SQRT_N * np.sqrt(n)))
    P = _reduction(unit, k, rng)
    if P is not None:
        m = P.shape[0]
        proj = faiss.LinearTransform(d, m, False)
        faiss.copy_array_to_vector(P.ravel(), proj.A)
        proj.is_trained = True
        coarse = faiss.IndexFlatIP(m)
        ivf = faiss.IndexIVFScalarQuantizer(coarse, m, nlist, faiss.ScalarQuantizer.QT_8bit,
                                            faiss.METRIC_INNER_PRODUCT, False)
        base = faiss.IndexPreTransform(proj, ivf)
        refine = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        index: Any = faiss.IndexRefine(base, refine)
        kind, k_factor = "ivf-reduced", K_FACTOR
        # the Python objects own nothing faiss keeps: keep them alive with the index
        index.own_fields = False
        pool_parts: tuple[Any, ...] = (proj, coarse, ivf, base, refine)
    else:
        coarse = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFScalarQuantizer(coarse, d, nlist, faiss.ScalarQuantizer.QT_fp16,
                                            faiss.METRIC_INNER_PRODUCT, False)
        index, kind, k_factor, pool_parts = ivf, "ivf", 1, (coarse,)
    ivf.cp.niter = IVF_NITER
    ivf.cp.seed = int(random_state)
    ivf.cp.min_points_per_centroid = 5
    ivf.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
    n_train = IVF_TRAIN_PER_LIST * nlist
    index.train(unit.take(np.arange(n) if n <= n_train else np.sort(rng.choice(n, n_train, replace=False))))
    empty = faiss.serialize_index(index) if keep_empty else None
    # every row is both stored and searched, so one pass over the centroids gives each row its
    # list (to add it) and its nearest lists (to search from, or to send it to the shards that
    # hold them), instead of one pass for each
    n_coarse = min(COARSE_PROBES, nlist)
    routes: Routes = (np.empty((n, n_coarse), dtype=np.float32), np.empty((n, n_coarse), dtype=np.int64))
    runner: Engine = engine if engine is not None else LocalEngine()
    if runner.name == "local":
        make_worker: Callable[[], Any] = partial(_Router, ivf.quantizer, proj if P is not None else None)
    else:
        make_worker = partial(_router, ivf.quantizer.reconstruct_n(0, nlist), P)
    starts = range(0, n, ROW_BLOCK)
    # a block is sent (Ray: serialized) before the next is read into the same buffer
    blocks = (unit.span(start, min(start + ROW_BLOCK, n)) for start in starts)
    for start, (D, I, Z) in zip(starts, runner.map(make_worker, partial(_route_block, n_coarse), blocks)):
        stop = min(start + ROW_BLOCK, n)
        routes[0][start:stop], routes[1][start:stop] = D, I
        block = unit.span(start, stop)  # again: later blocks may have been read into the buffer since
        own_list = np.ascontiguousarray(I[:, 0])
        coded = block if Z is None else np.ascontiguousarray(Z)
        ivf.add_core(stop - start, faiss.swig_ptr(coded), None, faiss.swig_ptr(own_list))
        if P is not None:  # what IndexRefine.add does after its base: the full-space codes, the counts
            refine.add(block)
            base.ntotal = ivf.ntotal
            index.ntotal = refine.ntotal
        if progress:
            progress("knn graph (index)", stop, n)
    return PoolIndex(index, kind, None, k_factor, parts=pool_parts), routes, empty


def _ivf(
    unit: _UnitRows, k: int, nprobe: int | None, target_recall: float, random_state: int,
    progress: Progress | None, engine: "Engine | None" = None, shards: int | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float32], float, int, PoolIndex]:
    """All-rows kNN with faiss IVF (2 sqrt(n) lists).

    Where a few principal components keep each row's neighbours among its candidates, lists
    are built in that reduced space (8-bit codes) and candidates re-ranked by exact cosine on
    fp16 copies; elsewhere the lists hold fp16 codes of the full vectors. With `nprobe` None,
    the lists probed are tuned on 128 sampled rows against their exact neighbours: the
    smallest step that reaches `target_recall` + 0.01; tuning also stops when a step would add
    neighbours no more similar than those found (:data:`SIMILARITY_GAIN_STOP`) or when the
    next step's full search is projected past :data:`SEARCH_BUDGET_S`. Returns the graph, the
    sample's recall@k, the nprobe used and the index.

    The search of every row runs on `engine` (default: this process), a block of rows per batch.
    With `shards` > 1 (default: the engine's, one per Ray actor) the IVF lists are split into
    that many parts of about equal rows; each worker holds one part only and searches it for the
    rows that probe its lists, and each row's results from the parts are merged. In the full
    space that is exactly the unsharded search (each list is scanned for the same rows); in the
    reduced space each part re-ranks its own best candidates, so a row's re-ranked candidates are
    a superset of the unsharded ones and the graph can differ slightly (never worse). The graph
    is the same on every engine for the same number of shards.
    """
    n = unit.X.shape[0]
    rng = np.random.default_rng(random_state)
    runner: Engine = engine if engine is not None else LocalEngine()
    want_shards = int(shards if shards is not None else runner.shards)
    pool, routes, empty = ivf_index(unit, k, rng, random_state, progress, keep_empty=want_shards > 1, engine=runner)
    nlist = int(faiss_ivf(pool).nlist)
    sample = np.sort(rng.choice(n, min(n, SAMPLE_ROWS), replace=False))
    Q = unit.take(sample)
    truth, truth_sim = _topk_exact(Q, unit.X, k, _block_rows(n), None, self_rows=sample, col_scale=unit.scale)
    truth_mass = np.clip(truth_sim, 0, None).sum(axis=1)

    def measure(p: int) -> tuple[float, float, float]:
        """(recall, similarity mass found / exact, projected seconds of the full search) at nprobe `p`."""
        pool.set_nprobe(p)
        fastest = math.inf
        for _ in range(TIMING_REPEATS):  # the same search each time: only its time varies
            t = time.perf_counter()
            got, got_sim = _search_block(pool.search, Q, sample, k)  # 128 rows: one block
            fastest = min(fastest, time.perf_counter() - t)
            if fastest * n / len(sample) <= SEARCH_BUDGET_S:
                break  # within the budget: repeats could only confirm it
        seconds = fastest * n / len(sample)
        recall = _recall(got, truth, k)
        mass = float(np.mean(np.clip(got_sim, 0, None).sum(axis=1) / np.maximum(truth_mass, 1e-12)))
        return recall, mass, seconds

    steps = [p for p in NPROBE_STEPS if p < nlist] + [nlist]
    why = "given"
    if nprobe is not None:
        chosen = min(max(1, nprobe), nlist)
        recall, _, _ = measure(chosen)
    else:
        chosen = steps[0]
        recall, mass, _ = measure(chosen)
        why = "recall target"
        for i, nxt in enumerate(steps[1:], 1):
            if recall >= min(1.0, target_recall + 0.01):
                break
            if progress:
                progress("knn graph (tuning)", i, len(steps) - 1)
            r2, m2, secs = measure(nxt)
            if secs > SEARCH_BUDGET_S:
                why = f"time: the next step's search was projected at {secs:.0f} s"
                break
            gain = m2 - mass
            chosen, recall, mass = nxt, r2, m2
            if gain < SIMILARITY_GAIN_STOP and recall < target_recall + 0.01:
                why = f"similarity mass gained {gain:.4f} < {SIMILARITY_GAIN_STOP}"
                break
    if progress and nprobe is None:  # tuning stops when recall or the gains say so: the stage is done
        progress("knn graph (tuning)", len(steps) - 1, len(steps) - 1)
    pool.set_nprobe(chosen)
    log.info("IVF (%s): %d lists, nprobe %d (%s), sample recall@%d %.3f", pool.kind, nlist, chosen, why, k, recall)
    n_shards = max(1, min(want_shards, nlist))
    ivf = faiss_ivf(pool)
    # in the full space every row's probes are assigned here (taken from its routes where they
    # reach that far) and searched preassigned, split over threads; the reduced-space index
    # assigns its own, and is routed here only to send each row to the shards it probes
    full_space = pool.kind == "ivf"
    mode = 3 if full_space else 0
    project: Any = None
    if not full_space and n_shards > 1:
        import faiss

        base: Any = faiss.downcast_index(pool.index.base_index)
        project = faiss.downcast_VectorTransform(base.chain.at(0))
    owner: NDArray[np.int64] | None = None  # the shard of each list, when there are several
    if n_shards == 1:
        ivf.parallel_mode = mode
        shard_data: Sequence[Any] = [None]
        if runner.name == "local":
            make_worker: Callable[[Any], _ShardIndex] = lambda _: _ShardIndex(pool)  # noqa: E731
        else:  # the worker gets a copy of the whole index
            import faiss

            make_worker = partial(_pool_from_bytes, faiss.serialize_index(pool.index), pool.kind, chosen,
                                  pool.k_factor, mode)
    else:  # each worker holds the lists of one shard, searched for the rows that probe them
        assert empty is not None
        split = _Shards(pool, empty, n_shards, mode)
        shard_data, owner, make_worker = split, split.owner, _shard_index
        log.info("IVF lists in %d shards of %s rows", n_shards, "/".join(str(r) for r in split.rows))

    def items() -> Iterator[tuple[int, _GraphBlock]]:
        for start in range(0, n, ROW_BLOCK):
            stop = min(start + ROW_BLOCK, n)
            rows = np.arange(start, stop)
            Q = unit.span(start, stop)
            lists: Any = None
            sims: Any = None
            if full_space:
                if chosen <= routes[1].shape[1]:
                    sims, lists = routes[0][start:stop, :chosen], routes[1][start:stop, :chosen]
                else:
                    sims, lists = ivf.quantizer.search(Q, chosen)
            elif owner is not None:  # only to send each row to the shards it probes
                if chosen <= routes[1].shape[1]:
                    lists = routes[1][start:stop, :chosen]
                else:
                    _, lists = ivf.quantizer.search(project.apply(Q), chosen)
            if owner is None:
                yield 0, _GraphBlock(rows, Q, _contiguous(lists) if full_space else None,
                                     _contiguous(sims) if full_space else None, k)
                continue
            assert lists is not None
            probed = owner[lists]  # (rows, chosen): the shard of each probed list
            for sh in range(n_shards):
                mine = (probed == sh).any(axis=1)
                if not mine.any():
                    continue
                yield sh, _GraphBlock(rows[mine], np.ascontiguousarray(Q[mine]),
                                      _contiguous(lists[mine]) if full_space else None,
                                      _contiguous(sims[mine]) if full_space else None, k)

    idx = np.empty((n, k), dtype=np.int64)
    sim = np.empty((n, k), dtype=np.float32)
    parts: list[tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]] = []

    def finish() -> None:
        """Merge the shards' results for one block of rows and keep each row's k best."""
        first = int(min(p[0][0] for p in parts))
        last = int(max(p[0][-1] for p in parts)) + 1
        if len(parts) == 1:  # one shard: its results are every row's, in order
            D, I = parts[0][1], parts[0][2]
        else:
            D = np.full((last - first, len(parts) * (k + 1)), -np.inf, dtype=np.float32)
            I = np.full((last - first, len(parts) * (k + 1)), -1, dtype=np.int64)
            for j, (r, d, i) in enumerate(parts):
                D[r - first, j * (k + 1):(j + 1) * (k + 1)] = d
                I[r - first, j * (k + 1):(j + 1) * (k + 1)] = i
            D, I = _merge_shards(D, I, k + 1)
        idx[first:last], sim[first:last] = _drop_self(D, I, np.arange(first, last), k)
        parts.clear()
        if progress and n > ROW_BLOCK:
            progress("knn graph (search)", last, n)

    for rows, D, I in runner.map_sharded(make_worker, shard_data, _graph_block, items()):
        if parts and rows[0] // ROW_BLOCK != parts[0][0][0] // ROW_BLOCK:
            finish()  # results come in order: a new block means the last one is complete
        parts.append((rows, D, I))
    if parts:
        finish()
    routes = None  # type: ignore[assignment]
    del shard_data, empty
    ivf.parallel_mode = 0  # the saved index searches new items the default way
    return idx, sim, recall, chosen, pool


def build_knn_graph(
    X: NDArray[np.float32],
    n_neighbors: int = N_NEIGHBORS,
    *,
    method: GraphMethod = "auto",
    exact_max_rows: int = EXACT_MAX_ROWS,
    nprobe: int | None = None,
    target_recall: float = 0.95,
    random_state: int = 0,
    normalized: bool = False,
    progress: Progress | None = None,
    engine: Engine | None = None,
    shards: int | None = None,
) -> KnnGraph:
    """Build the cosine kNN graph of `X`.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_dims), float32
        Finite vectors (see :func:`labelseed._validation.check_embeddings`).
    n_neighbors : int, default=15
        Neighbours per row, the row itself excluded.
    method : {"auto", "exact", "ivf"}, default="auto"
        ``"auto"`` is exact up to `exact_max_rows` rows and IVF above.
    nprobe : int, optional
        IVF lists probed per row. By default it is tuned per data set: the
        smallest that reaches `target_recall` (+0.01) on 128 sampled rows against
        their exact neighbours (text embeddings need more probes than images).
    target_recall : float, default=0.95
        Recall@k the tuned IVF search aims for.
    random_state : int, default=0
        Seeds the IVF k-means and its training sample.
    normalized : bool, default=False
        Set when `X` rows already have unit L2 norm, to skip a copy.
    engine : Engine, optional
        Where the IVF search of every row runs (:func:`labelseed.engines.get_engine`; default
        this process): blocks of rows, each worker holding the IVF lists of one shard.
    shards : int, optional
        Parts the IVF lists are split into, one per worker (default: the engine's, 1 in this
        process, one per actor on Ray). The graph is the same on every engine for the same
        number of shards, and for any number where the lists hold full vectors (see :func:`_ivf`).

    Returns
    -------
    KnnGraph
    """
    n_neighbors = check_int(n_neighbors, "n_neighbors", 1)
    if method not in ("auto", "exact", "ivf"):
        raise InputError(f"`graph_method` must be 'auto', 'exact' or 'ivf'; got {method!r}.")
    n = X.shape[0]
    use = method if method != "auto" else ("exact" if n <= exact_max_rows else "ivf")
    k = min(n_neighbors, max(n - 1, 0))
    log.info("building %s kNN graph: %d rows, k=%d", use, n, k)
    if use == "exact" or k == 0:
        Xn = X if normalized else normalize_rows(X)
        idx, sim = _topk_exact(Xn, Xn, k, _block_rows(n), progress, self_rows=np.arange(n))
        use = "exact"
    else:
        unit = _UnitRows(X, normalized)
        idx, sim, recall, used, index = _ivf(unit, k, nprobe, target_recall, random_state, progress, engine, shards)
        return KnnGraph(indices=idx, similarities=sim, method=use, recall_estimate=recall, nprobe=used, index=index)
    return KnnGraph(indices=idx, similarities=sim, method=use)


def graph_cache_key(X: NDArray[np.float32], n_neighbors: int, **params: object) -> str:
    """A key for caching the graph of `X`: a hash of its float32 bytes and the graph parameters."""
    h = hashlib.blake2b(digest_size=16)
    # the defaults that shape a graph are part of the key, so a changed default rebuilds it
    defaults = (GRAPH_FORMAT, EXACT_MAX_ROWS, SAMPLE_ROWS, NPROBE_STEPS, IVF_NITER, IVF_TRAIN_PER_LIST, REDUCED_DIMS,
                K_FACTOR, REDUCED_RECALL, SIMILARITY_GAIN_STOP, REDUCED_MIN_ROWS)
    h.update(repr((defaults, X.shape, str(X.dtype), n_neighbors, sorted(params.items()))).encode())
    step = 1 << 16
    for start in range(0, X.shape[0], step):
        h.update(np.ascontiguousarray(X[start : start + step]).data)
    return h.hexdigest()


def cached_knn_graph(
    X: NDArray[np.float32], n_neighbors: int, cache_dir: str | Path, progress: Progress | None = None,
    engine: Engine | None = None, **params: object,
) -> tuple[KnnGraph, bool]:
    """:func:`build_knn_graph`, reusing a graph saved under `cache_dir` for the same vectors
    and parameters (an interrupted or repeated run skips the expensive step). The engine is not
    part of the key, its number of shards is (where above 1): the graph depends on that alone.

    Returns ``(graph, reused)``.
    """
    shards = engine.shards if engine is not None else 1
    key_params = {**params, "shards": shards} if shards > 1 else params
    path = Path(cache_dir) / f"graph-{graph_cache_key(X, n_neighbors, **key_params)}.npz"
    if path.exists():
        try:
            graph = KnnGraph.load(path)
            if graph.n_rows == X.shape[0]:
                log.info("reusing kNN graph from %s", path)
                return graph, True
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # damaged: rebuild
            log.warning("ignoring unreadable graph cache %s: %s", path, exc)
    graph = build_knn_graph(X, n_neighbors, progress=progress, engine=engine, **params)  # type: ignore[arg-type]
    try:
        graph.save(path)
    except OSError as exc:  # the cache is an optimisation: a run never fails for it
        log.warning("could not cache the kNN graph in %s (%s); the next run will build it again", cache_dir,
                    exc.strerror or exc)
    return graph, False
