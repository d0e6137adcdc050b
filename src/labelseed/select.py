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
- :func:`stratified`: k-means into `budget` clusters, then a uniformly random row
  of each: as diverse as the medoids, but every pick is a random draw within its
  stratum with a known probability (``extra["inclusion"]``), so its labels calibrate
  the precision estimates, each weighted by 1 / that probability.
- :func:`facility_location`: lazy greedy maximisation of the facility-location
  objective sum_i max_{j in S} w_ij on the sparse kNN graph (Minoux 1978;
  Mirzasoleiman et al. 2015): each pick best covers rows not yet covered.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._validation import check_embeddings, check_int
from .engines import Engine
from .exceptions import InputError
from .graph import KnnGraph, Progress, build_knn_graph, normalize_rows

#: The first is the default: a random row per k-means cluster covers about as many classes at
#: 1-2 labels per class as the medoids (bench/select_coverage.py), and, drawn with known
#: probabilities, its labels calibrate the estimate; the loop built on it certified more than
#: the loop on medoids and ``abstained`` queries (bench/label_efficiency.py, bench/README.md).
STRATEGIES = ("stratified", "kmeans", "typiclust", "kcenter", "facility", "gaps")


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
    """Spherical k-means of unit rows; each row's cluster and its similarity to the centre."""
    return kmeans_assign(Xn, k, random_state, normalized=True)


def kmeans_assign(X: NDArray[np.floating], k: int, random_state: int = 0, *,
                  normalized: bool = False) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Spherical k-means (faiss) with k-means++ seeding, for select and the report's gaps.

    faiss starts from uniformly random rows, which can leave two centres in one tight
    cluster and none in another; k-means++ (on at most 20,000 rows) spreads them. Trains on
    at most 256 rows per centre and assigns the rows in blocks, so `X` may be a memory-mapped
    pool larger than memory. Returns each row's cluster and its cosine similarity to the
    centre.
    """
    import faiss

    from .graph import normalize_rows

    def unit(block: NDArray[np.floating]) -> NDArray[np.float32]:
        block = np.ascontiguousarray(block, dtype=np.float32)
        return block if normalized else normalize_rows(block)

    rng = np.random.default_rng(random_state)
    n = X.shape[0]
    # rows already in memory train whole (faiss keeps 256 per centre itself, as select always did);
    # a memory-mapped pool is sampled first, so only the sample is read and normalised
    whole = normalized or n <= 256 * k
    train = unit(X) if whole else unit(X[np.sort(rng.choice(n, 256 * k, replace=False))])
    sample = train if len(train) <= 20_000 else train[np.sort(rng.choice(len(train), 20_000, replace=False))]
    init = _kmeans_pp(sample, min(k, len(sample)), rng)
    km = faiss.Kmeans(X.shape[1], k, niter=20, seed=int(random_state), spherical=True,
                      max_points_per_centroid=256, min_points_per_centroid=1)
    km.train(train, init_centroids=init)
    assign = np.empty(n, dtype=np.int64)
    sim = np.empty(n, dtype=np.float32)
    for s in range(0, n, 200_000):
        block = train if whole else unit(X[s:s + 200_000])
        d, i = km.index.search(block, 1)
        assign[s:s + len(block)], sim[s:s + len(block)] = i[:, 0], d[:, 0]
        if whole:
            break
    return assign, sim


def kmeans_medoids(
    X: NDArray[np.float32], budget: int, *, labeled: NDArray[np.int64] | None = None, random_state: int = 0
) -> Selection:
    """k-means with `budget` centres; the unlabeled row nearest each centre, largest clusters first."""
    return _one_per_kmeans_cluster(X, budget, labeled, random_state, "kmeans",
                                   "nearest row to the centre of a cluster of {size} rows")


def stratified(
    X: NDArray[np.float32], budget: int, *, labeled: NDArray[np.int64] | None = None, random_state: int = 0
) -> Selection:
    """k-means with `budget` centres; one uniformly random unlabeled row of each cluster, largest first.

    ``extra["inclusion"]`` holds each pick's probability of being drawn (1 / the unlabeled
    rows of its cluster), so its label can calibrate with weight 1 / that probability."""
    return _one_per_kmeans_cluster(X, budget, labeled, random_state, "stratified",
                                   "random row of a cluster of {size} rows")


def _stratum_draw(assign: NDArray[np.int64], budget: int, rng: np.random.Generator,
                  sizes: NDArray[np.int64] | None = None) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """One uniformly random row per stratum (`assign`: stratum of each candidate), largest strata
    first, topped up by a uniform draw from the rest when strata run short (then the top-up's
    probability is the share of the rest it took). Returns the picked positions and each one's
    probability of being drawn. `sizes`: the strata's sizes, when the caller has counted them."""
    if sizes is None:
        sizes = np.bincount(assign, minlength=int(assign.max()) + 1 if len(assign) else 0)
    key = rng.random(len(assign))
    by = np.lexsort((key, assign))
    first = by[np.r_[0, np.flatnonzero(np.diff(assign[by])) + 1]] if len(by) else by
    order = np.argsort(-sizes[assign[first]], kind="stable")
    picks = first[order][:budget]
    inc = 1.0 / sizes[assign[picks]].astype(np.float64)
    if len(picks) < budget:
        rest = np.setdiff1d(np.arange(len(assign)), picks)
        extra = rng.choice(rest, min(budget - len(picks), len(rest)), replace=False)
        picks = np.r_[picks, extra]
        inc = np.r_[inc, np.full(len(extra), len(extra) / max(len(rest), 1))]
    return picks.astype(np.int64), inc


