"""Which few items should a person label first: diverse, typical coresets.

Pure functions of the embeddings (and the kNN graph); each returns a
:class:`Selection` of ranked row numbers with a reason per pick. None builds an
n x n matrix.

- :func:`kcenter_greedy`: farthest-first traversal (Sener and Savarese 2018):
  each pick is the row farthest (cosine) from everything picked or labeled so far.
- :func:`kmeans_medoids`: k-means with `budget` centres, then the row nearest to
  each centre.
- :func:`typiclust`: k-means into `budget` clusters, then the most *typical* row
  of each (highest mean similarity to its kNN; Hacohen et al. 2022), largest
  clusters first.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._validation import check_embeddings, check_int
from .exceptions import InputError
from .graph import KnnGraph, build_knn_graph, normalize_rows

#: The first is the default: k-means medoids covered the most classes at 1 and 2 labels per
#: class on digits and Fashion-MNIST (bench/select_coverage.py, bench/README.md).
STRATEGIES = ("kmeans", "typiclust", "kcenter")


@dataclass(frozen=True)
class Selection:
    """Rows chosen for labeling, best first.

    Attributes
    ----------
    rows : ndarray of int64, shape (budget,)
        Row numbers, in the order a person should label them.
    strategy : str
    reasons : list of str
        Why each row was picked, one per row.
    extra : dict
        Strategy-specific diagnostics (e.g. the covering radius after each k-center pick).
    """

    rows: NDArray[np.int64]
    strategy: str
    reasons: list[str]
    extra: dict[str, NDArray[np.float64]] = field(default_factory=dict)


def _check(X: NDArray[np.float32], budget: int, labeled: NDArray[np.int64] | None) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    Xn = normalize_rows(check_embeddings(X))
    budget = check_int(budget, "budget", 1)
    lab = np.unique(np.asarray(labeled if labeled is not None else [], dtype=np.int64))
    if len(lab) and (lab.min() < 0 or lab.max() >= len(Xn)):
        raise InputError(f"`labeled` has row numbers outside 0..{len(Xn) - 1}.")
    free = len(Xn) - len(lab)
    if budget > free:
        raise InputError(
            f"`budget` is {budget} but the pool has only {free} unlabeled row(s); ask for at most {free}."
        )
    return Xn, lab


def kcenter_greedy(
    X: NDArray[np.float32], budget: int, *, labeled: NDArray[np.int64] | None = None, random_state: int = 0
) -> Selection:
    """Farthest-first traversal in cosine distance.

    Starts from the labeled rows (or the row nearest the mean when none); each
    step adds the row whose distance to its nearest chosen-or-labeled row is
    largest. ``extra["radius"][i]`` is the covering radius after pick ``i``: it
    never grows. O(n * budget * d) time, O(n) extra memory.
    """
    Xn, lab = _check(X, budget, labeled)
    n = len(Xn)
    nearest = np.full(n, np.inf, dtype=np.float32)  # distance to the closest centre so far
    taken = np.zeros(n, dtype=bool)

    def absorb(rows: NDArray[np.int64]) -> None:
        step = max(1, (16 << 20) // max(1, n))
        for s in range(0, len(rows), step):
            d = 1.0 - Xn[rows[s : s + step]] @ Xn.T
            np.minimum(nearest, d.min(axis=0), out=nearest)
        taken[rows] = True

    picks, reasons, radius = [], [], []
    if len(lab):
        absorb(lab)
    else:
        first = int(np.argmax(Xn @ Xn.mean(axis=0)))
        picks.append(first)
        reasons.append("most central row (start of the traversal)")
        absorb(np.array([first]))
        radius.append(float(nearest.max()))
    while len(picks) < budget:
        cand = np.where(taken, -np.inf, nearest)
        i = int(np.argmax(cand))
        picks.append(i)
        reasons.append(f"farthest from everything chosen so far (cosine distance {cand[i]:.3f})")
        absorb(np.array([i]))
        radius.append(float(np.where(taken, 0, nearest).max()))
    return Selection(np.asarray(picks, dtype=np.int64), "kcenter", reasons, {"radius": np.asarray(radius)})


def _kmeans_pp(sample: NDArray[np.float32], k: int, rng: np.random.Generator) -> NDArray[np.float32]:
    """k-means++ seeding (Arthur and Vassilvitskii 2007) in cosine distance."""
    centres = [int(rng.integers(len(sample)))]
    d2 = np.square(1.0 - sample @ sample[centres[0]])
    for _ in range(1, k):
        total = float(d2.sum())
        i = int(rng.choice(len(sample), p=d2 / total)) if total > 0 else int(rng.integers(len(sample)))
        centres.append(i)
        np.minimum(d2, np.square(1.0 - sample @ sample[i]), out=d2)
    return np.ascontiguousarray(sample[centres], dtype=np.float32)


def _kmeans(Xn: NDArray[np.float32], k: int, random_state: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Spherical k-means (faiss) with k-means++ seeding on a sample of rows.

    faiss starts from uniformly random rows, which can leave two centres in one
    tight cluster and none in another; k-means++ spreads them. Returns each
    row's cluster and its similarity to the centre.
    """
    import faiss

    rng = np.random.default_rng(random_state)
    sample = Xn if len(Xn) <= 20_000 else Xn[np.sort(rng.choice(len(Xn), 20_000, replace=False))]
    init = _kmeans_pp(sample, min(k, len(sample)), rng)
    km = faiss.Kmeans(Xn.shape[1], k, niter=20, seed=int(random_state), spherical=True,
                      max_points_per_centroid=256, min_points_per_centroid=1)
    km.train(Xn, init_centroids=init)
    sim, assign = km.index.search(Xn, 1)
    return assign[:, 0].astype(np.int64), sim[:, 0]


