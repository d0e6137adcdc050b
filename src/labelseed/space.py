"""The space the kNN graph is built in: the embeddings as given, or whitened by the pool's own
covariance (no labels involved).

Pixel vectors and image-model features spend most of their variance on a few directions
(brightness, size, background) that say little about the class; cosine neighbours then follow
those directions. Shrinking them, ``x -> (x - mean) C^(-strength / 2)`` on unit rows with C the
pool's Ledoit-Wolf covariance, gave label spreading better neighbours there (bench/task_space.py:
Fashion-MNIST 20k at 40 labels per class 0.389 -> 0.427 certified, 70k 0.177 -> 0.240;
EfficientNet-Lite0 features +1.6 to +3.4 points) and worse ones on MiniLM text and on digits.
The map is fitted on the pool alone, so it needs no cross-validation; only the graph uses it
(the linear classifier keeps the rows as given, which measured better).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from .exceptions import InputError
from .graph import KnnGraph, _inverse_norms, normalize_rows

#: Spaces a graph can be built in.
GRAPH_SPACES = ("raw", "whitened")
#: What a run's ``graph_space`` may be (``AutoLabeler(graph_space=...)``, ``--graph-space``):
#: a space, or ``"auto"`` for both, chosen out of fold.
GRAPH_SPACE_SETTINGS = (*GRAPH_SPACES, "auto")
#: How far the whitening goes: 1 whitens fully, 0 not at all (0.5 measured best of 0.25/0.5/1).
WHITEN_STRENGTH = 0.5
#: Rows the covariance is estimated from (a sample: the map costs the same at 1M rows as at 20k).
SAMPLE_ROWS = 20_000
#: Rows mapped at a time (bounds the float64 temporary to this many rows x n_dims).
_CHUNK = 16_384


@dataclass(frozen=True)
class SpaceMap:
    """An affine map applied to unit rows before the graph, then rows scaled to unit length.

    Attributes
    ----------
    mean : ndarray of shape (n_dims,), float32
        Subtracted from each unit row.
    matrix : ndarray of shape (n_dims, n_dims), float32
        Symmetric; multiplies the centred rows.
    """

    mean: NDArray[np.float32]
    matrix: NDArray[np.float32]

    @property
    def n_dims(self) -> int:
        return int(self.mean.shape[0])

    def transform(self, X: NDArray[np.floating], name: str = "X") -> NDArray[np.float32]:
        """Unit rows of the mapped `X` (a new float32 array of X's shape)."""
        if X.shape[1] != self.n_dims:
            raise InputError(f"`{name}` has {X.shape[1]} dimensions but the graph space was fitted on {self.n_dims}.")
        out = np.empty(X.shape, dtype=np.float32)
        matrix = self.matrix.astype(np.float64)
        for s in range(0, X.shape[0], _CHUNK):
            block = np.asarray(X[s:s + _CHUNK], dtype=np.float32)
            block = block * _inverse_norms(block, name)[:, None]
            block -= self.mean
            # in float64, rounded once: a float32 product's last bits depend on the number of rows
            # and BLAS's threads, and a new item must map to the same row in any batch or worker
            out[s:s + _CHUNK] = np.asarray(block, dtype=np.float64) @ matrix
        zero = ~np.any(out != 0, axis=1)
        if zero.any():  # a row equal to the pool mean has no direction left: it keeps its own
            out[zero] = np.asarray(X[zero], dtype=np.float32)
        out *= _inverse_norms(out, name)[:, None]  # in place: one n x d array at a time
        return out


def check_graph_space(graph_space: object, method: str) -> tuple[str, ...]:
    """The spaces whose graphs a run with these settings builds (both for ``"auto"``), or one
    line saying what is wrong with them."""
    if graph_space not in GRAPH_SPACE_SETTINGS:
        raise InputError(f"`graph_space` must be 'raw', 'whitened' or 'auto'; got {graph_space!r}.")
    if graph_space == "auto" and method != "ensemble":
        raise InputError(f"`graph_space='auto'` chooses the graph with the ensemble's out-of-fold log-loss; "
                         f"use method='ensemble', or graph_space 'raw' or 'whitened' with method={method!r}.")
    return GRAPH_SPACES if graph_space == "auto" else (str(graph_space),)


def ledoit_wolf_covariance(Xc: NDArray[np.float64]) -> NDArray[np.float64]:
    """The Ledoit-Wolf shrunk covariance of centred rows `Xc` (n_rows, n_dims), as
    :func:`sklearn.covariance.ledoit_wolf` with ``assume_centered=True`` gives it, from one
    matrix product: the shrinkage's sum over rows of ``||x x^T - S||^2`` is
    ``sum ||x||^4 - n ||S||^2``, so no second d x d product over the rows is needed.
    """
    n, d = Xc.shape
    S = Xc.T @ Xc / n
    mu = float(np.trace(S)) / d
    sq = np.einsum("ij,ij->i", Xc, Xc)
    delta_ = float(np.sum(S * S))  # ||S||_F^2
    beta = (float(sq @ sq) / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * float(np.trace(S)) + d * mu ** 2) / d
    shrinkage = 0.0 if beta == 0 or delta == 0 else min(beta, delta) / delta
    out = (1.0 - shrinkage) * S
    out.flat[:: d + 1] += shrinkage * mu
    return out


def fit_space_map(X: NDArray[np.floating], graph_space: str, *,
                  random_state: int = 0) -> SpaceMap | None:
    """The map of `graph_space` fitted on the pool `X` (n_rows, n_dims); None for ``"raw"``.

    The covariance is the Ledoit-Wolf estimate on at most :data:`SAMPLE_ROWS` unit rows drawn with
    `random_state`, so the same pool and seed always give the same map.
    """
    if graph_space not in GRAPH_SPACES:
        raise InputError(f"`graph_space` must be 'raw' or 'whitened'; got {graph_space!r}.")
    if graph_space == "raw":
        return None
    n = X.shape[0]
    take = (np.sort(np.random.default_rng(random_state).choice(n, SAMPLE_ROWS, replace=False))
            if n > SAMPLE_ROWS else np.arange(n))
    sample = normalize_rows(np.asarray(X[take], dtype=np.float32)).astype(np.float64)
    mean = sample.mean(axis=0)
    sample -= mean
    w, V = np.linalg.eigh(ledoit_wolf_covariance(sample))
    # the spectrum's floor keeps a rank-deficient pool (fewer rows than dims, constant columns) finite
    w = np.maximum(w, max(float(w.max()), 1e-12) * 1e-6)
    matrix = (V * w ** (-0.5 * WHITEN_STRENGTH)) @ V.T
    return SpaceMap(mean.astype(np.float32), matrix.astype(np.float32))


def graphs_in_spaces(
    X: NDArray[np.float32], spaces: tuple[str, ...], build: Callable[[NDArray[np.float32], bool], KnnGraph], *,
    given: Mapping[str, KnnGraph] | None = None, space_map: SpaceMap | None = None, random_state: int = 0,
) -> tuple[dict[str, KnnGraph], SpaceMap | None]:
    """The kNN graph of the pool `X` (n_rows, n_dims) in each of `spaces`, and the whitened map.

    The one place a run maps its pool: for each space the map is fitted (or `space_map` taken),
    the pool mapped, and ``build(rows, normalized)`` called on the mapped rows, whose copy is let
    go before the next space (at 1M x 384 it is 1.5 GB). `normalized` says the rows have unit
    length (true of every mapped space). A graph in `given` is taken as is; the map is still
    fitted, since new items need it.

    Returns
    -------
    graphs : dict of str to KnnGraph
        By space, in the order of `spaces`.
    space_map : SpaceMap or None
        The map of the non-raw space; None when `spaces` holds only ``"raw"``.
    """
    given = given or {}
    graphs: dict[str, KnnGraph] = {}
    found = None
    for name in spaces:
        m = None if name == "raw" else (space_map if space_map is not None else
                                        fit_space_map(X, name, random_state=random_state))
        found = m or found
        if name in given:
            graphs[name] = given[name]
            continue
        rows = X if m is None else m.transform(X)
        graphs[name] = build(rows, m is not None)
        del rows
    return graphs, found