def _one_per_kmeans_cluster(X: NDArray[np.float32], budget: int, labeled: NDArray[np.int64] | None, random_state: int,
                            strategy: str, reason: str) -> Selection:
    """One unlabeled row per k-means cluster: the nearest to its centre ("kmeans") or a uniform
    draw from it ("stratified": a random key per row makes the best row a random one)."""
    Xn, lab = _check(X, budget, labeled)
    blocked = np.zeros(len(Xn), dtype=bool)
    blocked[lab] = True
    assign, sim = _kmeans(Xn, budget, random_state)
    if strategy == "kmeans":
        return _per_cluster(assign, np.where(blocked, -np.inf, sim), budget, strategy, blocked, reason)
    free = np.flatnonzero(~blocked)
    sizes = np.bincount(assign[free], minlength=budget)
    pos, inc = _stratum_draw(assign[free], budget, np.random.default_rng(random_state + 1), sizes)
    rows = free[pos]
    return Selection(rows.astype(np.int64), strategy, [reason.format(size=int(sizes[assign[r]])) for r in rows],
                     {"inclusion": inc})


def typiclust(
    X: NDArray[np.float32], budget: int, *, labeled: NDArray[np.int64] | None = None,
    graph: KnnGraph | None = None, n_neighbors: int = 20, random_state: int = 0, engine: "Engine | None" = None,
    progress: Progress | None = None,
) -> Selection:
    """TypiClust: `budget` k-means clusters, the most typical unlabeled row of each.

    Typicality is the mean cosine similarity of a row to its `n_neighbors`
    nearest neighbours (from `graph` when given). Clusters that already hold a
    labeled row go last, so a seed's gaps are filled first.
    """
    Xn, lab = _check(X, budget, labeled)
    g = graph if graph is not None else build_knn_graph(Xn, n_neighbors, normalized=True, random_state=random_state,
                                                         engine=engine, progress=progress)
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


