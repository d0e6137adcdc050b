"""AutoLabeler: the scikit-learn-style estimator that ties the method together.

``fit(X, y)``: validate -> kNN graph (once) -> out-of-fold scores for the seed
and final scores for every row, all folds in one sparse solve -> thresholds for
the business metric -> which rows are auto-labeled and which abstain.
"""
from __future__ import annotations

import logging
import math
import numbers
import time
import warnings
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Callable, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator

from ._validation import (
    check_embeddings,
    check_fraction,
    check_int,
    check_n_splits,
    check_seed,
    encode_labels,
)
from .exceptions import FoldFallbackWarning, InputError, NotFittedError, UntrustedEstimateWarning
from .space import SpaceMap, check_graph_space, graphs_in_spaces
from .graph import EXACT_MAX_ROWS, N_NEIGHBORS, KnnGraph, Progress, _inverse_norms, build_knn_graph, exact_neighbors, normalize_rows
from .metrics import MetricSpec, resolve_metric
from .spreading import (
    ALPHA,
    LinearModel,
    Scores,
    ensemble_scorer,
    mix_scores,
    neighbour_scores,
    normalized_affinity,
    self_train,
)
from .thresholds import CrossValScores, ThresholdResult, calibrate_seed, choose_thresholds, cross_val_scores

log = logging.getLogger(__name__)

#: A fit releases the pool's index while it spreads (written to a file, read back to save the
#: run) only when X is larger than this: the index's fp16 codes are half X's float32 size, so
#: up to 64 MiB stay in memory (about 87,000 x 384), and a small pool skips the write (0.02 s
#: at 20,000 x 384).
RELEASE_INDEX_ABOVE_BYTES = 128 << 20

SEED, AUTO, ABSTAIN = "seed", "auto", "abstain"


@dataclass(frozen=True)
class AutoLabelResult:
    """What :meth:`AutoLabeler.fit` decided for every row.

    Attributes
    ----------
    labels : ndarray of shape (n_rows,), object
        The seed label, the accepted auto-label, or None for an abstained row.
    source : ndarray of shape (n_rows,), str
        ``"seed"``, ``"auto"`` or ``"abstain"``.
    confidence : ndarray of shape (n_rows,), float32
        Confidence of the predicted class (1.0 for seed rows).
    accepted : ndarray of int64
        Row numbers auto-labeled.
    abstained : ndarray of int64
        Unlabeled row numbers left without a label.
    thresholds : ThresholdResult
        Per-class table and pool estimates.
    """

    labels: NDArray[np.object_]
    source: NDArray[np.str_]
    confidence: NDArray[np.float32]
    accepted: NDArray[np.int64]
    abstained: NDArray[np.int64]
    thresholds: ThresholdResult

    @property
    def expected_precision(self) -> float:
        return self.thresholds.expected_precision

    @property
    def coverage(self) -> float:
        return self.thresholds.coverage


class _Prepared(NamedTuple):
    Xa: NDArray[np.float32]
    codes: NDArray[np.int64]
    classes: NDArray[Any]
    target: float
    metric_name: str
    metric_fn: Any
    min_support: int
    cal_mask: NDArray[np.bool_] | None
    trusted: bool
    in_cv: NDArray[np.bool_]
    single: NDArray[np.int64]
    n_splits: int
    design_weight: NDArray[np.float64] | None


