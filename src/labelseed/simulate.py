"""Play the person in the loop on data whose labels are known, to plan a labeling budget.

:func:`simulate` spends a budget of human labels the way the README's loop does
(cold-start ``select``, then rounds of ``fit`` -> ``query`` -> reveal -> ``fit``), revealing
the true label of every row it asks about, and records after each round how much of the
pool the engine certifies, the precision it reports, and the precision the truth shows.
Beside it, the same engine gets the same number of uniformly random labels, so a user sees
what the loop's picks are worth on their kind of data before paying for labels.

Honesty: the default strategies (``select`` ``stratified``, ``query`` ``sampled``) *draw* rows
at random with known, unequal probabilities, so their labels calibrate the estimate, each
weighted by 1 / its probability (:func:`labelseed.thresholds.design_weights`). Labels that
other strategies *pick* are no random sample of the pool: they spread but never calibrate
(:meth:`AutoLabeler.fit`'s `calibrate`), so with those a round should spend `random_share` of
its labels on uniformly random rows; with neither, every estimate is marked untrusted, and
only an audit (`audit` > 0 rows per round, drawn from the accepted rows and certified
exactly, :meth:`AutoLabeler.certify_with_audit`) certifies.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import check_embeddings, check_fraction, check_int
from .autolabeler import AutoLabeler, AutoLabelResult, query_next
from .exceptions import InputError
from .graph import N_NEIGHBORS, KnnGraph, Progress, build_knn_graph
from .space import check_graph_space, graphs_in_spaces
from .select import QUERY_STRATEGIES, STRATEGIES, audit_sample, select
from .thresholds import design_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundRecord:
    """Where one labeling scheme stands after one round.

    Attributes
    ----------
    scheme : {"loop", "random"}
    round : int
        1-based.
    n_labels : int
        Human labels spent so far, audits included.
    n_random, n_picked, n_audit : int
        Of them: uniformly random rows (`random_share`), rows select/query asked for (drawn with
        known probabilities by the default strategies, so they calibrate too; picked by the
        others), audited rows.
    coverage : float
        Share of the unlabeled pool given a certified auto-label.
    classes_certified : int
        Classes with at least one auto-label.
    expected_precision, precision_low, precision_high : float
        What the engine reports for its auto-labels (NaN when it labels nothing).
    realized_precision : float
        Share of the auto-labels the truth confirms (NaN when nothing is labeled).
    trusted : bool
        False when no label could calibrate the estimate (neither random nor drawn).
    certified_by : str
        ``"cross-validation"`` or ``"audit"``.
    seconds : float
        Time the round's fit took.
    note : str
        Why a round labels nothing when the engine refused to fit (e.g. a class with one label).
    """

    scheme: str
    round: int
    n_labels: int
    n_random: int
    n_picked: int
    n_audit: int
    coverage: float
    classes_certified: int
    expected_precision: float
    precision_low: float
    precision_high: float
    realized_precision: float
    trusted: bool
    certified_by: str
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class SimulationResult:
    """Every round of every scheme, in order (see :class:`RoundRecord`)."""

    records: list[RoundRecord]
    n_rows: int
    n_classes: int
    target_precision: float
    params: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """The records as JSON-ready dicts (NaN as None)."""
        out = []
        for r in self.records:
            d = asdict(r)
            out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()})
        return out


def _round_budgets(budget: int, rounds: int) -> list[int]:
    base, extra = divmod(budget, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def simulate(
    X: ArrayLike,
    truth: ArrayLike,
    budget: int,
    rounds: int = 3,
    *,
    random_share: float = 0.0,
    audit: int = 0,
    compare_random: bool = True,
    target_precision: float = 0.95,
    method: str = "ensemble",
    select_strategy: str = "stratified",
    query_strategy: str = "sampled",
    n_neighbors: int = N_NEIGHBORS,
    graph: KnnGraph | None = None,
    graph_space: str = "raw",
    random_state: int = 0,
    progress: Progress | None = None,
) -> SimulationResult:
    """Spend `budget` human labels through the loop on a pool whose labels are all known.

    Parameters
    ----------
    X : array-like of shape (n_rows, n_dims)
    truth : array-like of shape (n_rows,)
        The true label of every row (revealed only for rows the loop asks about).
    budget : int
        Human labels to spend in all, audits included; at least the number of classes.
    rounds : int, default=3
        The budget is split evenly across rounds; round 1 is the cold start (``select``),
        later rounds ``query`` the fitted engine.
    random_share : float in [0, 1], default=0
        Share of each round's labels drawn uniformly at random besides the strategies' own
        (they calibrate the estimate). The default strategies draw with known probabilities,
        so their labels calibrate too, each weighted by 1 / its probability; picks of the
        other strategies only spread, and then random labels are what calibrates.
    audit : int, default=0
        Rows per round drawn from the accepted auto-labels, verified, and used to certify
        the thresholds exactly (they count against `budget`).
    compare_random : bool, default=True
        Also fit on the same number of uniformly random labels after every round.
    target_precision, method, n_neighbors, graph_space, random_state
        As for :class:`~labelseed.autolabeler.AutoLabeler` (``graph_space`` shapes the fits'
        graph; select and query pick as they do from the command line).
    select_strategy, query_strategy : str
        The cold-start and query strategies (:func:`labelseed.select.select`, :func:`~labelseed.select.query`).
    graph : KnnGraph, optional
        A graph already built for `X` as given (the raw space).

    Returns
    -------
    SimulationResult
    """
    Xa = check_embeddings(X)
    truth_arr = np.asarray(truth, dtype=object)
    if truth_arr.shape != (Xa.shape[0],):
        raise InputError(f"`truth` must hold one label per row ({Xa.shape[0]}); got shape {truth_arr.shape}.")
    missing = np.flatnonzero(np.array([v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == ""
                                       for v in truth_arr], dtype=bool))
    if len(missing):
        raise InputError(f"`truth` lacks a label for {len(missing)} of {len(truth_arr)} rows (e.g. row "
                         f"{int(missing[0])}); simulate needs the true label of every row (embed only the labeled sample).")
    classes, codes_true = np.unique(truth_arr.astype(str), return_inverse=True)
    n, k = Xa.shape[0], len(classes)
    if k < 2:
        raise InputError(f"`truth` has a single class ({str(classes[0])!r}); simulate needs at least two.")
    rounds = check_int(rounds, "rounds", 1)
    budget = check_int(budget, "budget", 1)
    if budget < k:
        raise InputError(f"`budget` must be at least the number of classes ({k}); got {budget}.")
    if budget >= n:
        raise InputError(f"`budget` must be below the number of rows ({n}), leaving a pool to auto-label; got {budget}.")
    if not 0 <= float(random_share) <= 1:
        raise InputError(f"`random_share` must be in [0, 1]; got {random_share!r}.")
    audit = check_int(audit, "audit", 0)
    if audit * rounds >= budget:
        raise InputError(f"`audit` ({audit} per round x {rounds} rounds) must leave labels for the loop out of "
                         f"`budget` ({budget}); lower --audit or raise --budget.")
    check_fraction(target_precision, "target_precision")
    if select_strategy not in STRATEGIES:
        raise InputError(f"`select_strategy` must be one of {', '.join(STRATEGIES)}; got {select_strategy!r}.")
    if query_strategy not in QUERY_STRATEGIES:
        raise InputError(f"`query_strategy` must be one of {', '.join(QUERY_STRATEGIES)}; got {query_strategy!r}.")
    if method not in ("ensemble", "spreading"):
        raise InputError(f"`method` must be 'ensemble' or 'spreading'; got {method!r}.")
    spaces = check_graph_space(graph_space, method)
    # no labels in the map: one graph per space serves every round
    graphs, space_map = graphs_in_spaces(
        Xa, spaces, lambda rows, unit: build_knn_graph(rows, n_neighbors, random_state=random_state,
                                                       progress=progress, normalized=unit),
        given={"raw": graph} if graph is not None else None, random_state=random_state)
    rng = np.random.default_rng(random_state)
    order = rng.permutation(n)  # the random scheme's labels: a prefix of one permutation, so rounds nest

    def fit(y: NDArray[np.int64], calibrate: NDArray[np.bool_],
            weight: NDArray[np.float64] | None = None) -> tuple[AutoLabeler | None, str, float]:
        t = time.perf_counter()
        model = AutoLabeler(method=method, target_precision=target_precision,  # type: ignore[arg-type]
                            n_neighbors=n_neighbors, graph_space=graph_space,  # type: ignore[arg-type]
                            random_state=random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the record says what happened; warnings would repeat per round
            try:
                model.fit(Xa, y, graph=graphs, calibrate=calibrate, design_weight=weight, space_map=space_map)
            except InputError as exc:  # e.g. a class with a single label: nothing can be certified yet
                return None, str(exc), time.perf_counter() - t
        return model, "", time.perf_counter() - t

    def record(scheme: str, rnd: int, counts: tuple[int, int, int], result: AutoLabelResult | None,
               seconds: float, note: str) -> RoundRecord:
        n_random, n_picked, n_audit = counts
        if result is None:  # the engine refused to fit (`note` says why)
            nan = float("nan")
            return RoundRecord(scheme, rnd, sum(counts), n_random, n_picked, n_audit, 0.0, 0, nan, nan, nan, nan,
                               n_random > 0, "cross-validation", round(seconds, 3), note)
        th = result.thresholds
        acc = result.accepted
        # the engine was fitted on class codes, so its labels are codes
        realized = float((result.labels[acc].astype(np.int64) == codes_true[acc]).mean()) if len(acc) else math.nan
        n_pool = int((result.source != "seed").sum())
        return RoundRecord(
            scheme, rnd, sum(counts), n_random, n_picked, n_audit,
            coverage=len(acc) / max(n_pool, 1),
            classes_certified=len(np.unique(result.labels[acc].astype(str))) if len(acc) else 0,
            expected_precision=float(th.expected_precision), precision_low=float(th.precision_low),
            precision_high=float(th.precision_high), realized_precision=realized, trusted=bool(th.trusted),
            certified_by=th.certified_by, seconds=round(seconds, 3), note=note,
        )

    y = np.full(n, -1, dtype=np.int64)
    is_random = np.zeros(n, dtype=bool)
    drawn = np.zeros(n, dtype=bool)  # picked by a random draw with known probabilities: they calibrate, weighted
    dweight = np.ones(n)
    n_picked = n_audit = 0
    records: list[RoundRecord] = []
    model: AutoLabeler | None = None
    carry = 0  # audit labels a round could not spend (too few accepted rows) go to the next round's loop
    for rnd, b in enumerate(_round_budgets(budget, rounds), start=1):
        b_loop = b - audit + carry
        carry = audit
        n_rand = int(round(float(random_share) * b_loop))
        n_pick = b_loop - n_rand
        free = y < 0
        sel = None
        if n_pick and (rnd == 1 or model is None):  # cold start, or the engine could not fit yet
            sel = select(Xa, n_pick, select_strategy, labeled=np.flatnonzero(~free),
                         random_state=random_state + rnd - 1)
        elif n_pick and model is not None:
            strategy = query_strategy
            if strategy == "unsupported" and all(c.meets_target for c in model.result_.thresholds.per_class):
                strategy = "abstained"
            sel = query_next(model, Xa, y, n_pick, strategy, random_state=random_state + rnd)
        picks = np.empty(0, np.int64) if sel is None else sel.rows
        y[picks] = codes_true[picks]
        if sel is not None and "inclusion" in sel.extra:  # a random draw: its labels calibrate, weighted
            drawn[picks] = True
            dweight[picks] = design_weights(sel.extra["inclusion"])
        n_picked += len(picks)
        pool = np.flatnonzero(y < 0)
        rand_rows = rng.choice(pool, min(n_rand, len(pool)), replace=False) if n_rand else np.empty(0, np.int64)
        y[rand_rows] = codes_true[rand_rows]
        is_random[rand_rows] = True
        model, note, secs = fit(y, is_random | drawn, dweight)
        records.append(record("loop", rnd, (int(is_random.sum()), n_picked, n_audit),
                              None if model is None else model.result_, secs, note))
        if audit and model is not None and len(model.result_.accepted):
            # verify a random sample of what this fit accepted, then certify its thresholds by it
            sample = audit_sample(model.result_.labels, model.result_.accepted,
                                  min(audit, len(model.result_.accepted)), random_state=random_state + rnd)
            rows = sample.rows
            t = time.perf_counter()
            certified = model.certify_with_audit(rows, codes_true[rows], inclusion=sample.extra["inclusion"])
            n_audit += len(rows)
            carry = audit - len(rows)
            records.append(record("loop+audit", rnd, (int(is_random.sum()), n_picked, n_audit), certified,
                                  time.perf_counter() - t, ""))
            y[rows] = codes_true[rows]  # human labels from here on: they spread, never calibrate
        if compare_random:
            total = int((y >= 0).sum())
            yr = np.full(n, -1, dtype=np.int64)
            yr[order[:total]] = codes_true[order[:total]]
            rmodel, rnote, rsecs = fit(yr, yr >= 0)
            records.append(record("random", rnd, (total, 0, 0), None if rmodel is None else rmodel.result_, rsecs,
                                  rnote))
        if progress:
            progress("simulate", rnd, rounds)
        log.info("round %d: %s", rnd, records[-1])
    return SimulationResult(records=records, n_rows=n, n_classes=k, target_precision=float(target_precision),
                            params={"budget": budget, "rounds": rounds, "random_share": float(random_share),
                                    "audit": audit, "method": method, "select_strategy": select_strategy,
                                    "query_strategy": query_strategy, "n_neighbors": n_neighbors,
                                    "graph_space": graph_space, "random_state": random_state})


def plot_label_efficiency(result: SimulationResult, path: str) -> None:
    """Human labels -> certified coverage per scheme, realized precision beside it (PNG)."""
    from ._optional import require

    mpl = require("matplotlib", "report")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for scheme in dict.fromkeys(r.scheme for r in result.records):
        rs = [r for r in result.records if r.scheme == scheme]
        x = [r.n_labels for r in rs]
        ax1.plot(x, [r.coverage for r in rs], marker="o", label=scheme)
        ax2.plot(x, [r.realized_precision for r in rs], marker="o", label=f"{scheme} realized")
        ax2.plot(x, [r.expected_precision for r in rs], marker="x", linestyle="--", label=f"{scheme} expected")
    ax1.set_xlabel("human labels")
    ax1.set_ylabel("certified coverage of the pool")
    ax1.legend()
    ax2.axhline(result.target_precision, color="grey", linewidth=0.8)
    ax2.set_xlabel("human labels")
    ax2.set_ylabel("precision of the auto-labels")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