def facility_location(
    X: NDArray[np.float32], budget: int, *, labeled: NDArray[np.int64] | None = None,
    graph: KnnGraph | None = None, n_neighbors: int = 10, random_state: int = 0, engine: "Engine | None" = None,
    progress: Progress | None = None,
) -> Selection:
    """Lazy greedy facility location on the symmetric kNN affinity (plus self-similarity 1).

    The objective F(S) = sum_i max_{j in S} w_ij is monotone submodular, so the
    lazy greedy (stale gains are upper bounds) returns the plain greedy's picks,
    within 1 - 1/e of the optimum. Labeled rows count as already chosen. Memory
    O(n * k); ``extra["gain"]`` holds each pick's marginal gain (non-increasing).
    """
    import heapq

    Xn, lab = _check(X, budget, labeled)
    g = graph if graph is not None else build_knn_graph(Xn, n_neighbors, normalized=True, random_state=random_state,
                                                         engine=engine, progress=progress)
    if g.n_rows != len(Xn):
        raise InputError(f"`graph` has {g.n_rows} rows but `X` has {len(Xn)}.")
    W = g.affinity()
    indptr, nbr, w = W.indptr, W.indices, W.data
    cover = np.zeros(len(Xn), dtype=np.float32)  # how well each row is covered so far
    taken = np.zeros(len(Xn), dtype=bool)

    def gain(j: int) -> float:
        lo, hi = indptr[j], indptr[j + 1]
        return float(max(0.0, 1.0 - cover[j]) + np.maximum(w[lo:hi] - cover[nbr[lo:hi]], 0).sum())

    def take(j: int) -> None:
        lo, hi = indptr[j], indptr[j + 1]
        cover[j] = 1.0
        np.maximum.at(cover, nbr[lo:hi], w[lo:hi])
        taken[j] = True

    for j in lab:
        take(int(j))
    # first gains in one pass (labeled rows' neighbours are recomputed lazily anyway)
    first = 1.0 + np.add.reduceat(np.r_[w, 0], indptr[:-1]) * (np.diff(indptr) > 0)
    heap = [(-float(v), int(j)) for j, v in enumerate(first) if not taken[j]]
    heapq.heapify(heap)
    picks: list[int] = []
    gains: list[float] = []
    while len(picks) < budget and heap:
        _, j = heapq.heappop(heap)
        if taken[j]:
            continue
        gj = gain(j)
        if heap and gj < -heap[0][0]:
            heapq.heappush(heap, (-gj, j))  # stale: re-queue with its true gain
            continue
        take(j)
        picks.append(j)
        gains.append(gj)
    reasons = [f"covers the most not-yet-covered neighbourhood (gain {v:.2f})" for v in gains]
    return Selection(np.asarray(picks, dtype=np.int64), "facility", reasons, {"gain": np.asarray(gains)})


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


def gaps(
    X: NDArray[np.float32], budget: int, *, labeled: NDArray[np.int64] | None = None, random_state: int = 0
) -> Selection:
    """The regions no human label covers yet: k-means with `budget` clusters more than there are
    labeled rows (the labels cover at most that many), and the most central unlabeled row of
    each cluster that holds no labeled row, largest first (topped up by the best remaining rows
    when fewer such clusters exist). With no label yet it is k-means medoids."""
    Xn, lab = _check(X, budget, labeled)
    blocked = np.zeros(len(Xn), dtype=bool)
    blocked[lab] = True
    k = int(min(len(Xn), budget + len(lab)))
    assign, sim = _kmeans(Xn, k, random_state)
    covered = np.zeros(int(assign.max()) + 1, dtype=bool)
    covered[assign[lab]] = True
    return _per_cluster(assign, np.where(blocked, -np.inf, sim), budget, "gaps", blocked,
                        "central row of a region of {size} rows that no human label covers", covered)


def select(
    X: NDArray[np.float32], budget: int, strategy: str = "stratified", *, labeled: NDArray[np.int64] | None = None,
    random_state: int = 0, engine: "Engine | None" = None, progress: Progress | None = None,
) -> Selection:
    """Cold-start selection by name (see module docstring); ``"stratified"`` by default. `engine`
    runs the kNN graph's search of the graph-based strategies (typiclust, facility), and
    `progress` sees its stages."""
    if strategy == "typiclust":
        return typiclust(X, budget, labeled=labeled, random_state=random_state, engine=engine, progress=progress)
    if strategy == "kcenter":
        return kcenter_greedy(X, budget, labeled=labeled, random_state=random_state)
    if strategy == "kmeans":
        return kmeans_medoids(X, budget, labeled=labeled, random_state=random_state)
    if strategy == "facility":
        return facility_location(X, budget, labeled=labeled, random_state=random_state, engine=engine,
                                 progress=progress)
    if strategy == "stratified":
        return stratified(X, budget, labeled=labeled, random_state=random_state)
    if strategy == "gaps":
        return gaps(X, budget, labeled=labeled, random_state=random_state)
    raise InputError(f"`strategy` must be one of {', '.join(STRATEGIES)}; got {strategy!r}.")


# ---------------------------------------------------------------- warm queries

#: The first is the default: drawn with known probabilities, its labels calibrate the estimate
#: (weighted), so a query's labels count twice: for the scores and for the evidence.
#: ``abstained`` raised coverage above random rounds of the same size where uncertainty
#: sampling lowered it (bench/active_learning.py), but its picks may not calibrate.
#: Strategies that draw at random with known probabilities (``extra["inclusion"]``): their
#: labels calibrate, weighted. Every other strategy picks.
DRAWN_STRATEGIES = ("stratified", "sampled")
QUERY_STRATEGIES = ("sampled", "abstained", "uncertainty", "unreached", "unsupported", "disagreement")