class AutoLabeler(BaseEstimator):  # type: ignore[misc]
    """Grow a small labeled seed into reliable labels for a whole pool.

    Parameters
    ----------
    method : {"ensemble", "spreading", "self_training"}, default="ensemble"
        ``"ensemble"``: label spreading on the kNN graph mixed with a logistic regression
        on the embeddings, both trained on the same labels (inside each fold for the
        out-of-fold scores); the classifier's weight (0, 0.25, 0.5 or 0.75) is the one
        with the lowest out-of-fold log-loss (``linear_weight_``). ``"spreading"``: label
        spreading only (faster; the CLI's ``--fast``). ``"self_training"``: self-training
        of a logistic regression.
    target_precision : float in (0, 1], default=0.95
        Precision to meet (per class with `per_class`, else overall).
    metric : str or callable, default="target_precision"
        ``"target_precision"`` meets the target with the largest coverage;
        ``"precision"``, ``"recall"``, ``"f1"``, ``"f<beta>"``, ``"accuracy"`` or any
        ``metric(y_true, y_pred) -> float`` (y_pred -1 = abstained) is maximised instead.
    per_class : bool or "auto", default="auto"
        True: one threshold per class, each class meeting the target; False: one global
        threshold, the accepted rows meeting it together (a class with fewer than
        `min_support` held-out seed rows of its own above that cut abstains). ``"auto"`` (with the target
        metric) chooses both ways and keeps the one that certifies more of the pool
        (``result_.thresholds.mode`` says which; ties go to per class). Either way the
        accepted rows together meet the target; only True promises it for every class.
    n_neighbors : int, default=10
        Neighbours per row in the kNN graph.
    alpha : float in (0, 1), default=0.9
        Label spreading's clamping factor. 10 and 0.9 gave the best coverage at
        target precision 0.95 on digits and Fashion-MNIST (bench/README.md).
    n_splits : int, default=5
        Stratified folds over the labeled rows.
    min_support : int, default=3
        Seed rows that must lie at or above each threshold (in global mode: of each class
        that gets auto-labels).
    confidence_level : float in (0, 1), default=0.8
        How conservative the precision estimate behind a threshold is.
    graph_method : {"auto", "exact", "ivf"}, default="auto"
        Exact kNN up to `exact_max_rows` rows, faiss IVF above (``"auto"``).
    graph_space : {"raw", "whitened", "auto"}, default="raw"
        The space the kNN graph is built in (:mod:`labelseed.space`): the rows as given, or
        whitened by the pool's covariance (no labels used). Whitening gave more certified
        coverage on pixel and image-model vectors and less on MiniLM text and digits
        (bench/README.md); new items are mapped the same way before their neighbours are found.
        ``"auto"`` (method ``"ensemble"`` only) builds both graphs and chooses, with the linear
        classifier's weight and by the same nested out-of-fold log-loss, the graph of each
        fold and of the final scores (``graph_space_`` says which the final one used).
    exact_max_rows : int, default=5000
    self_training_threshold : float, default=0.9
    n_bootstrap : int, default=100
    label_sampling : {"auto", "per_class", "random"}, default="auto"
        What the precision estimates assume of the labeled rows that calibrate them:
        random *within each class*, in any numbers per class (pool class shares are
        then estimated from the pool, and each class's calibration allows for how far
        its share in the labels differs from its share in the pool), or a uniformly
        random sample of the pool.
        ``"auto"`` takes ``"random"`` unless the seed's predicted-class mix is implausible
        for a uniform sample of the pool (then ``"per_class"``); the choice is reported
        (``result_.thresholds.label_sampling``).
    random_state : int, default=0

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    thresholds_ : ndarray of shape (n_classes,)
    cv_results_ : dict of lists
        Per-class table: ``class``, ``threshold``, ``expected_precision``,
        ``precision_low``, ``precision_high``, ``n_accepted``, ``expected_coverage``,
        ``support``, ``n_seed``, ``oof_precision``, ``threshold_spread``, ``meets_target``.
    result_ : AutoLabelResult
    label_distributions_ : ndarray of shape (n_rows, n_classes)
    graph_ : KnnGraph or None
    space_map_ : SpaceMap or None
        The graph space's map (None for ``"raw"`` and for self-training).
    graph_space_ : str or None
        The space of ``graph_`` (``"raw"`` or ``"whitened"``; with ``"auto"``, the one chosen).
    linear_ : LinearModel or None
        The ensemble's logistic regression trained on every label.
    linear_weight_ : float
        Its weight in the scores (0 for spreading alone).
    n_splits_ : int
        Folds actually used.
    timings_ : dict of str to float
        Seconds spent per stage (graph, affinity, propagation, thresholds, decide).
    """

    def __init__(
        self,
        method: Literal["ensemble", "spreading", "self_training"] = "ensemble",
        target_precision: float = 0.95,
        metric: MetricSpec = "target_precision",
        per_class: bool | Literal["auto"] = "auto",
        n_neighbors: int = N_NEIGHBORS,
        alpha: float = ALPHA,
        n_splits: int = 5,
        min_support: int = 3,
        confidence_level: float = 0.8,
        graph_method: Literal["auto", "exact", "ivf"] = "auto",
        graph_space: Literal["raw", "whitened", "auto"] = "raw",
        exact_max_rows: int = EXACT_MAX_ROWS,
        self_training_threshold: float = 0.9,
        n_bootstrap: int = 100,
        label_sampling: Literal["auto", "per_class", "random"] = "auto",
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.target_precision = target_precision
        self.metric = metric
        self.per_class = per_class
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.n_splits = n_splits
        self.min_support = min_support
        self.confidence_level = confidence_level
        self.graph_method = graph_method
        self.graph_space = graph_space
        self.exact_max_rows = exact_max_rows
        self.self_training_threshold = self_training_threshold
        self.n_bootstrap = n_bootstrap
        self.label_sampling = label_sampling
        self.random_state = random_state

    # ----------------------------------------------------------------- fit
    def _prepare(self, X: ArrayLike, y: ArrayLike, calibrate: ArrayLike | None,
                 design_weight: ArrayLike | None = None) -> "_Prepared":
        """Every check of fit's inputs and parameters, before any expensive step (a caller that
        builds the graph first, :func:`labelseed.ops.fit`, runs it before that too)."""
        Xa = check_embeddings(X)
        codes, classes = encode_labels(y, Xa.shape[0])
        check_seed(codes, classes)
        target = check_fraction(self.target_precision, "target_precision")
        metric_name, metric_fn = resolve_metric(self.metric)
        check_fraction(self.confidence_level, "confidence_level")
        min_support = check_int(self.min_support, "min_support", 1)
        check_int(self.n_bootstrap, "n_bootstrap", 0)
        if self.label_sampling not in ("auto", "per_class", "random"):
            raise InputError(f"`label_sampling` must be 'auto', 'per_class' or 'random'; got {self.label_sampling!r}.")
        if self.per_class not in (True, False, "auto"):
            raise InputError(f"`per_class` must be True, False or 'auto'; got {self.per_class!r}.")
        check_graph_space(self.graph_space, self.method)
        if self.method not in ("ensemble", "spreading", "self_training"):
            raise InputError(f"`method` must be 'ensemble', 'spreading' or 'self_training'; got {self.method!r}.")
        if (isinstance(self.alpha, bool) or not isinstance(self.alpha, numbers.Real)
                or not 0 < float(self.alpha) < 1):
            raise InputError(f"`alpha` must be a number in (0, 1); got {self.alpha!r}.")
        if (isinstance(self.random_state, bool) or not isinstance(self.random_state, numbers.Integral)
                or not 0 <= self.random_state < 2 ** 32):
            raise InputError(f"`random_state` must be an integer in [0, 4294967295]; got {self.random_state!r}.")
        if not (codes == -1).any():
            raise InputError("Every row is labeled, so there is nothing to auto-label; add unlabeled rows (-1/None).")
        cal_mask = None if calibrate is None else np.asarray(calibrate, dtype=bool)
        if cal_mask is not None and cal_mask.shape != (Xa.shape[0],):
            raise InputError(f"`calibrate` must be a boolean mask of shape ({Xa.shape[0]},); got {cal_mask.shape}.")
        trusted = True
        if cal_mask is not None and not (cal_mask & (codes >= 0)).any():
            # Only picked labels: they still give an estimate, but not one to bet on.
            warnings.warn(
                "No labeled row was drawn at random (all were picked by select/query or come from an audit): the "
                "precision estimate rests on picked labels and cannot be trusted; audit the run "
                "(`labelseed audit`, then `fit --certify audit`) or label a random sample.",
                UntrustedEstimateWarning, stacklevel=3,
            )
            cal_mask, trusted = None, False
        in_cv = (codes >= 0) & (True if cal_mask is None else cal_mask)  # rows the folds hold out
        held = codes[in_cv]
        counts = np.bincount(held, minlength=len(classes))
        single = np.flatnonzero(counts == 1)
        if len(classes) == 1:
            # Nothing can be wrong when there is one class: spreading still runs (the report
            # shows it), but no threshold can be checked against wrong labels, so it abstains.
            warnings.warn(
                f"Only one class is labeled ({classes[0]!r}): every row abstains, because no threshold can be "
                "checked against wrong labels; label at least two rows of a second class.",
                FoldFallbackWarning, stacklevel=3,
            )
            if counts[0] < 2:
                raise InputError(f"Only one row is labeled ({classes[0]!r}); label at least two rows of each of "
                                 "two classes.")
            present = np.unique(held)
            n_splits = check_n_splits(np.searchsorted(present, held), classes[present], self.n_splits)
            single = np.arange(1)
        elif len(single) and len(single) < (counts > 0).sum():
            # One label cannot be cross-validated. It still spreads, and it is still held out
            # once, where it shows how much of its class leaks into the others; but its own
            # class gets no auto-labels until a second label arrives.
            names = ", ".join(repr(classes[i]) for i in single[:5]) + (" ..." if len(single) > 5 else "")
            warnings.warn(
                f"Class(es) {names} have a single labeled row: they spread but get no auto-labels; "
                "label at least 2 rows of a class (5 for 5-fold cross-validation) to auto-label it.",
                FoldFallbackWarning, stacklevel=3,
            )
            several = held[~np.isin(held, single)]
            present = np.unique(several)
            n_splits = check_n_splits(np.searchsorted(present, several), classes[present], self.n_splits)
        else:
            single = single[:0]
            present = np.unique(held)
            n_splits = check_n_splits(np.searchsorted(present, held), classes[present], self.n_splits)
        dw = None
        if design_weight is not None:
            dw = np.asarray(design_weight, dtype=np.float64)
            if dw.shape != (Xa.shape[0],):
                raise InputError(f"`design_weight` must have shape ({Xa.shape[0]},); got {dw.shape}.")
            if not (np.isfinite(dw[in_cv]).all() and (dw[in_cv] > 0).all()):
                raise InputError("`design_weight` must be finite and positive at every calibrating row.")
        return _Prepared(Xa, codes, classes, target, metric_name, metric_fn, min_support, cal_mask, trusted,
                         in_cv, single, n_splits, dw)

    def fit(
        self, X: ArrayLike, y: ArrayLike, *, graph: KnnGraph | Mapping[str, KnnGraph] | None = None,
        progress: Progress | None = None,
        calibrate: ArrayLike | None = None, design_weight: ArrayLike | None = None,
        space_map: SpaceMap | None = None,
    ) -> "AutoLabeler":
        """Fit on all rows; `y` marks unlabeled rows with -1 (ints) or None (strings).

        Parameters
        ----------
        X : array-like of shape (n_rows, n_dims)
        y : array-like of shape (n_rows,)
        graph : KnnGraph or dict of str to KnnGraph, optional
            A graph already built for `X` in the run's graph space (reused as is), or graphs by
            space (``{"raw": ..., "whitened": ...}``; those ``"auto"`` needs and not given are built).
        space_map : SpaceMap, optional
            The whitened space's map already fitted on `X` (:func:`labelseed.space.fit_space_map`,
            as a caller that built the whitened graph did); fitted here when needed and not given.
        progress : callable(stage, done, total), optional
        calibrate : array-like of bool, shape (n_rows,), optional
            Labeled rows that were drawn at random (see `label_sampling`), the only ones
            the precision estimates may learn from (default: every labeled row). Leave
            out rows picked by :func:`labelseed.select.select` or :func:`~labelseed.select.query`
            (chosen for being central or hard, they are no sample of the pool) and audit
            rows (a sample of one run's *accepted* rows). When no labeled row is marked,
            every labeled row calibrates and the result is marked untrusted
            (``result_.thresholds.trusted`` is False; a warning asks for an audit).
        design_weight : array-like of float, shape (n_rows,), optional
            For calibrating rows drawn with unequal but known probabilities (select
            ``"stratified"``, query ``"sampled"``): each row's weight, 1 / its probability of
            being drawn, scaled per draw (:func:`labelseed.thresholds.design_weights`); read
            only at calibrating rows. Default: every calibrating row was equally likely.
        """
        Xa, codes, classes, target, metric_name, metric_fn, min_support, cal_mask, trusted, in_cv, single, n_splits, \
            dw = self._prepare(X, y, calibrate, design_weight)
        n_classes = len(classes)
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = now - clock
            clock = now
            log.info("%s: %.2f s", stage, timings[stage])

        self.graph_ = None
        self.space_map_: SpaceMap | None = None
        self.graph_space_: str | None = None
        spaces = check_graph_space(self.graph_space, self.method)
        graphs: list[KnnGraph] = []
        maps: list[SpaceMap | None] = []
        if self.method in ("spreading", "ensemble"):
            given = dict(graph) if isinstance(graph, Mapping) else ({} if graph is None else {spaces[0]: graph})
            for name, known in given.items():
                if name not in spaces:
                    raise InputError(f"`graph` has a graph for space {name!r}, but graph_space={self.graph_space!r} "
                                     f"uses {' and '.join(map(repr, spaces))}.")
                if known.n_rows != Xa.shape[0]:
                    raise InputError(f"`graph` has {known.n_rows} rows but `X` has {Xa.shape[0]}; build it for "
                                     "this X.")
            # only the graph sees the mapped rows: the linear classifier keeps X as given
            built, found = graphs_in_spaces(
                Xa, spaces, lambda rows, unit: build_knn_graph(
                    rows, self.n_neighbors, method=self.graph_method, exact_max_rows=self.exact_max_rows,
                    random_state=self.random_state, progress=progress, normalized=unit),
                given=given, space_map=space_map, random_state=self.random_state)
            graphs = [built[name] for name in spaces]
            maps = [None if name == "raw" else found for name in spaces]
            self.graph_, self.space_map_, self.graph_space_ = graphs[0], maps[0], spaces[0]
            lap("graph")
            # the index is needed again only to save the run: a big one leaves memory meanwhile
            # (written to a file and read back); a small one would cost that write for nothing
            for g in graphs:
                if g.index is not None and Xa.nbytes > RELEASE_INDEX_ABOVE_BYTES:
                    g.index.release()
            S = [normalized_affinity(g.affinity()) for g in graphs]
            lap("affinity")

            # the classifier scales its products by the rows' inverse norms: no normalised copy of X
            graph_scorer = ensemble_scorer(S, Xa if self.method == "ensemble" else None, n_classes, float(self.alpha),
                                           random_state=self.random_state, progress=progress,
                                           scale=_inverse_norms(Xa) if self.method == "ensemble" else None)
            scorer: Callable[[list[NDArray[np.int64]]], list[Scores]] = graph_scorer
        else:
            graph_scorer = None
            Xn = normalize_rows(Xa)

            def scorer(code_sets: list[NDArray[np.int64]]) -> list[Scores]:  # type: ignore[no-redef]
                out = []
                for i, c in enumerate(code_sets):
                    out.append(self_train(Xn, c, n_classes, threshold=self.self_training_threshold,
                                          random_state=self.random_state).scores)
                    if progress:
                        progress("self-training", i + 1, len(code_sets))
                return out

        cv = cross_val_scores(scorer, codes, n_classes, n_splits, self.random_state, calibrate=cal_mask, weight=dw)
        lap("propagation")
        modes = [True, False] if self.per_class == "auto" and metric_fn is None else [bool(self.per_class)]
        spread_runs = graph_scorer.spread_runs if graph_scorer is not None else None
        # one step per threshold choice (mode x scores), reported as a stage like the others (1M rows: ~10 s)
        n_steps, steps_done = len(modes) * (2 if spread_runs is not None and metric_fn is None else 1), 0

        def thresholds_for(scores: CrossValScores) -> list[ThresholdResult]:
            nonlocal steps_done
            # the calibrations do not depend on the mode: fitted once for both
            calibrated = calibrate_seed(scores, n_classes, label_sampling=self.label_sampling,
                                        n_bootstrap=self.n_bootstrap, random_state=self.random_state,
                                        target_mode=metric_fn is None)
            out = []
            for mode in modes:
                out.append(choose_thresholds(
                    scores, classes, metric_name=metric_name, metric=metric_fn, target_precision=target,
                    per_class=mode, min_support=min_support, confidence_level=self.confidence_level,
                    n_bootstrap=self.n_bootstrap, random_state=self.random_state, blocked=single,
                    label_sampling=self.label_sampling, trusted=trusted, calibrated=calibrated,
                ))
                steps_done += 1
                if progress:
                    progress("thresholds", steps_done, n_steps)
            return out

        # (scores, thresholds, the linear classifier's weight, whether it was mixed in), the mix first: it wins ties
        mixed = graph_scorer is not None and graph_scorer.set_linear is not None
        options = [(cv, th, graph_scorer.weight if graph_scorer is not None else 0.0, mixed)
                   for th in thresholds_for(cv)]
        if spread_runs is not None and metric_fn is None:
            # the log-loss that set the weight is not the certified coverage: spreading alone is also
            # thresholded and kept when it certifies more (at 5-10 labels per class on Fashion-MNIST it does)
            cv_spread = cross_val_scores(lambda sets: spread_runs, codes, n_classes, n_splits, self.random_state,
                                         fold=cv.fold, calibrate=cal_mask, weight=dw)
            options += [(cv_spread, th, 0.0, False) for th in thresholds_for(cv_spread)]
        cv, th, weight, mixed = max(options, key=lambda o: o[1].coverage)  # the first of equals
        th = th.with_labels_needed()
        if graph_scorer is not None:  # the final scores' graph (auto: the one chosen); the other is let go
            chosen = graph_scorer.graph
            self.graph_, self.space_map_, self.graph_space_ = graphs[chosen], maps[chosen], spaces[chosen]
        lap("thresholds")
        self.new_item_scorer_: NewItemScorer | None = None
        self.new_item_thresholds_: ThresholdResult | None = None
        if graph_scorer is not None and self.graph_ is not None:
            if progress:
                progress("new-item thresholds", 0, 1)
            self.new_item_scorer_, self.new_item_thresholds_ = _fit_new_items(
                graph_scorer, mixed, graphs, Xa, cv, n_classes,
                lambda scores: choose_thresholds(
                    scores, classes, metric_name=metric_name, metric=metric_fn, target_precision=target,
                    per_class=th.mode == "per_class", min_support=min_support,
                    confidence_level=self.confidence_level, n_bootstrap=self.n_bootstrap,
                    random_state=self.random_state, blocked=single, label_sampling=self.label_sampling,
                    trusted=trusted,
                ))
            if progress:
                progress("new-item thresholds", 1, 1)
            lap("new-item thresholds")
        self.classes_ = classes
        self.n_splits_ = n_splits
        self.thresholds_ = th.thresholds
        self.cv_scores_: CrossValScores = cv
        self.label_distributions_ = cv.final.distribution
        self._codes = codes
        self.result_ = _decide(codes, classes, cv.final, th)
        self.cv_results_ = _table(th)
        self._X_fit = Xa if self.method in ("spreading", "ensemble") else None
        # the last label set scored holds every label: its linear model scores new rows, which
        # average their neighbours' *spread* scores and then mix in the linear classifier as fit did
        self.linear_weight_ = float(weight) if mixed else 0.0
        self.linear_: LinearModel | None = (graph_scorer.last_linear if graph_scorer is not None and mixed
                                            and weight > 0 else None)
        lap("decide")
        self.timings_ = timings
        return self

    # ---------------------------------------------------------------- audit
    def certify_with_audit(
        self, rows: ArrayLike, labels: ArrayLike, *, inclusion: ArrayLike | None = None,
    ) -> AutoLabelResult:
        """Raise thresholds until a verified audit of the accepted rows certifies them.

        Parameters
        ----------
        rows : array-like of int, shape (n_audited,)
            Row numbers of audited auto-labels (a random sample of the accepted rows,
            stratified by class as :func:`labelseed.select.audit_sample` draws it).
        labels : array-like, shape (n_audited,)
            The labels a person gave those rows (any value; a class not in the seed
            counts as wrong).
        inclusion : array-like of float, optional
            Each row's probability of having been drawn, when the audit came from
            another run (rows no longer accepted are ignored).

        Returns
        -------
        AutoLabelResult
            Also stored as ``result_`` (and ``thresholds_``, ``cv_results_``): each class's
            estimate is now its audited share of right labels with an exact interval
            (``certified_by == "audit"``); a class the audit cannot certify abstains and
            says how many more audited rows would certify it (``audit_needed``).
        """
        from .thresholds import audit_thresholds

        self._check_fitted()
        if self.metric != "target_precision":
            raise InputError("Audit certification needs metric='target_precision'; refit with it.")
        r = np.asarray(rows)
        if r.ndim != 1 or len(r) == 0:
            raise InputError("No audit labels: verify an audit sample first (`labelseed audit`), then import it.")
        if r.dtype.kind not in "iu":
            raise InputError(f"Audit `rows` must be row numbers (integers); got dtype {r.dtype}.")
        lab = np.asarray(labels, dtype=object)
        if lab.shape != r.shape:
            raise InputError(f"`labels` has {lab.shape[0] if lab.ndim else 0} entries but `rows` has {len(r)}.")
        n = len(self._codes)
        if r.min() < 0 or r.max() >= n:
            raise InputError(f"Audit rows must be in [0, {n}); got {int(r.min())}..{int(r.max())}.")
        seeded = r[self._codes[r] >= 0]
        if len(seeded):
            raise InputError(f"{len(seeded)} audited row(s) (e.g. row {int(seeded[0])}) are labeled seed rows, not "
                             "auto-labels; audit rows must be left unlabeled in the fit they certify.")
        final = self.cv_scores_.final
        known = {str(v): i for i, v in enumerate(self.classes_)}
        said = np.array([known.get(str(v), -1) for v in lab], dtype=np.int64)  # -1: a class the seed lacks
        right = (said >= 0) & (said == final.predicted[r])
        inc = None if inclusion is None else np.asarray(inclusion, dtype=np.float64)
        if inc is not None and (inc.shape != r.shape or not ((inc > 0) & (inc <= 1)).all()):
            raise InputError("`inclusion` must hold one probability in (0, 1] per audited row.")
        # the audited rows now carry a person's label: they are seed rows from here on, not pool rows
        codes = self._codes.copy()
        codes[r[said >= 0]] = said[said >= 0]
        pool = np.setdiff1d(self.cv_scores_.unlabeled, r)
        th = audit_thresholds(
            self.result_.thresholds, final.predicted, final.confidence, pool, r, right,
            inclusion=inc, confidence_level=float(self.confidence_level), random_state=self.random_state,
        )
        self.thresholds_ = th.thresholds
        self.result_ = _decide(codes, self.classes_, final, th)
        # an audited row of a class the seed lacks is neither seed nor auto-label
        self.result_.source[r[said < 0]] = ABSTAIN
        self.result_.labels[r[said < 0]] = None
        self.cv_results_ = _table(th)
        return self.result_

    # -------------------------------------------------------------- predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "result_"):
            raise NotFittedError("This AutoLabeler is not fitted yet; call fit(X, y) first.")

    def predict_proba(self, X: ArrayLike | None = None) -> NDArray[np.float32]:
        """Class scores, shape (n_rows, n_classes); rows with no path are all 0.

        Without `X`, the fitted rows (transductive). With new rows, the inductive scores
        that :meth:`predict` thresholds: the similarity-weighted mean of their `n_neighbors`
        nearest fitted rows' spread scores (found with the graph's index, as a saved run
        finds them; exact search for an exact graph), mixed with the linear classifier as
        the fit chose.
        """
        self._check_fitted()
        if X is None:
            return self.label_distributions_
        return self._new_item_scores(X).distribution

    def _new_item_scores(self, X: ArrayLike) -> Scores:
        if self.new_item_scorer_ is None or self._X_fit is None:
            raise InputError("Labeling new rows needs method='ensemble' or 'spreading'; pass X=None for the "
                             "fitted rows.")
        Xq = check_embeddings(X)
        Q = normalize_rows(Xq)
        if Q.shape[1] != self._X_fit.shape[1]:
            raise InputError(f"`X` has {Q.shape[1]} dimensions but the fitted data had {self._X_fit.shape[1]}.")
        space = self.space_map_
        Qg = Q if space is None else space.transform(Xq)  # neighbours are found in the graph's space
        if self.graph_ is not None and self.graph_.index is not None:  # the index a saved run searches
            idx, sim = self.graph_.index.neighbors(Qg, self.n_neighbors)
        else:
            pool = normalize_rows(self._X_fit) if space is None else space.transform(self._X_fit)
            idx, sim = exact_neighbors(Qg, pool, self.n_neighbors)
        return self.new_item_scorer_.scores(idx, sim, Q)

    def predict(self, X: ArrayLike | None = None) -> np.ndarray:
        """Labels that pass the thresholds; -1 (int labels) or None elsewhere.

        Without `X`: seed labels for seed rows and accepted auto-labels for the
        rest, exactly ``result_.labels``. With new rows: their inductive scores against the
        thresholds calibrated for new items (``new_item_thresholds_``: out-of-fold labeled
        rows scored the same way, as if new).
        """
        self._check_fitted()
        if X is None:
            labels = self.result_.labels
        else:
            s = self._new_item_scores(X)
            assert self.new_item_thresholds_ is not None
            ok = accept_new(s, self.new_item_thresholds_.thresholds)
            labels = np.array([self.classes_[p] if a else None for p, a in zip(s.predicted, ok)], dtype=object)
        if self.classes_.dtype.kind in "iu":
            return np.array([-1 if v is None else v for v in labels], dtype=np.int64)
        return labels


@dataclass(frozen=True)
class NewItemScorer:
    """How items that were not in the fit are scored: the similarity-weighted mean of their
    nearest pool rows' spread distributions, mixed with the linear classifier at the fit's
    weight. Out-of-fold labeled rows are scored the same way (their graph neighbours, each
    fold's spread and classifier) to calibrate the thresholds this path uses.

    Attributes
    ----------
    spread : ndarray of shape (n_rows, n_classes), float32
        The fitted rows' spread distributions (all labels).
    linear : LinearModel or None
    weight : float
        The classifier's weight (0 without one).
    """

    spread: NDArray[np.float32]
    linear: LinearModel | None
    weight: float

    def scores(self, indices: NDArray[np.int64], similarities: NDArray[np.float32],
               Xn: NDArray[np.float32] | None, scale: NDArray[np.float32] | None = None) -> Scores:
        """Scores of items whose nearest fitted rows are `indices` (n_items, k); `Xn` their unit
        vectors (or any, with `scale` their inverse norms) for the classifier."""
        s = neighbour_scores(indices, similarities, self.spread)
        if self.linear is None or self.weight == 0:
            return s
        assert Xn is not None
        # exact: an item's confidence must not depend on the chunk or worker it is scored in
        return mix_scores(s, self.linear.probabilities(Xn, scale, exact=True), self.weight)


def accept_new(scores: Scores, thresholds: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Which new items pass their predicted class's threshold."""
    return (scores.predicted >= 0) & (scores.confidence >= np.asarray(thresholds)[np.maximum(scores.predicted, 0)])


def _fit_new_items(scorer: ensemble_scorer, mixed: bool, graphs: list[KnnGraph], X: NDArray[np.float32],
                   cv: CrossValScores, n_classes: int,
                   thresholds: Callable[[CrossValScores], ThresholdResult]) -> tuple[NewItemScorer, ThresholdResult]:
    """The new-item scorer and its own thresholds. Each held-out labeled row is scored as if it
    were new (its graph neighbours' spread scores from the run that hid its fold, that fold's
    classifier and weight); the pool rows are scored the same way with every label, standing in
    for the new items to come (their class mix and confidences set coverage and priors). Each
    set's neighbours come from the graph its scores spread on (``scorer.set_graph``)."""
    sets = len(scorer.set_spread)
    use_linear = mixed and scorer.set_linear is not None
    scale = _inverse_norms(X) if use_linear else None

    def score(rows: NDArray[np.int64], s: int) -> Scores:
        graph = graphs[scorer.set_graph[s]]
        nb = neighbour_scores(graph.indices[rows], graph.similarities[rows], scorer.set_spread[s].distribution)
        if not use_linear or scorer.set_weight[s] == 0:
            return nb
        assert scorer.set_linear is not None and scale is not None
        return mix_scores(nb, scorer.set_linear[s].probabilities(X[rows], scale[rows]), scorer.set_weight[s])

    dist = np.zeros((len(cv.labeled), n_classes), dtype=np.float32)
    for f in range(cv.n_splits):
        part = np.flatnonzero(cv.fold == f)
        if len(part):
            dist[part] = score(cv.labeled[part], f).distribution
    final_dist = np.zeros((graphs[0].n_rows, n_classes), dtype=np.float32)
    final_dist[cv.unlabeled] = score(cv.unlabeled, sets - 1).distribution
    new_cv = CrossValScores(labeled=cv.labeled, y_true=cv.y_true, fold=cv.fold, oof=Scores.from_unnormalized(dist),
                            final=Scores.from_unnormalized(final_dist), n_splits=cv.n_splits, unlabeled=cv.unlabeled,
                            weight=cv.weight)
    last = scorer.set_spread[-1].distribution
    linear = scorer.set_linear[-1] if use_linear and scorer.set_linear is not None else None
    model = NewItemScorer(spread=last, linear=linear, weight=scorer.set_weight[-1] if linear is not None else 0.0)
    return model, thresholds(new_cv)


def _decide(codes: NDArray[np.int64], classes: np.ndarray, final: Scores, th: ThresholdResult) -> AutoLabelResult:
    n = len(codes)
    seed = codes >= 0
    p, c = final.predicted, final.confidence
    passes = (~seed) & (p >= 0) & (c >= th.thresholds[np.maximum(p, 0)])
    labels = np.full(n, None, dtype=object)
    labels[seed] = classes[codes[seed]]
    labels[passes] = classes[p[passes]]
    source = np.full(n, ABSTAIN, dtype="<U7")
    source[seed] = SEED
    source[passes] = AUTO
    conf = c.copy()
    conf[seed] = 1.0
    return AutoLabelResult(
        labels=labels,
        source=source,
        confidence=conf,
        accepted=np.flatnonzero(passes),
        abstained=np.flatnonzero(~seed & ~passes),
        thresholds=th,
    )


def _table(th: ThresholdResult) -> dict[str, list[Any]]:
    keys = ["threshold", "expected_precision", "precision_low", "precision_high", "n_accepted",
            "expected_coverage", "support", "n_seed", "oof_precision", "threshold_spread", "meets_target",
            "certified_by", "audit_needed", "labels_needed"]
    table: dict[str, list[Any]] = {"class": [r.label for r in th.per_class]}
    for k in keys:
        table[k] = [getattr(r, k) for r in th.per_class]
    return table


def _json_num(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def run_summary(model: AutoLabeler, shape: tuple[int, ...], inputs: dict[str, str], seconds: float) -> dict[str, Any]:
    """The JSON-ready record of a fitted run: pool estimates at the top, the per-class table below."""
    from . import __version__

    r = model.result_
    th = r.thresholds
    classes = []
    for row in th.per_class:
        d = {k: _json_num(v) for k, v in row.__dict__.items() if k != "fold_thresholds"}
        d["label"] = str(row.label)
        d["fold_thresholds"] = [_json_num(v) for v in row.fold_thresholds]
        classes.append(d)
    return {
        "expected_precision": _json_num(th.expected_precision),
        "expected_precision_interval": [_json_num(th.precision_low), _json_num(th.precision_high)],
        "coverage": _json_num(th.coverage),
        "n_rows": int(shape[0]),
        "n_dims": int(shape[1]),
        "n_seed": int((r.source == SEED).sum()),
        "n_auto": int(len(r.accepted)),
        "n_abstained": int(len(r.abstained)),
        "mode": th.mode,
        "metric": th.metric,
        "target_precision": _json_num(th.target_precision),
        "cv_score": _json_num(th.cv_score),
        "n_splits": int(model.n_splits_),
        "graph": model.graph_.method if model.graph_ is not None else None,
        "graph_space": getattr(model, "graph_space_", None),
        # what the kNN graph reached: recall@k of sampled rows against exact search (1.0 when exact)
        "graph_recall": (None if model.graph_ is None else _json_num(float(model.graph_.recall_estimate))),
        "graph_nprobe": (None if model.graph_ is None or model.graph_.nprobe is None else int(model.graph_.nprobe)),
        "graph_index": (None if model.graph_ is None or model.graph_.index is None else model.graph_.index.kind),
        "linear_weight": _json_num(getattr(model, "linear_weight_", 0.0)),
        "new_items": _new_items_summary(model),
        "estimate": estimate_basis(th),
        "params": {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                   for k, v in model.get_params().items()},
        "inputs": inputs,
        "seconds": round(seconds, 3),
        "timings": {k: round(float(v), 3) for k, v in getattr(model, "timings_", {}).items()},
        "version": __version__,
        "classes": classes,
    }


def _new_items_summary(model: AutoLabeler) -> dict[str, Any] | None:
    """What labeling new items against this run is expected to give (thresholds calibrated on
    held-out labeled rows scored as new items are), for summary.json and ``labelseed label``."""
    th = getattr(model, "new_item_thresholds_", None)
    if th is None:
        return None
    return {
        "expected_precision": _json_num(th.expected_precision),
        "expected_precision_interval": [_json_num(th.precision_low), _json_num(th.precision_high)],
        "expected_coverage": _json_num(th.coverage),
        "mode": th.mode,
        "assumes": "new items are drawn like the fitted pool; " + estimate_basis(th)["assumes"],
        "classes": [{"label": str(r.label), "threshold": _json_num(r.threshold),
                     "expected_precision": _json_num(r.expected_precision),
                     "precision_low": _json_num(r.precision_low), "precision_high": _json_num(r.precision_high),
                     "meets_target": bool(r.meets_target)} for r in th.per_class],
    }


def estimate_basis(th: ThresholdResult) -> dict[str, Any]:
    """What the printed precision rests on, for summary.json, status and the CLI."""
    if th.certified_by == "audit":
        assumes = ("certified by an audit: a verified random sample of the accepted auto-labels; "
                   "exact (Clopper-Pearson) bounds, no assumption about how the other labels were chosen")
    elif th.label_sampling == "per_class":
        assumes = ("the calibrating labels are a random sample within each class (class shares estimated "
                   "from the pool; a class's estimate rests on the labeled rows of each class that could leak "
                   "into it, few beside its size when that class is big, so audit a class before relying on it)")
    else:
        assumes = ("the calibrating labels are a random sample of the pool, each weighted by 1 / the probability "
                   "select/query drew it with" if th.design_weighted
                   else "the calibrating labels are a uniform random sample of the pool")
        if not math.isnan(th.sampling_p_value):
            assumes += f" (the seed's class mix matches the pool's: chi-square p = {th.sampling_p_value:.2f})"
    if not th.trusted:
        assumes = ("nothing it can stand on: every label was picked (by select/query or another tool), none "
                   "drawn at random, so this estimate cannot be trusted; audit the run (`labelseed audit`, "
                   "verify, import, then `labelseed fit --certify audit`)")
    return {
        "certified_by": th.certified_by,
        "label_sampling": th.label_sampling,
        "sampling_p_value": _json_num(th.sampling_p_value),
        "class_priors": None if th.class_priors is None else [round(float(v), 6) for v in th.class_priors],
        "n_calibration": int(th.n_calibration),
        "design_weighted": bool(th.design_weighted),
        "trusted": bool(th.trusted),
        "assumes": assumes,
    }


def query_next(model: AutoLabeler, X: ArrayLike, y: ArrayLike, budget: int, strategy: str = "sampled", *,
               random_state: int = 0) -> Any:
    """The next rows to label after `model` was fitted on ``(X, y)``: :func:`labelseed.select.query`
    fed with the model's decisions (accepted rows, classes whose target lacks support, and for
    ``"disagreement"`` a self-training run to disagree with). Returns a Selection."""
    from .select import query

    model._check_fitted()
    Xa = check_embeddings(X)
    codes, _ = encode_labels(y, Xa.shape[0])
    accepted = np.zeros(Xa.shape[0], dtype=bool)
    accepted[model.result_.accepted] = True
    unsupported = np.array([i for i, c in enumerate(model.result_.thresholds.per_class) if not c.meets_target],
                           dtype=np.int64)
    other = None
    if strategy == "disagreement":
        other = self_train(normalize_rows(Xa), codes, len(model.classes_), random_state=random_state).scores.predicted
    return query(Xa, model.label_distributions_, codes, budget, strategy, accepted=accepted, unsupported=unsupported,
                 other_predicted=other, random_state=random_state)
