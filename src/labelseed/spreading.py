"""Label spreading on a sparse graph (Zhou et al. 2004) and self-training.

Label spreading solves ``F = (1 - alpha) (I - alpha S)^-1 Y`` with
``S = D^-1/2 W D^-1/2``: the fixed point scikit-learn's ``LabelSpreading``
iterates towards. Here it is solved sparsely in float32, by conjugate gradient
for symmetric graphs (all label columns at once, so every cross-validation fold
shares one solve) or by the plain fixed-point iteration for any graph.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from ._validation import check_fraction, check_int
from .exceptions import InputError

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

#: Label spreading's clamping factor: the one default of every entry point (bench/README.md).
ALPHA = 0.9

#: Label columns solved together by block CG (bounds memory at about 5 * n * 64 floats).
COLUMN_BLOCK = 64
#: Bytes the conjugate-gradient buffers of one column block may take (six (n, block) float32
#: matrices): at 1M rows the block narrows to 32 columns, so spreading 6 label sets of 20
#: classes stays near 0.8 GB instead of 1.5 GB (same total work: bench/README.md, "Scale").
CG_BUFFER_BYTES = 800 << 20


def _column_block(n_rows: int) -> int:
    """Columns solved together: up to :data:`COLUMN_BLOCK`, fewer on large pools (memory)."""
    return int(max(8, min(COLUMN_BLOCK, CG_BUFFER_BYTES // max(1, 6 * 4 * n_rows))))


@dataclass(frozen=True)
class Scores:
    """Per-class scores for every row.

    Attributes
    ----------
    distribution : ndarray of shape (n_rows, n_classes), float32
        Scores normalised to sum to 1 per row; all zeros for a row with no path
        to any labeled row (it abstains).
    predicted : ndarray of shape (n_rows,), int64
        Arg-max class code, or -1 for an abstaining row.
    confidence : ndarray of shape (n_rows,), float32
        The largest normalised score (0 for an abstaining row).
    """

    distribution: NDArray[np.float32]
    predicted: NDArray[np.int64]
    confidence: NDArray[np.float32]

    @classmethod
    def from_unnormalized(cls, F: NDArray[np.floating]) -> "Scores":
        F = np.asarray(F, dtype=np.float32)
        mass = F.sum(axis=1)
        reached = mass > 0
        dist = np.zeros_like(F)
        np.divide(F, mass[:, None], out=dist, where=reached[:, None])
        predicted = dist.argmax(axis=1)
        confidence = np.take_along_axis(dist, predicted[:, None], axis=1)[:, 0]
        predicted[~reached] = -1
        return cls(distribution=dist, predicted=predicted.astype(np.int64, copy=False), confidence=confidence)


def normalized_affinity(W: sparse.spmatrix) -> sparse.csr_matrix:
    """``S = D^-1/2 W D^-1/2`` (CSR, float32) for a symmetric affinity `W`.

    Rows with no edges get degree 0 and stay all-zero (they can only abstain).
    """
    W = sparse.csr_matrix(W, dtype=np.float32)
    deg = np.asarray(W.sum(axis=1)).ravel()
    inv = np.zeros_like(deg)
    np.divide(1.0, np.sqrt(deg), out=inv, where=deg > 0)
    inv = inv.astype(np.float32)
    # scale the stored entries in place of two sparse products D @ W @ D (same float32 order)
    rows = np.repeat(np.arange(W.shape[0]), np.diff(W.indptr))
    data = inv[rows] * W.data
    data *= inv[W.indices]
    S = sparse.csr_matrix((data, W.indices.copy(), W.indptr.copy()), shape=W.shape)
    S.eliminate_zeros()  # as the products drop entries that scale to 0
    return S


def one_hot(codes: NDArray[np.int64], n_classes: int) -> NDArray[np.float32]:
    """(n_rows, n_classes) float32 indicator of labeled rows; -1 rows are all zero."""
    Y = np.zeros((len(codes), n_classes), dtype=np.float32)
    lab = np.flatnonzero(codes >= 0)
    Y[lab, codes[lab]] = 1.0
    return Y


def one_hot_sets(code_sets: list[NDArray[np.int64]], n_classes: int) -> sparse.csc_matrix:
    """The indicators of several label vectors side by side, sparse: (n_rows, len(sets) *
    n_classes). A few hundred labels in a pool of millions: the dense matrix would be mostly
    zeros (480 MB for 6 sets of 20 classes at 1M rows); :func:`propagate` densifies a block
    of columns at a time."""
    rows, cols = [], []
    for i, codes in enumerate(code_sets):
        lab = np.flatnonzero(codes >= 0)
        rows.append(lab)
        cols.append(i * n_classes + codes[lab])
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sparse.csc_matrix((np.ones(len(r), dtype=np.float32), (r, c)),
                             shape=(len(code_sets[0]), len(code_sets) * n_classes))


class _ParallelSpMM:
    """``S @ P`` split into row blocks on threads (scipy releases the GIL in its kernels)."""

    def __init__(self, S: sparse.csr_matrix, n_threads: int | None = None) -> None:
        n_threads = n_threads or min(4, os.cpu_count() or 1)
        n = S.shape[0]
        self.bounds = np.linspace(0, n, n_threads + 1).astype(int) if n >= 20_000 else np.array([0, n])
        self.blocks = [S[a:b] for a, b in zip(self.bounds[:-1], self.bounds[1:])]
        self.pool = ThreadPoolExecutor(len(self.blocks)) if len(self.blocks) > 1 else None

    def __call__(self, P: NDArray[np.float32], out: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.pool is None:
            out[...] = self.blocks[0] @ P
            return out

        def part(i: int) -> None:
            out[self.bounds[i] : self.bounds[i + 1]] = self.blocks[i] @ P

        list(self.pool.map(part, range(len(self.blocks))))
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _block_cg(
    S: sparse.csr_matrix, B: NDArray[np.float32], alpha: float, tol: float, max_iter: int,
) -> tuple[NDArray[np.float32], int]:
    """Solve (I - alpha S) X = B column-wise by conjugate gradient (S symmetric)."""
    spmm = _ParallelSpMM(S)
    try:
        return _block_cg_loop(spmm, B, alpha, tol, max_iter)
    finally:
        spmm.close()


def _block_cg_loop(
    spmm: "_ParallelSpMM", B: NDArray[np.float32], alpha: float, tol: float, max_iter: int,
) -> tuple[NDArray[np.float32], int]:
    # every (n, columns) buffer is allocated once: a fresh multi-MB temporary per step
    # would be mapped and page-faulted again on each iteration
    X = np.zeros_like(B)
    AP = np.empty_like(B)
    T = np.empty_like(B)
    R = B.copy()
    P = R.copy()
    rs = np.einsum("ij,ij->j", R, R)
    stop = (tol**2) * rs
    active = rs > 0
    a = np.zeros_like(rs)
    beta = np.zeros_like(rs)
    it = 0
    for it in range(1, max_iter + 1):
        if not active.any():
            break
        spmm(P, AP)
        AP *= -alpha
        AP += P  # AP = (I - alpha S) P
        pap = np.einsum("ij,ij->j", P, AP)
        a[:] = 0
        np.divide(rs, pap, out=a, where=active & (pap > 0))
        np.multiply(P, a, out=T)
        X += T
        np.multiply(AP, a, out=T)
        R -= T
        rs_new = np.einsum("ij,ij->j", R, R)
        active &= rs_new > stop
        beta[:] = 0
        np.divide(rs_new, rs, out=beta, where=active & (rs > 0))
        P *= beta
        P += R
        rs = rs_new
    return X, it


def propagate(
    S: sparse.csr_matrix,
    Y: NDArray[np.float32] | sparse.spmatrix,
    alpha: float = ALPHA,
    *,
    solver: Literal["cg", "iterate"] = "cg",
    tol: float = 1e-3,
    max_iter: int = 1000,
    progress: Progress | None = None,
    clip: bool = True,
) -> NDArray[np.float32]:
    """Solve ``F = (1 - alpha) (I - alpha S)^-1 Y`` for every column of `Y`.

    Parameters
    ----------
    S : sparse matrix of shape (n_rows, n_rows)
        Normalised affinity (:func:`normalized_affinity`). ``"cg"`` needs it
        symmetric; ``"iterate"`` takes any S with spectral radius <= 1.
    Y : ndarray or sparse matrix of shape (n_rows, n_columns), float32
        Initial label columns; several label sets (e.g. one per fold) may be
        stacked side by side and are solved together (:func:`one_hot_sets`).
    alpha : float in (0, 1), default=0.99
        How far labels spread (scikit-learn's ``alpha`` in LabelSpreading).
    solver : {"cg", "iterate"}, default="cg"
    tol : float, default=1e-3
        Relative residual (cg) or absolute change per iteration, as
        scikit-learn measures it (iterate). 1e-3 gave the same coverage and
        precision as 1e-4 on Fashion-MNIST (within 0.5 points) in 20% less time.
    max_iter : int, default=1000
    clip : bool, default=True
        Set tiny negative round-off to 0 (leave it off for parts that are summed later).

    Returns
    -------
    F : ndarray of shape (n_rows, n_columns), float32
        Unnormalised scores; rows with no path to a labeled row are exactly 0.
    """
    if not 0 < alpha < 1:
        raise InputError(f"`alpha` must be in (0, 1); got {alpha!r}.")
    check_fraction(tol, "tol")
    check_int(max_iter, "max_iter", 1)
    S = sparse.csr_matrix(S, dtype=np.float32)
    if solver == "cg":
        # columns in blocks: CG keeps five (n, block) matrices, so memory stays bounded; a sparse
        # Y is densified one block at a time
        F = np.empty(Y.shape, dtype=np.float32)
        Yc: Any = sparse.csc_matrix(Y, dtype=np.float32) if sparse.issparse(Y) else np.ascontiguousarray(Y, np.float32)
        width = _column_block(Y.shape[0])
        for start in range(0, Y.shape[1], width):
            cols = slice(start, start + width)
            # C order: a column-major block would make every CG buffer column-major (3x slower)
            block = Yc[:, cols].toarray(order="C") if sparse.issparse(Yc) else Yc[:, cols]
            X, n_iter = _block_cg(S, (1.0 - alpha) * block, alpha, tol, max_iter)
            log.debug("block CG: %d columns, %d iterations", X.shape[1], n_iter)
            F[:, cols] = np.maximum(X, 0.0) if clip else X  # tiny negative round-off where mass is ~0
            if progress:  # by column block: CG stops long before max_iter, so iterations give no ETA
                progress("label spreading", min(start + width, Y.shape[1]), Y.shape[1])
        return F
    if solver == "iterate":
        Y = Y.toarray() if sparse.issparse(Y) else np.ascontiguousarray(Y, dtype=np.float32)  # type: ignore[union-attr]
        static = (1.0 - alpha) * Y
        F = Y.copy()
        for it in range(max_iter):
            F_new = alpha * (S @ F) + static
            if np.abs(F_new - F).sum() < tol:
                F = F_new
                break
            F = F_new
            if progress:
                progress("label spreading", it + 1, max_iter)
        if progress:  # converged before max_iter: the stage is done
            progress("label spreading", max_iter, max_iter)
        return F.astype(np.float32, copy=False)
    raise InputError(f"`solver` must be 'cg' or 'iterate'; got {solver!r}.")


def spread(
    S: sparse.csr_matrix, codes: NDArray[np.int64], n_classes: int, alpha: float = ALPHA, **kw: object
) -> Scores:
    """Label spreading for one label vector: ``(graph, y) -> scores``."""
    return Scores.from_unnormalized(propagate(S, one_hot(codes, n_classes), alpha, **kw))  # type: ignore[arg-type]


def spread_many(
    S: sparse.csr_matrix,
    code_sets: list[NDArray[np.int64]],
    n_classes: int,
    alpha: float = ALPHA,
    **kw: object,
) -> list[Scores]:
    """Label spreading for several label vectors at once (one sparse solve).

    When the sets are cross-validation folds (every set but the last is the last one with a
    disjoint group of labeled rows hidden), spreading is linear in the labels, so each group's
    own spread is solved once and each fold's scores are the sum of the *other* groups': k
    groups of columns instead of k + 1, and a fold's scores never touch its hidden labels.
    """
    groups = spread_groups(S, code_sets, n_classes, alpha, **kw)
    if groups is None:
        F = propagate(S, one_hot_sets(code_sets, n_classes), alpha, **kw)  # type: ignore[arg-type]
        return [Scores.from_unnormalized(F[:, i * n_classes : (i + 1) * n_classes]) for i in range(len(code_sets))]
    return [Scores.from_unnormalized(spread_without(groups, (f,))) for f in range(len(code_sets) - 1)] + [
        Scores.from_unnormalized(spread_without(groups, ()))]


def spread_groups(
    S: sparse.csr_matrix, code_sets: list[NDArray[np.int64]], n_classes: int, alpha: float = ALPHA, **kw: object,
) -> list[NDArray[np.float32]] | None:
    """Unnormalised spread of each fold's hidden labels (then of the never-hidden rest), or None
    when the sets are not cross-validation folds of the last one (see :func:`spread_many`)."""
    parts = _fold_parts(code_sets)
    if parts is None:
        return None
    G = propagate(S, one_hot_sets(parts, n_classes), alpha, clip=False,
                  **kw)  # type: ignore[arg-type]
    return [G[:, i * n_classes : (i + 1) * n_classes] for i in range(len(parts))]


def spread_without(groups: list[NDArray[np.float32]], hidden: tuple[int, ...],
                   rows: NDArray[np.int64] | None = None) -> NDArray[np.float32]:
    """Spread scores (unnormalised, >= 0) of every label except the folds in `hidden`, for `rows`
    (default: all): spreading is linear in the labels, so they are the sum of the other groups'
    solutions."""
    F = np.zeros_like(groups[0] if rows is None else groups[0][rows])
    for g, part in enumerate(groups):
        if g not in hidden:
            F += part if rows is None else part[rows]
    return np.maximum(F, 0.0, out=F)


def _fold_parts(code_sets: list[NDArray[np.int64]]) -> list[NDArray[np.int64]] | None:
    """Label vectors of each fold's hidden group (then of the never-hidden rest), or None when
    the sets are not folds of the last one."""
    if len(code_sets) < 3:
        return None
    final = code_sets[-1]
    labeled = final >= 0
    seen = np.zeros(len(final), dtype=bool)
    parts = []
    for c in code_sets[:-1]:
        hidden = labeled & (c < 0)
        if seen[hidden].any() or not np.array_equal(c[~hidden], final[~hidden]):
            return None
        seen |= hidden
        parts.append(np.where(hidden, final, -1))
    rest = labeled & ~seen  # labeled rows never held out (e.g. outside a calibrate mask)
    if rest.any():  # an all-zero group would still cost a sparse product per iteration
        parts.append(np.where(rest, final, -1))
    return parts


@dataclass(frozen=True)
class SelfTrainingResult:
    """Outcome of :func:`self_train`.

    Attributes
    ----------
    scores : Scores
        Class probabilities of the final classifier for every row.
    pseudo_labeled : ndarray of shape (n_rows,), bool
        Rows the loop actually accepted as pseudo-labels (never the seed rows).
    n_iter : int
        Self-training rounds run.
    """

    scores: Scores
    pseudo_labeled: NDArray[np.bool_]
    n_iter: int


def self_train(
    X: NDArray[np.float32],
    codes: NDArray[np.int64],
    n_classes: int,
    *,
    threshold: float = 0.9,
    max_iter: int = 10,
    C: float = 1.0,
    random_state: int = 0,
) -> SelfTrainingResult:
    """Self-training with a multinomial logistic regression (calibrated by its log-loss).

    Each round fits on the seed plus the pseudo-labels so far, then accepts the
    unlabeled rows whose top probability is >= `threshold`. Stops when a round
    accepts nothing new. Unlike the talk's ``SelfTrainingClassifier.predict``,
    rows that were never accepted are reported as such (``pseudo_labeled``).

    Every class of the seed must appear in `codes`; `codes` uses -1 for unlabeled.
    """
    from sklearn.linear_model import LogisticRegression

    check_fraction(threshold, "self_training_threshold")
    y = codes.copy()
    pseudo = np.zeros(len(codes), dtype=bool)
    n_iter = 0
    clf = LogisticRegression(C=C, max_iter=300, random_state=random_state)
    for n_iter in range(1, max_iter + 1):
        fit_rows = y >= 0
        clf.fit(X[fit_rows], y[fit_rows])
        pool = np.flatnonzero(~fit_rows)
        if len(pool) == 0:
            break
        proba = clf.predict_proba(X[pool])
        take = proba.max(axis=1) >= threshold
        if not take.any():
            break
        y[pool[take]] = clf.classes_[proba[take].argmax(axis=1)]
        pseudo[pool[take]] = True
    full = np.zeros((len(codes), n_classes), dtype=np.float32)
    full[:, clf.classes_] = clf.predict_proba(X).astype(np.float32)
    return SelfTrainingResult(scores=Scores.from_unnormalized(full), pseudo_labeled=pseudo, n_iter=n_iter)


#: Inverse L2 strength of the linear classifier mixed into the spread scores. 10 gave the
#: most certified coverage of 1, 10 and 100 on Fashion-MNIST and WordNet/MiniLM (bench/README.md).
LINEAR_C = 10.0
#: Rows scored per matrix product when the linear classifier scores the pool (bounds memory).
_LINEAR_CHUNK = 65_536
#: Rows per float64 product in :meth:`LinearModel.probabilities` with ``exact=True``.
_EXACT_CHUNK = 16_384


@dataclass(frozen=True)
class LinearModel:
    """A multinomial logistic regression over L2-normalised rows, as plain arrays.

    Attributes
    ----------
    coef : ndarray of shape (n_classes, n_dims), float32
        Zero rows for classes that had no labeled row.
    intercept : ndarray of shape (n_classes,), float32
        ``-inf`` for classes that had no labeled row (they get probability 0).
    """

    coef: NDArray[np.float32]
    intercept: NDArray[np.float32]

    def probabilities(self, Xn: NDArray[np.float32], scale: NDArray[np.float32] | None = None, *,
                      exact: bool = False) -> NDArray[np.float32]:
        """Class probabilities, shape (n_rows, n_classes), computed in chunks, returned in float32.

        `Xn` holds unit-length rows, or any rows with `scale` their inverse norms (scaled a
        chunk at a time, so no normalised copy of a large pool is made). With `exact`, the
        product is taken in float64 and rounded once, so a row gets the same probabilities in
        any batch: a float32 product's last bits depend on how many rows go in and on BLAS's
        threads. New items (`label --chunk-rows`, Ray workers) are scored that way; the pool,
        scored in one pass, keeps the float32 product (3-5x faster at 20,000 x 384)."""
        out = np.empty((Xn.shape[0], self.coef.shape[0]), dtype=np.float32)
        coef: NDArray[Any] = self.coef.T.astype(np.float64) if exact else self.coef.T
        chunk = _EXACT_CHUNK if exact else _LINEAR_CHUNK
        for s in range(0, Xn.shape[0], chunk):
            block = Xn[s:s + chunk]
            if scale is not None:  # unit rows before the product: a row near 1e20 must not overflow it
                block = block * scale[s:s + chunk, None]
            z = (np.asarray(block, dtype=np.float64) if exact else block) @ coef
            z += self.intercept
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            out[s:s + chunk] = z
        return out


_THREADPOOLS: Any = None


def _one_blas_thread() -> Any:
    """A context with BLAS on one thread. The controller is made once: finding the loaded
    libraries reads the process's memory map, 4 ms a call, as long as a whole small fit."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


def _softmax_regression(X: NDArray[np.float64], y: NDArray[np.int64], n_classes: int,
                        C: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """L2-penalised multinomial logistic regression, scikit-learn's objective and L-BFGS stop.

    Minimises ``mean_i [logsumexp(z_i) - z_i[y_i]] + ||W||^2 / (2 C n)`` with ``z = X W^T + b``
    (intercept unpenalised), as ``LogisticRegression(C=C, solver="lbfgs", max_iter=300)``
    does; two classes get one weight vector (the binomial loss, class 0's logit fixed at 0).
    With fewer rows than dimensions (a seed of a few hundred rows in 384 dimensions) it
    solves in the rows' own span: with ``X^T = Q R``, ``z = R^T (Q^T W^T)``, and the optimum
    and every L-BFGS iterate from 0 stay in that span (each gradient is a combination of
    rows), so the answer is the same at a fraction of the cost, without scikit-learn's
    per-call checks (16 fits per run in the default engine).

    Returns ``(W, b)``: shape (n_classes, n_dims) and (n_classes,), or (1, n_dims) and (1,)
    for two classes.
    """
    from scipy.optimize import minimize

    n, d = X.shape
    Q = None
    if n < d:
        Q, R = np.linalg.qr(X.T)  # reduced: Q (d, n), R (n, n)
        X = R.T
    r = X.shape[1]
    binary = n_classes == 2
    k = 1 if binary else n_classes
    Y = np.zeros((n, n_classes))
    Y[np.arange(n), y] = 1.0
    lam = 1.0 / (C * n)

    def loss_grad(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        W, b = theta[:k * r].reshape(k, r), theta[k * r:]
        Z = X @ W.T + b
        if binary:
            Z = np.column_stack([np.zeros(n), Z])
        top = Z.max(axis=1, keepdims=True)
        E = np.exp(Z - top)
        S = E.sum(axis=1, keepdims=True)
        loss = float((np.log(S[:, 0]) + top[:, 0] - (Z * Y).sum(axis=1)).sum()) / n + 0.5 * lam * float((W * W).sum())
        G = E / S - Y
        if binary:
            G = G[:, 1:]
        grad = np.concatenate([(G.T @ X / n + lam * W).ravel(), G.sum(axis=0) / n])
        return loss, grad

    res = minimize(loss_grad, np.zeros(k * (r + 1)), method="L-BFGS-B", jac=True,
                   options={"maxiter": 300, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps})
    W, b = res.x[:k * r].reshape(k, r), res.x[k * r:]
    if Q is not None:
        W = W @ Q.T
    return W, b


def fit_linear(Xn: NDArray[np.float32], codes: NDArray[np.int64], n_classes: int, *, C: float = LINEAR_C,
               random_state: int = 0, scale: NDArray[np.float32] | None = None) -> LinearModel:
    """Fit a multinomial logistic regression on the labeled rows of `codes` (-1 = unlabeled).

    Parameters
    ----------
    Xn : ndarray of shape (n_rows, n_dims), float32
        L2-normalised rows (or any rows, with `scale` their inverse norms).
    codes : ndarray of shape (n_rows,), int64
    n_classes : int
    C : float, default=LINEAR_C
        Inverse L2 strength, as scikit-learn's ``LogisticRegression(C=...)``.
    random_state : int, default=0
        Unused: the solver (:func:`_softmax_regression`) is deterministic. Kept so that callers
        written for scikit-learn's estimator need no change.
    scale : ndarray of shape (n_rows,), float32, optional

    Returns
    -------
    LinearModel
        With a single labeled class every row gets that class with probability 1; with none,
        every class is equally likely.
    """
    lab = np.flatnonzero(codes >= 0)
    present = np.unique(codes[lab])
    coef = np.zeros((n_classes, Xn.shape[1]), dtype=np.float32)
    intercept = np.full(n_classes, -np.inf, dtype=np.float32)
    if len(present) == 0:  # nothing to learn from: every class equally likely
        return LinearModel(coef, np.zeros(n_classes, dtype=np.float32))
    if len(present) == 1:
        intercept[present[0]] = 0.0
        return LinearModel(coef, intercept)
    # A few hundred rows: BLAS threads only fight each other here (10x slower on 2 cores).
    with _one_blas_thread():
        Xl = np.asarray(Xn[lab] if scale is None else Xn[lab] * scale[lab, None], dtype=np.float64)
        W, b = _softmax_regression(Xl, np.searchsorted(present, codes[lab]), len(present), C)
    if len(present) == 2:  # one weight vector, as scikit-learn's binary logistic regression: class 0 at 0
        coef[present[1]] = W[0]
        intercept[present] = [0.0, b[0]]
    else:
        coef[present] = W
        intercept[present] = b
    return LinearModel(coef, intercept)


def mix_scores(spread_scores: Scores, linear: NDArray[np.float32], weight: float = 0.5) -> Scores:
    """``(1 - weight) * spread + weight * linear`` per row; a row spreading never reached
    takes the linear classifier's probabilities alone."""
    F = spread_scores.distribution * np.float32(1 - weight)
    F += np.float32(weight) * linear
    return Scores.from_unnormalized(F)


#: Weights of the linear classifier tried by :class:`ensemble_scorer` (the first wins ties).
LINEAR_WEIGHTS = (0.5, 0.25, 0.75, 0.0)


class ensemble_scorer:  # noqa: N801  (used like a function: scorer = ensemble_scorer(...); scorer(code_sets))
    """Scores for several label vectors: label spreading, mixed with a linear classifier when
    `Xn` is given. Each linear model is trained on its own label vector only, so a
    cross-validation fold's scores never see the rows it hides.

    The mixing weight is chosen among :data:`LINEAR_WEIGHTS` by the out-of-fold log-loss of the
    rows the sets hide (a proper scoring rule, one number per weight): on digits, where the
    graph alone is best, it keeps the graph; on text embeddings it leans on the classifier.
    With several candidate graphs (`S` a list: the same rows' graphs in different spaces), the
    graph is chosen with the weight, by the same log-loss. With no hidden rows (not
    cross-validation sets) the weight is 0.5 and the graph the first. A fold's scores mix in
    its classifier only at the rows the fold hides (all that cross-validation reads of them);
    at the other rows they are spreading alone.

    Parameters
    ----------
    S : sparse matrix of shape (n_rows, n_rows), or a list of them
        Normalised affinity (:func:`normalized_affinity`); a list offers several graphs to
        choose from (the first wins ties; only with `Xn`).
    Xn : ndarray of shape (n_rows, n_dims), float32, or None
        L2-normalised rows for the linear classifier (or any rows, with `scale` their inverse
        norms); None for spreading alone.
    n_classes : int
    alpha : float

    Attributes
    ----------
    weight : float
        The linear classifier's weight in the last call (0 without `Xn`).
    graph : int
        The graph (position in `S`) of the last call's final set.
    spread_runs : list of Scores or None
        The scores of spreading alone for every label vector (when a weight was learned).
    last_linear : LinearModel or None
        Linear classifier of the last label vector scored.
    set_spread : list of Scores
        Spreading alone, for every label vector of the last call.
    set_linear : list of LinearModel or None
        The linear classifier of every label vector (None for spreading alone).
    set_weight : list of float
        The weight each label vector's scores gave its classifier.
    set_graph : list of int
        The graph each label vector's scores spread on.
    """

    def __init__(self, S: sparse.csr_matrix | list[sparse.csr_matrix], Xn: NDArray[np.float32] | None,
                 n_classes: int, alpha: float, *, random_state: int = 0, progress: Progress | None = None,
                 scale: NDArray[np.float32] | None = None) -> None:
        self.graphs = list(S) if isinstance(S, (list, tuple)) else [S]
        if len(self.graphs) > 1 and Xn is None:
            raise ValueError("choosing among several graphs needs the linear classifier's rows (`Xn`)")
        self.S, self.Xn, self.n_classes, self.alpha, self.scale = self.graphs[0], Xn, n_classes, alpha, scale
        self.random_state, self.progress = random_state, progress
        self.weight = 0.0
        self.graph = 0
        self.spread_runs: list[Scores] | None = None
        self.set_spread: list[Scores] = []
        self.set_linear: list[LinearModel] | None = None
        self.set_weight: list[float] = []
        self.set_graph: list[int] = []

    @property
    def last_linear(self) -> LinearModel | None:
        return self.set_linear[-1] if self.set_linear else None

    def __call__(self, code_sets: list[NDArray[np.int64]]) -> list[Scores]:
        self.spread_runs = None
        self.set_linear = None
        self.graph = 0
        self.set_graph = [0] * len(code_sets)
        groups = None if self.Xn is None else spread_groups(self.S, code_sets, self.n_classes, self.alpha,
                                                            progress=self.progress)
        if groups is None:  # spreading alone, or sets that are not folds: no weight can be learned out of fold
            runs = spread_many(self.S, code_sets, self.n_classes, self.alpha, progress=self.progress)
            self.set_spread = runs
            if self.Xn is None:
                self.weight = 0.0
                self.set_weight = [0.0] * len(runs)
                return runs
            self.weight = LINEAR_WEIGHTS[0]
            self.set_weight = [self.weight] * len(runs)
            self.set_linear = [fit_linear(self.Xn, codes, self.n_classes, random_state=self.random_state,
                                          scale=self.scale) for codes in code_sets]
            return [mix_scores(r, model.probabilities(self.Xn, self.scale), self.weight)
                    for r, model in zip(runs, self.set_linear)]
        per_graph = [groups] + [spread_groups(S, code_sets, self.n_classes, self.alpha, progress=self.progress)
                                for S in self.graphs[1:]]
        return self._nested(code_sets, per_graph)  # type: ignore[arg-type]

    def _nested(self, code_sets: list[NDArray[np.int64]], per_graph: list[list[NDArray[np.float32]]]) -> list[Scores]:
        """Fold f's weight (and graph) is chosen on the other folds' rows, scored by models that saw
        neither fold f nor the scored fold (spreading: a sum of group solutions; the linear
        classifier: one fit per pair of folds), so no fold's scores depend on its own labels in
        any way. The final set's choice is made on every fold's out-of-fold rows."""
        assert self.Xn is not None
        Xn, k, final, scale = self.Xn, self.n_classes, code_sets[-1], self.scale

        def proba(model: LinearModel, rows: NDArray[np.int64] | None = None) -> NDArray[np.float32]:
            if rows is None:
                return model.probabilities(Xn, scale)
            return model.probabilities(Xn[rows], None if scale is None else scale[rows])
        n_folds = len(code_sets) - 1
        hidden = [np.flatnonzero((final >= 0) & (c < 0)) for c in code_sets[:-1]]
        fits = 0
        total = n_folds + 1 + n_folds * (n_folds - 1) // 2

        def linear(drop: tuple[int, ...]) -> LinearModel:
            nonlocal fits
            codes = final.copy()
            for f in drop:
                codes[hidden[f]] = -1
            model = fit_linear(Xn, codes, k, random_state=self.random_state, scale=scale)
            fits += 1
            if self.progress:
                self.progress("linear classifier", fits, total)
            return model

        def spreads(drop: tuple[int, ...], rows: NDArray[np.int64]) -> list[NDArray[np.float64]]:
            return [spread_without(groups, drop, rows).astype(np.float64) for groups in per_graph]

        single = [linear((f,)) for f in range(n_folds)]
        # scores of fold g's rows with folds f and g hidden (f == g: fold g hidden alone), on every graph
        pieces: dict[tuple[int, int], tuple[list[NDArray[np.float64]], NDArray[np.float64]]] = {}
        for g in range(n_folds):
            rows = hidden[g]
            pieces[g, g] = (spreads((g,), rows), proba(single[g], rows).astype(np.float64))
        for f in range(n_folds):
            for g in range(f + 1, n_folds):
                model = linear((f, g))
                for a, b in ((f, g), (g, f)):  # fold b's rows, for fold a's choice: only those rows are summed
                    rows = hidden[b]
                    pieces[a, b] = (spreads((f, g), rows), proba(model, rows).astype(np.float64))

        def choose(keys: list[tuple[int, int]]) -> tuple[int, float]:
            keys = [key for key in keys if len(hidden[key[1]])]
            if not keys:
                return 0, LINEAR_WEIGHTS[0]
            y = np.concatenate([final[hidden[b]] for _, b in keys])
            A = [np.concatenate([pieces[key][0][s] for key in keys]) for s in range(len(per_graph))]
            B = np.concatenate([pieces[key][1] for key in keys])
            return _best_mix(A, B, y, k)

        # the caller may still prefer spreading alone (AutoLabeler: what certifies more); even with a
        # final weight of 0 the folds' weights, chosen on other rows, may differ
        choices = [choose([(f, g) for g in range(n_folds) if g != f]) for f in range(n_folds)]
        self.set_graph = [c[0] for c in choices]
        self.set_weight = [c[1] for c in choices]
        # each fold's spread over the whole pool, on its graph, summed once: its scores, its own
        # rows' piece and the caller's spreading-alone option all read it
        spread_runs = self.spread_runs = [Scores.from_unnormalized(spread_without(per_graph[s], (f,)))
                                          for f, s in enumerate(self.set_graph)]

        def fold_scores(f: int) -> Scores:
            # cross-validation reads fold f's scores only at the rows it hides: the classifier is
            # evaluated there (elsewhere the scores are spreading alone, which no caller reads)
            # instead of over the whole pool, five times (a fifth to a third of the stage at 20,000 x 384)
            spread, rows = spread_runs[f], hidden[f]
            mixed = mix_scores(Scores(spread.distribution[rows], spread.predicted[rows], spread.confidence[rows]),
                               proba(single[f], rows), self.set_weight[f])
            dist, pred, conf = spread.distribution.copy(), spread.predicted.copy(), spread.confidence.copy()
            dist[rows], pred[rows], conf[rows] = mixed.distribution, mixed.predicted, mixed.confidence
            return Scores(dist, pred, conf)

        out = [fold_scores(f) for f in range(n_folds)]
        self.graph, self.weight = choose([(g, g) for g in range(n_folds)])
        final_spread, final_linear = Scores.from_unnormalized(spread_without(per_graph[self.graph], ())), linear(())
        self.spread_runs.append(final_spread)
        self.set_spread = self.spread_runs
        self.set_linear = [*single, final_linear]
        self.set_weight.append(self.weight)
        self.set_graph.append(self.graph)
        out.append(mix_scores(final_spread, proba(final_linear), self.weight))
        return out


def _best_mix(spreads: list[NDArray[np.float64]], linear: NDArray[np.float64], y: NDArray[np.int64],
              n_classes: int) -> tuple[int, float]:
    """The (graph, weight of :data:`LINEAR_WEIGHTS`) whose mix has the lowest log-loss on rows with
    true codes `y` (`spreads`: each graph's spread scores, unnormalised; a row no label reached
    takes the classifier's probabilities, as in :func:`mix_scores`). Ties go to the first graph,
    then to the first weight."""
    idx = np.arange(len(y))
    best, best_loss = (0, LINEAR_WEIGHTS[0]), np.inf
    for s, spread in enumerate(spreads):
        mass = spread.sum(axis=1, keepdims=True)
        A = np.where(mass > 0, spread / np.where(mass > 0, mass, 1.0), linear)  # as mix_scores: the classifier alone
        losses = []
        for w in LINEAR_WEIGHTS:
            p_true = (1 - w) * A[idx, y] + w * linear[idx, y]
            losses.append(float(-np.log(np.clip(p_true, 1e-6, 1.0)).mean()))
        log.debug("graph %d: linear weight log-losses %s", s, dict(zip(LINEAR_WEIGHTS, losses)))
        i = int(np.argmin(losses))
        if losses[i] < best_loss:
            best, best_loss = (s, LINEAR_WEIGHTS[i]), losses[i]
    return best


#: Rows whose neighbours' scores are gathered at a time (bounds the rows x k x classes temporary).
_NEIGHBOUR_CHUNK = 32_768


def neighbour_scores(indices: NDArray[np.int64], similarities: NDArray[np.float32],
                     spread: NDArray[np.floating]) -> Scores:
    """The inductive spreading score of rows outside the graph: the similarity-weighted mean of
    their nearest pool rows' spread distributions.

    Parameters
    ----------
    indices : ndarray of shape (n_items, k), int
        Each item's nearest pool rows (-1 where it has fewer).
    similarities : ndarray of shape (n_items, k), float32
        Cosine similarities to them (clipped at 0, as the graph's edge weights are).
    spread : ndarray of shape (n_pool, n_classes)
        The pool rows' spread distributions.
    """
    m, n_classes = indices.shape[0], spread.shape[1]
    F = np.empty((m, n_classes), dtype=np.float32)
    for s in range(0, m, _NEIGHBOUR_CHUNK):
        idx = indices[s:s + _NEIGHBOUR_CHUNK]
        w = np.clip(similarities[s:s + _NEIGHBOUR_CHUNK], 0.0, None).astype(np.float32) * (idx >= 0)
        F[s:s + _NEIGHBOUR_CHUNK] = np.einsum("ik,ikc->ic", w, spread[np.maximum(idx, 0)].astype(np.float32,
                                                                                             copy=False))
    return Scores.from_unnormalized(F)