#: ``query(strategy="sampled")``: how many times likelier a row the last run abstained on is to
#: be drawn than one it accepted. 2 against 1 and 4 (bench/honesty.py, the drawn loop, 20
#: repetitions on five data sets): coverage up from 4 on Fashion-MNIST (0.202 vs 0.106) with
#: per-class bias within +-0.03 on four of five (4: three), the Gaussians' +0.040 (4: +0.044;
#: 1: +0.023 at coverage 0.343 instead of 0.469)
SAMPLED_OVERSAMPLE = 2.0


def _sampled(Xn: NDArray[np.float32], free: NDArray[np.int64], budget: int, accepted: NDArray[np.bool_] | None,
             random_state: int) -> Selection:
    """Query strategy ``"sampled"`` (see :func:`query`): a stratified random draw."""
    if accepted is None:
        raise InputError("Strategy 'sampled' needs `accepted` (the rows the last run auto-labeled).")
    accepted = np.asarray(accepted, dtype=bool)
    if accepted.shape != (len(Xn),):
        raise InputError(f"`accepted` must have shape ({len(Xn)},); got {accepted.shape}.")
    rng = np.random.default_rng(random_state)
    abst, acc = free[~accepted[free]], free[accepted[free]]
    share = SAMPLED_OVERSAMPLE * len(abst) / max(SAMPLED_OVERSAMPLE * len(abst) + len(acc), 1e-300)
    n_abst = int(min(len(abst), max(round(budget * share), budget - len(acc))))
    n_acc = budget - n_abst
    rows, inc, reasons = [], [], []
    if n_abst:
        assign, _ = _kmeans(Xn[abst], n_abst, random_state)
        pos, p = _stratum_draw(assign, n_abst, rng)
        rows.append(abst[pos])
        inc.append(p)
        sizes = np.bincount(assign, minlength=n_abst)
        reasons += [f"random row of a region of {int(sizes[assign[i]])} rows without auto-labels" for i in pos]
    if n_acc:
        pick = rng.choice(len(acc), n_acc, replace=False)
        rows.append(acc[pick])
        inc.append(np.full(n_acc, n_acc / len(acc)))
        reasons += [f"random row of the {len(acc)} auto-labeled rows (checks them)"] * n_acc
    return Selection(np.concatenate(rows).astype(np.int64), "sampled", reasons,
                     {"inclusion": np.concatenate(inc)})


def _diverse(Xn: NDArray[np.float32], candidates: NDArray[np.int64], budget: int) -> NDArray[np.int64]:
    """Up to `budget` of `candidates` (ranked best first) that are far apart: farthest-first
    traversal over the candidates, starting from the best one, so a batch is not near-duplicates."""
    if len(candidates) <= budget:
        return candidates
    sub = Xn[candidates]
    nearest = 1.0 - sub @ sub[0]
    picks = [0]
    while len(picks) < budget:
        nearest[picks] = -np.inf
        i = int(np.argmax(nearest))
        picks.append(i)
        np.minimum(nearest, 1.0 - sub @ sub[i], out=nearest)
    return candidates[np.asarray(picks)]


def margin_uncertainty(distribution: NDArray[np.floating]) -> NDArray[np.float64]:
    """1 - (top score - second score) per row; 1 for rows with no scores at all."""
    if distribution.shape[1] < 2:
        return np.where(distribution.sum(axis=1) > 0, 0.0, 1.0)
    top2 = -np.partition(-distribution, 1, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1]).astype(np.float64)