def kmeans_medoids(
    X: NDArray[np.float32], budget: int, *, labeled: NDArray[np.int64] | None = None, random_state: int = 0
) -> Selection:
    """k-means with `budget` centres; the unlabeled row nearest each centre, largest clusters first."""
    Xn, lab = _check(X, budget, labeled)
    blocked = np.zeros(len(Xn), dtype=bool)
    blocked[lab] = True
    assign, sim = _kmeans(Xn, budget, random_state)
    return _per_cluster(assign, np.where(blocked, -np.inf, sim), budget, "kmeans", blocked,
                        "nearest row to the centre of a cluster of {size} rows")


def typiclust(
    X: NDArray[np.float32], budget: int, *, labeled: NDArray[np.int64] | None = None,
    graph: KnnGraph | None = None, n_neighbors: int = 20, random_state: int = 0,
) -> Selection:
    """TypiClust: `budget` k-means clusters, the most typical unlabeled row of each.

    Typicality is the mean cosine similarity of a row to its `n_neighbors`
    nearest neighbours (from `graph` when given). Clusters that already hold a
    labeled row go last, so a seed's gaps are filled first.
    """
    Xn, lab = _check(X, budget, labeled)
    g = graph if graph is not None else build_knn_graph(Xn, n_neighbors, normalized=True, random_state=random_state)
    if g.n_rows != len(Xn):
        raise InputError(f"`graph` has {g.n_rows} rows but `X` has {len(Xn)}.")
    typicality = np.where(g.indices >= 0, g.similarities, 0).mean(axis=1)
    blocked = np.zeros(len(Xn), dtype=bool)
    blocked[lab] = True
    assign, _ = _kmeans(Xn, budget, random_state)
    covered = np.zeros(budget, dtype=bool)
    covered[np.unique(assign[lab])] = True
    return _per_cluster(assign, np.where(blocked, -np.inf, typicality), budget, "typiclust", blocked,
                        "most typical row of a cluster of {size} rows", covered)


def _per_cluster(
    assign: NDArray[np.int64], score: NDArray[np.floating], budget: int, strategy: str, blocked: NDArray[np.bool_],
    reason: str, covered: NDArray[np.bool_] | None = None,
) -> Selection:
    """Best-scoring row per cluster, clusters ranked (uncovered first) by size; topped up by score."""
    k = int(assign.max()) + 1 if len(assign) else 0
    sizes = np.bincount(assign, minlength=k)
    covered = np.zeros(k, dtype=bool) if covered is None else covered
    order = np.lexsort((-sizes, covered))  # uncovered clusters first, then larger first
    # best row per cluster: sort rows by (cluster, -score) and take the first of each cluster
    by = np.lexsort((-score, assign))
    first = by[np.r_[0, np.flatnonzero(np.diff(assign[by])) + 1]]
    best = np.full(k, -1, dtype=np.int64)
    best[assign[first]] = first
    picks, reasons = [], []
    for c in order:
        r = best[c]
        if r >= 0 and not blocked[r] and np.isfinite(score[r]):
            picks.append(int(r))
            reasons.append(reason.format(size=int(sizes[c])))
        if len(picks) == budget:
            break
    if len(picks) < budget:  # empty or fully labeled clusters: fill with the best remaining rows
        taken = blocked.copy()
        taken[picks] = True
        rest = np.flatnonzero(~taken)
        rest = rest[np.argsort(-score[rest], kind="stable")][: budget - len(picks)]
        picks.extend(int(r) for r in rest)
        reasons.extend(["best remaining row (its cluster was already covered)"] * len(rest))
    return Selection(np.asarray(picks, dtype=np.int64), strategy, reasons)


def select(
    X: NDArray[np.float32], budget: int, strategy: str = "kmeans", *, labeled: NDArray[np.int64] | None = None,
    random_state: int = 0,
) -> Selection:
    """Cold-start selection by name (see module docstring); ``"kmeans"`` by default."""
    if strategy == "typiclust":
        return typiclust(X, budget, labeled=labeled, random_state=random_state)
    if strategy == "kcenter":
        return kcenter_greedy(X, budget, labeled=labeled, random_state=random_state)
    if strategy == "kmeans":
        return kmeans_medoids(X, budget, labeled=labeled, random_state=random_state)
    raise InputError(f"`strategy` must be one of {', '.join(STRATEGIES)}; got {strategy!r}.")