def query(
    X: NDArray[np.float32],
    distribution: NDArray[np.floating],
    codes: NDArray[np.int64],
    budget: int,
    strategy: str = "sampled",
    *,
    accepted: NDArray[np.bool_] | None = None,
    unsupported: NDArray[np.int64] | None = None,
    other_predicted: NDArray[np.int64] | None = None,
    pool_factor: int = 10,
    random_state: int = 0,
) -> Selection:
    """The next rows to label once a labeler has run, always spread out (see :func:`_diverse`).

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_dims)
    distribution : ndarray of shape (n_rows, n_classes)
        Spread scores (``AutoLabeler.label_distributions_``); all-zero rows were unreachable.
    codes : ndarray of shape (n_rows,)
        Class codes of labeled rows, -1 elsewhere (never picked).
    budget : int
    strategy : {"sampled", "abstained", "uncertainty", "unreached", "unsupported", "disagreement"}
        ``abstained``: k-means over the unlabeled rows the labeler abstained
        on (`accepted` False), the most central row of each cluster, largest first:
        typical rows of the regions still without auto-labels. Unlike the most
        uncertain rows they are representative, so they also calibrate the
        thresholds without bias toward hard cases.
        ``sampled`` (default): a random draw with known probabilities, so the labels calibrate the
        estimates (each weighted by 1 / its probability, ``extra["inclusion"]``): rows the
        last run abstained on are ``SAMPLED_OVERSAMPLE`` times likelier to be drawn than
        accepted ones, and among them one random row per k-means cluster keeps a batch
        spread out.
        ``uncertainty``: smallest margin between the two best classes.
        ``unreached``: rows no label could reach (then the most uncertain).
        ``unsupported``: the most confident rows predicted as a class whose threshold
        lacked support (`unsupported` class codes), to give those classes labels.
        ``disagreement``: rows where another method (`other_predicted`, e.g.
        self-training) predicts a different class, most uncertain first.
    accepted : ndarray of bool, shape (n_rows,), optional
        Rows given an auto-label by the last run; needed by ``abstained``.
    pool_factor : int, default=10
        Diversity is chosen among the ``pool_factor * budget`` best candidates.
    random_state : int, default=0
        Seeds the k-means of ``abstained``.
    """
    Xn = normalize_rows(check_embeddings(X))
    budget = check_int(budget, "budget", 1)
    free = np.flatnonzero(codes < 0)
    if budget > len(free):
        raise InputError(f"`budget` is {budget} but only {len(free)} row(s) are unlabeled; ask for at most {len(free)}.")
    if strategy == "abstained":
        if accepted is None:
            raise InputError("Strategy 'abstained' needs `accepted` (the rows the last run auto-labeled).")
        accepted = np.asarray(accepted, dtype=bool)
        if accepted.shape != (len(Xn),):
            raise InputError(f"`accepted` must have shape ({len(Xn)},); got {accepted.shape}.")
        cand = free[~accepted[free]]
        if len(cand) < budget:  # almost everything is labeled: top up from the accepted rows
            cand = free
        assign, sim = _kmeans(Xn[cand], budget, random_state)
        sel = _per_cluster(assign, sim, budget, "abstained", np.zeros(len(cand), dtype=bool),
                           "most central row of a region of {size} rows without auto-labels")
        return Selection(cand[sel.rows].astype(np.int64), "abstained", sel.reasons)
    if strategy == "sampled":
        return _sampled(Xn, free, budget, accepted, random_state)
    unc = margin_uncertainty(distribution)
    reached = distribution.sum(axis=1) > 0
    pred = np.where(reached, distribution.argmax(axis=1), -1)
    if strategy == "uncertainty":
        score, why = unc[free], "margin between the two best classes {:.3f}"
        shown = 1.0 - unc[free]
    elif strategy == "unreached":
        score = np.where(reached[free], unc[free], 2.0)
        shown = score
        why = "no labeled row reaches it" if (~reached[free]).any() else "margin {:.3f}"
    elif strategy == "unsupported":
        if unsupported is None or len(unsupported) == 0:
            raise InputError("No class lacks support, so there is nothing for strategy 'unsupported' to fill.")
        wanted = np.isin(pred[free], unsupported)
        score = np.where(wanted, 2.0 + distribution[free].max(axis=1), -unc[free])
        shown = distribution[free].max(axis=1)
        why = "predicted as a class without enough support (confidence {:.3f})"
    elif strategy == "disagreement":
        if other_predicted is None:
            raise InputError("Strategy 'disagreement' needs `other_predicted` (another method's predictions).")
        differ = other_predicted[free] != pred[free]
        score = np.where(differ, 1.0 + unc[free], unc[free])
        shown = unc[free]
        why = "methods disagree; uncertainty {:.3f}"
    else:
        raise InputError(f"`strategy` must be one of {', '.join(QUERY_STRATEGIES)}; got {strategy!r}.")
    order = np.argsort(-score, kind="stable")[: pool_factor * budget]
    # scores come in tiers (integer part: e.g. unreached > reached); diversity only
    # reorders within the best tiers that fill the budget, it never trades a tier away
    tier = np.floor(score[order])
    order = order[tier >= tier[min(budget, len(order)) - 1]]
    chosen_local = _diverse(Xn[free], order, budget)
    rows = free[chosen_local]
    reasons = [why.format(shown[i]) if "{" in why else why for i in chosen_local]
    return Selection(rows.astype(np.int64), strategy, reasons)


# ------------------------------------------------------------------------ audit


@dataclass(frozen=True)
class AuditEstimate:
    """Realized precision of auto-labels measured from a verified audit sample.

    ``precision`` is the stratified estimate over all accepted auto-labels (each
    class weighted by its share of them); ``low``/``high`` its 95% interval;
    ``per_class`` maps a class to (verified, right, precision, low, high), the
    interval exact (Clopper-Pearson).
    """

    precision: float
    low: float
    high: float
    n_verified: int
    per_class: dict[str, tuple[int, int, float, float, float]]


def audit_sample(
    labels: NDArray[np.object_], accepted: NDArray[np.int64], budget: int, *, random_state: int = 0
) -> Selection:
    """A stratified random sample of accepted auto-labels for a person to verify.

    The budget is split evenly across classes (a class with fewer auto-labels than its
    share gives the rest to the others), because each class's precision is certified on
    its own audited rows; rows are random within a class. ``extra["inclusion"]`` holds each
    picked row's probability of being drawn (its class's sample size over its size),
    which later runs need to weigh the audit.
    """
    budget = check_int(budget, "budget", 1)
    if budget > len(accepted):
        raise InputError(f"`budget` is {budget} but there are only {len(accepted)} auto-labels to audit.")
    rng = np.random.default_rng(random_state)
    lab = np.asarray([str(v) for v in labels[accepted]])
    classes, counts = np.unique(lab, return_counts=True)
    alloc = np.zeros(len(classes), dtype=np.int64)
    left = budget
    open_ = list(np.argsort(counts, kind="stable"))  # smallest first: they fill up first
    while left > 0 and open_:
        share = max(left // len(open_), 1)
        for c in list(open_):
            take = min(share, int(counts[c] - alloc[c]), left)
            alloc[c] += take
            left -= take
            if alloc[c] == counts[c]:
                open_.remove(c)
            if left == 0:
                break
    rows, reasons, inclusion = [], [], []
    for c, k, n in zip(classes, alloc, counts):
        members = accepted[lab == c]
        pick = rng.choice(members, int(k), replace=False)
        rows.extend(pick.tolist())
        reasons.extend([f"audit of class {c} ({len(members)} auto-labels)"] * int(k))
        inclusion.extend([k / n] * int(k))
    perm = rng.permutation(len(rows))  # interleave classes
    return Selection(np.asarray(rows, dtype=np.int64)[perm], "audit", [reasons[i] for i in perm],
                     {"inclusion": np.asarray(inclusion, dtype=np.float64)[perm]})


def audit_estimate(
    predicted: NDArray[np.object_], verified: NDArray[np.object_], class_counts: dict[str, int], *,
    level: float = 0.95, random_state: int = 0,
) -> AuditEstimate:
    """Stratified realized precision from verified rows (predicted vs the person's label).

    `class_counts` holds each class's number of accepted auto-labels (the strata weights).
    Per class: the share right with its exact (Clopper-Pearson) interval. Overall: the
    strata-weighted share, its interval mixing the classes' exact bounds
    (:func:`labelseed.thresholds.stratified_share`); a class audited in full is known exactly.
    """
    from .thresholds import clopper_pearson, stratified_share

    predicted = np.asarray([str(v) for v in predicted])
    verified = np.asarray([str(v) for v in verified])
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    per: dict[str, tuple[int, int, float, float, float]] = {}
    parts: list[tuple[float, float, float, bool]] = []
    for c, count in class_counts.items():
        m = predicted == c
        n = int(m.sum())
        right = int((verified[m] == c).sum())
        if n == 0:
            continue
        per[c] = (n, right, right / n, clopper_pearson(right, n, lo_q), clopper_pearson(right, n, hi_q, upper=True))
        parts.append((count, right, n, n >= count))
    est, lo, hi = stratified_share(parts, lo_q, hi_q, np.random.default_rng(random_state))
    return AuditEstimate(est, min(lo, est), max(hi, est), int(len(predicted)), per)  # NaNs stay NaN
