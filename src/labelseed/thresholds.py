"""Out-of-fold scores -> per-class or global thresholds for a business metric.

1. :func:`cross_val_scores` hides one stratified fold of the labeled seed at a
   time (unlabeled rows stay in every fold's graph) and collects each labeled
   row's score from the run that did not see its label. All folds and the final
   run are handed to the scorer together, so label spreading solves them in one
   sparse solve.
2. :func:`fit_calibration` learns, out of fold, how often a prediction with a
   given confidence and class is right (a logistic model with class offsets
   shrunk towards a shared curve, so that a class with 10 seed labels borrows
   strength from the others).
3. :func:`choose_thresholds` picks one threshold per class (or one global) from
   the observed confidences: for ``target_precision`` the lowest threshold whose
   *conservative* expected precision on the pool (a lower bootstrap quantile)
   meets the target, with a minimum seed support above it; for any other metric
   the thresholds that maximise it on the out-of-fold predictions.
"""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray
from scipy import special

from .metrics import TARGET_PRECISION, Metric
from .spreading import Scores

log = logging.getLogger(__name__)

Scorer = Callable[[list[NDArray[np.int64]]], list[Scores]]

#: Bootstrap rows per class used for interval estimates on large pools.
MAX_POOL_SAMPLE = 20_000


@dataclass(frozen=True)
class CrossValScores:
    """Out-of-fold scores of the labeled seed plus the final run.

    Attributes
    ----------
    labeled : ndarray of shape (n_labeled,), int64
        Row numbers of the labeled seed.
    y_true : ndarray of shape (n_labeled,), int64
        Their class codes.
    fold : ndarray of shape (n_labeled,), int64
        The fold in which each labeled row was held out.
    oof : Scores
        Scores of the labeled rows, each from the run that hid its label (n_labeled rows).
    final : Scores
        Scores of every row from the run with all labels (n_rows rows).
    n_splits : int
    unlabeled : ndarray of int64
        The pool rows (no label at all): what thresholds are chosen for.
    """

    labeled: NDArray[np.int64]
    y_true: NDArray[np.int64]
    fold: NDArray[np.int64]
    oof: Scores
    final: Scores
    n_splits: int
    unlabeled: NDArray[np.int64]


def fold_code_sets(
    codes: NDArray[np.int64], n_splits: int, random_state: int, fold: NDArray[np.int64] | None = None,
    calibrate: NDArray[np.bool_] | None = None,
) -> tuple[list[NDArray[np.int64]], NDArray[np.int64], NDArray[np.int64]]:
    """Label vectors with one stratified fold hidden each (then the full one).

    Returns ``(code_sets, labeled, fold)``; the folds are materialised once so
    every threshold sees every fold (the talk's code exhausted a generator).
    `fold` gives the fold of each labeled row instead of drawing them. Only
    labeled rows in `calibrate` (default: all) are ever held out; the others
    stay labeled in every run.
    """
    from sklearn.model_selection import StratifiedKFold

    labeled = np.flatnonzero((codes >= 0) & (True if calibrate is None else calibrate))
    if fold is None:
        fold = np.empty(len(labeled), dtype=np.int64)
        skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        with warnings.catch_warnings():  # a class with a single row lands in one fold, as intended
            warnings.filterwarnings("ignore", "The least populated class", UserWarning)
            for f, (_, test) in enumerate(skf.split(np.zeros(len(labeled)), codes[labeled])):
                fold[test] = f
    sets = []
    for f in range(n_splits):
        c = codes.copy()
        c[labeled[fold == f]] = -1
        sets.append(c)
    sets.append(codes.copy())
    return sets, labeled, np.asarray(fold, dtype=np.int64)


def cross_val_scores(
    scorer: Scorer, codes: NDArray[np.int64], n_classes: int, n_splits: int, random_state: int = 0,
    fold: NDArray[np.int64] | None = None, calibrate: NDArray[np.bool_] | None = None,
) -> CrossValScores:
    """Out-of-fold scores for every labeled row in `calibrate` (default: all labeled rows).

    `fold` (one entry per such row) fixes the fold assignment instead of drawing it.
    Labeled rows outside `calibrate` (e.g. picked by active learning, so not a
    random sample of the pool) spread their labels in every run but are never
    held out, so they never shape the precision estimates.
    """
    sets, labeled, fold = fold_code_sets(codes, n_splits, random_state, fold, calibrate)
    runs = scorer(sets)
    dist = np.zeros((len(labeled), n_classes), dtype=np.float32)
    for f in range(n_splits):
        rows = np.flatnonzero(fold == f)
        dist[rows] = runs[f].distribution[labeled[rows]]
    return CrossValScores(
        labeled=labeled,
        y_true=codes[labeled],
        fold=fold,
        oof=Scores.from_unnormalized(dist),
        final=runs[-1],
        n_splits=n_splits,
        unlabeled=np.flatnonzero(codes < 0),
    )


# ---------------------------------------------------------------- calibration


def _logit(p: NDArray[np.floating]) -> NDArray[np.float64]:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Calibration:
    """P(label right | confidence, predicted class) learned out of fold."""

    coef: float
    offsets: NDArray[np.float64]  # (n_classes,) intercept per predicted class
    constant: float | None = None  # used when the seed had only right (or only wrong) predictions

    def predict(self, conf: NDArray[np.floating], pred: NDArray[np.int64]) -> NDArray[np.float64]:
        return self.predict_logit(_logit(conf), pred)

    def predict_logit(self, logit_conf: NDArray[np.float64], pred: NDArray[np.int64]) -> NDArray[np.float64]:
        """Like :meth:`predict`, from ``logit(confidence)`` computed once by the caller."""
        if self.constant is not None:
            return np.full(len(logit_conf), self.constant)
        z = self.coef * logit_conf + self.offsets[np.maximum(pred, 0)]
        return 1.0 / (1.0 + np.exp(-z))


def _ridge_logistic(F: NDArray[np.float64], t: NDArray[np.float64], penalty: NDArray[np.float64],
                    weights: NDArray[np.float64], n_iter: int = 50) -> NDArray[np.float64]:
    """Newton's method for L2-penalised logistic regression, for many row weightings at once.

    `weights` (n_fits, n_rows) holds each fit's row weights (bootstrap counts);
    returns the coefficients, shape (n_fits, n_features).
    """
    B, d = weights.shape[0], F.shape[1]
    w = np.zeros((B, d))
    ridge = np.diag(penalty + 1e-9)
    for _ in range(n_iter):
        p = 1.0 / (1.0 + np.exp(-(w @ F.T)))  # (B, m)
        grad = ((p - t) * weights) @ F + penalty * w
        H = np.matmul(F.T[None, :, :] * (weights * p * (1 - p))[:, None, :], F[None, :, :]) + ridge
        step = np.linalg.solve(H, grad[:, :, None])[:, :, 0]
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _features(conf: NDArray[np.floating], pred: NDArray[np.int64], n_classes: int) -> NDArray[np.float64]:
    m = len(conf)
    F = np.zeros((m, 2 + n_classes))
    F[:, 0] = 1.0
    F[:, 1] = _logit(conf)
    F[np.arange(m), 2 + pred] = 1.0
    return F


def fit_calibrations(
    conf: NDArray[np.floating],
    pred: NDArray[np.int64],
    correct: NDArray[np.bool_],
    n_classes: int,
    weights: NDArray[np.float64],
    *,
    C: float = 1.0,
) -> list[Calibration]:
    """One :class:`Calibration` per row weighting (e.g. bootstrap counts), fitted together.

    A logistic regression on ``logit(confidence)`` plus one-hot predicted class;
    the L2 penalty ``1/C`` (as in scikit-learn, intercept unpenalised) shrinks
    class offsets towards the shared intercept. A weighting in which all (or
    none) of the predictions are right gives a Jeffreys-smoothed constant.
    """
    t = correct.astype(np.float64)
    total = weights.sum(axis=1)
    right = weights @ t
    degenerate = (right == 0) | (right == total)
    out: list[Calibration | None] = [None] * len(weights)
    for b in np.flatnonzero(degenerate):
        out[b] = Calibration(0.0, np.zeros(n_classes), constant=float((right[b] + 0.5) / (total[b] + 1.0)))
    fit = np.flatnonzero(~degenerate)
    if len(fit):
        penalty = np.full(2 + n_classes, 1.0 / C)
        penalty[0] = 0.0
        W = _ridge_logistic(_features(conf, pred, n_classes), t, penalty, weights[fit])
        for b, w in zip(fit, W):
            # more confidence never means less precision
            out[b] = Calibration(max(float(w[1]), 0.0), w[0] + w[2:])
    return out  # type: ignore[return-value]


def fit_calibration(
    conf: NDArray[np.floating], pred: NDArray[np.int64], correct: NDArray[np.bool_], n_classes: int, *, C: float = 1.0
) -> Calibration:
    """Fit one :class:`Calibration` on out-of-fold predictions (see :func:`fit_calibrations`)."""
    if len(conf) == 0:
        return Calibration(0.0, np.zeros(n_classes), constant=0.5)
    return fit_calibrations(conf, pred, correct, n_classes, np.ones((1, len(conf))), C=C)[0]


# ------------------------------------------------------------------- results


@dataclass(frozen=True)
class ClassThreshold:
    """The chosen threshold of one class and what it is expected to give.

    Attributes
    ----------
    label : object
        The class.
    threshold : float
        Accept a row predicted as this class when its confidence is >= this
        (``inf``: accept none).
    expected_precision : float
        Expected share of right labels among this class's accepted pool rows (NaN if none).
    precision_low, precision_high : float
        Bootstrap interval of `expected_precision` (90% by default).
    n_accepted : int
        Pool rows accepted as this class.
    expected_coverage : float
        `n_accepted` as a share of the unlabeled pool.
    support : int
        Seed rows predicted as this class out of fold with confidence >= threshold.
    n_seed : int
        Labeled seed rows of this class.
    oof_precision : float
        Precision of those `support` seed rows (NaN if none).
    fold_thresholds : list of float
        The threshold chosen with each fold left out of the choice.
    threshold_spread : float
        Standard deviation of the finite `fold_thresholds` (NaN if fewer than two).
    meets_target : bool
        The class accepts rows and its conservative estimate meets the target
        (always True for metrics without a target).
    """

    label: Any
    threshold: float
    expected_precision: float
    precision_low: float
    precision_high: float
    n_accepted: int
    expected_coverage: float
    support: int
    n_seed: int
    oof_precision: float
    fold_thresholds: list[float]
    threshold_spread: float
    meets_target: bool


@dataclass(frozen=True)
class Curve:
    """Expected precision against pool coverage as one class's threshold moves."""

    thresholds: NDArray[np.float64]
    expected_precision: NDArray[np.float64]
    coverage: NDArray[np.float64]


@dataclass(frozen=True)
class ThresholdResult:
    """Thresholds for every class and the estimates that go with them.

    Attributes
    ----------
    thresholds : ndarray of shape (n_classes,), float64
        Per-class thresholds (all equal in global mode; ``inf`` accepts none).
    per_class : list of ClassThreshold
    expected_precision : float
        Expected precision over all accepted pool rows (NaN when none).
    precision_low, precision_high : float
        Its bootstrap interval.
    coverage : float
        Accepted share of the unlabeled pool.
    mode : str
        ``"per_class"`` or ``"global"``.
    metric : str
    target_precision : float or None
    cv_score : float
        The metric on the out-of-fold predictions at the chosen thresholds.
    curves : list of Curve
        One per class (for reports).
    """

    thresholds: NDArray[np.float64]
    per_class: list[ClassThreshold]
    expected_precision: float
    precision_low: float
    precision_high: float
    coverage: float
    mode: str
    metric: str
    target_precision: float | None
    cv_score: float
    curves: list[Curve] = field(default_factory=list)


# ------------------------------------------------------------ threshold search


def _ends_of_ties(sorted_desc: NDArray[np.floating]) -> NDArray[np.int64]:
    """Prefix lengths that end where the confidence changes (valid cut points)."""
    n = len(sorted_desc)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    change = np.flatnonzero(sorted_desc[1:] != sorted_desc[:-1]) + 1
    return np.append(change, n).astype(np.int64)


def _even_sample(n: int, m: int) -> NDArray[np.int64]:
    return np.arange(n) if n <= m else np.linspace(0, n - 1, m).round().astype(np.int64)


@dataclass
class _Group:
    """Pool and seed rows that one threshold governs (one class, or all in global mode).

    The pool side (an even sample of at most MAX_POOL_SAMPLE rows, its cut points and
    logits) is computed once and shared by every threshold choice over the seed side.
    """

    pool_conf: NDArray[np.float32]  # sorted descending
    pool_pred: NDArray[np.int64]
    pool_logit: NDArray[np.float64]
    cuts: NDArray[np.int64]  # prefix lengths where the confidence changes
    seed_conf: NDArray[np.float32]
    seed_fold: NDArray[np.int64]

    def without_fold(self, fold: int) -> "_Group":
        keep = self.seed_fold != fold
        return replace(self, seed_conf=self.seed_conf[keep], seed_fold=self.seed_fold[keep])


def _group(final: Scores, pool: NDArray[np.int64], cv: CrossValScores, cls: int | None) -> _Group:
    """Rows predicted as class `cls` (every reached row when None), pool sorted by confidence."""
    pp = final.predicted[pool]
    sel = pool[(pp >= 0) if cls is None else (pp == cls)]
    sel = sel[np.argsort(-final.confidence[sel], kind="stable")]
    sel = sel[_even_sample(len(sel), MAX_POOL_SAMPLE)]
    conf = final.confidence[sel]
    sp = cv.oof.predicted
    smask = (sp >= 0) if cls is None else (sp == cls)
    return _Group(
        pool_conf=conf,
        pool_pred=final.predicted[sel],
        pool_logit=_logit(conf),
        cuts=_ends_of_ties(conf),
        seed_conf=cv.oof.confidence[smask],
        seed_fold=cv.fold[smask],
    )


def _target_cut(
    g: _Group, calib_samples: list[Calibration], target: float, min_support: int, quantile: float
) -> tuple[float, bool]:
    """Lowest threshold whose `quantile` of expected precision meets `target`.

    Returns ``(threshold, feasible)``; ``(inf, False)`` when no threshold does.
    """
    if len(g.pool_conf) == 0:
        return math.inf, False
    conf, cuts = g.pool_conf, g.cuts
    P = _predict_all(calib_samples, g.pool_logit, g.pool_pred)
    ep = np.cumsum(P, axis=1)[:, cuts - 1] / cuts  # expected precision of each prefix
    meets = _quantile_at_least(ep, quantile, target) if len(calib_samples) > 1 else ep[0] >= target
    seed_sorted = np.sort(g.seed_conf)[::-1]
    cap = seed_sorted[min_support - 1] if len(seed_sorted) >= min_support else -math.inf
    ok = np.flatnonzero(meets & (conf[cuts - 1] <= cap))
    # without enough seed support at a threshold, the estimate above it is extrapolation
    if len(ok) == 0:
        return math.inf, False
    return float(conf[cuts[ok[-1]] - 1]), True


def _quantile_at_least(values: NDArray[np.float64], q: float, target: float) -> NDArray[np.bool_]:
    """``np.quantile(values, q, axis=0) >= target`` per column, by counting instead of sorting.

    The linear-interpolated quantile sits between the order statistics ``lo`` and
    ``lo + 1`` (``lo = floor((B - 1) q)``), so it meets `target` when at most ``lo``
    values fall below it, and misses when more than ``lo + 1`` do; only columns in
    between need the interpolation itself.
    """
    h = (values.shape[0] - 1) * q
    lo = math.floor(h)
    below = np.count_nonzero(values < target, axis=0)
    meets = below <= lo
    if h > lo:
        unsure = np.flatnonzero(below == lo + 1)
        if len(unsure):
            meets[unsure] = np.quantile(values[:, unsure], q, axis=0) >= target
    return meets


def _predict_all(cals: list[Calibration], logit_conf: NDArray[np.float64], pred: NDArray[np.int64]) -> NDArray[np.float64]:
    """P(right) under every calibration at once: shape (len(cals), len(pred))."""
    coef = np.array([c.coef for c in cals])
    offsets = np.stack([c.offsets for c in cals])
    z = np.multiply.outer(coef, logit_conf)
    if len(pred) and (pred == pred[0]).all():  # one class (per-class thresholds): no gather
        z += offsets[:, max(int(pred[0]), 0), None]
    else:
        z += offsets[:, np.maximum(pred, 0)]
    P = special.expit(z, out=z)
    for b, c in enumerate(cals):
        if c.constant is not None:
            P[b] = c.constant
    return P


def _bootstrap_calibrations(
    cv: CrossValScores, n_classes: int, n_bootstrap: int, rng: np.random.Generator, rows: NDArray[np.bool_] | None = None
) -> list[Calibration]:
    """The calibration fitted on all out-of-fold rows, then one per bootstrap resample."""
    reached = cv.oof.predicted >= 0
    keep = reached if rows is None else reached & rows
    conf, pred = cv.oof.confidence[keep], cv.oof.predicted[keep]
    correct = pred == cv.y_true[keep]
    m = len(conf)
    if m == 0:
        return [Calibration(0.0, np.zeros(n_classes), constant=0.5)]
    weights = np.ones((1 + n_bootstrap, m))
    for b in range(1, 1 + n_bootstrap):
        weights[b] = np.bincount(rng.integers(0, m, m), minlength=m)
    return fit_calibrations(conf, pred, correct, n_classes, weights)


def _oof_pred_at(cv: CrossValScores, thresholds: NDArray[np.float64]) -> NDArray[np.int64]:
    p = cv.oof.predicted
    t = np.where(p >= 0, thresholds[np.maximum(p, 0)], np.inf)
    return np.where(cv.oof.confidence >= t, p, -1)


def _maximise(cv: CrossValScores, metric: Metric, n_classes: int, per_class: bool, min_support: int,
              rows: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
    """Thresholds from observed out-of-fold confidences that maximise `metric`.

    Global: a single sweep. Per class: coordinate ascent over classes (two passes),
    each class's candidates keeping at least `min_support` accepted seed rows.
    """
    rows = np.ones(len(cv.y_true), dtype=bool) if rows is None else rows
    y = cv.y_true[rows]
    conf = cv.oof.confidence[rows]
    pred = cv.oof.predicted[rows]

    def score(th: NDArray[np.float64]) -> float:
        t = np.where(pred >= 0, th[np.maximum(pred, 0)], np.inf)
        v = metric(y, np.where(conf >= t, pred, -1))
        return -math.inf if v is None or math.isnan(v) else float(v)

    def candidates(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
        c = np.unique(conf[mask & (pred >= 0)])[::-1]
        c = c[min_support - 1 :] if len(c) >= min_support else c[:0]
        if len(c) > 256:  # observed values, thinned evenly for very large seeds
            c = c[_even_sample(len(c), 256)]
        return np.append(c, np.inf).astype(np.float64)

    th = np.full(n_classes, np.inf)
    if not per_class:
        best = (-math.inf, math.inf)
        for t in candidates(np.ones(len(y), dtype=bool)):
            s = score(np.full(n_classes, t))
            if s > best[0] or (s == best[0] and t < best[1]):
                best = (s, t)
        return np.full(n_classes, best[1])
    for _ in range(2):
        for c in range(n_classes):
            best = (score(th), th[c])
            for t in candidates(pred == c):
                trial = th.copy()
                trial[c] = t
                s = score(trial)
                if s > best[0] or (s == best[0] and t < best[1]):
                    best = (s, t)
            th[c] = best[1]
    return th


def choose_thresholds(
    cv: CrossValScores,
    classes: np.ndarray,
    *,
    metric_name: str = TARGET_PRECISION,
    metric: Metric | None = None,
    target_precision: float = 0.95,
    per_class: bool = True,
    min_support: int = 3,
    confidence_level: float = 0.8,
    n_bootstrap: int = 100,
    interval: float = 0.9,
    random_state: int = 0,
    blocked: NDArray[np.int64] | None = None,
) -> ThresholdResult:
    """Choose thresholds from out-of-fold scores and estimate what they give on the pool.

    Parameters
    ----------
    cv : CrossValScores
    classes : ndarray of shape (n_classes,)
    metric_name, metric :
        ``"target_precision"`` (metric None) or a metric to maximise on the seed.
    target_precision : float, default=0.95
        The precision to meet (per class, or overall in global mode).
    per_class : bool, default=True
        One threshold per class ("separately") or one for all ("altogether").
    min_support : int, default=3
        Seed rows that must lie at or above a threshold.
    confidence_level : float, default=0.8
        A threshold is accepted when the expected precision's lower
        ``1 - confidence_level`` bootstrap quantile meets the target.
    n_bootstrap : int, default=100
        Bootstrap resamples of the seed for the intervals.
    interval : float, default=0.9
        Width of the reported precision intervals.
    random_state : int, default=0
    blocked : ndarray of int, optional
        Class codes that get no auto-labels whatever their scores (e.g. a class
        with a single seed row, which no fold can validate).
    """
    n_classes = len(classes)
    rng = np.random.default_rng(random_state)
    pool = cv.unlabeled
    cals = _bootstrap_calibrations(cv, n_classes, n_bootstrap, rng)
    lo_q, hi_q = (1 - interval) / 2, 1 - (1 - interval) / 2
    target_mode = metric is None
    groups = [_group(cv.final, pool, cv, c) for c in range(n_classes)] if per_class else [_group(cv.final, pool, cv, None)]

    def _block(th: NDArray[np.float64]) -> NDArray[np.float64]:
        if blocked is not None and len(blocked):
            th = np.array(th, dtype=np.float64)
            th[blocked] = np.inf
        return th

    def thresholds_with(cal_list: list[Calibration], left_out: int | None) -> tuple[NDArray[np.float64], list[bool]]:
        """Thresholds chosen from all folds, or with fold `left_out` out of the choice."""
        rows = None if left_out is None else cv.fold != left_out
        if not target_mode:
            assert metric is not None
            th = _maximise(cv, metric, n_classes, per_class, min_support, rows)
            return _block(th), [True] * n_classes
        out, ok = [], []
        for g in groups:
            if left_out is not None:
                g = g.without_fold(left_out)
            t, feasible = _target_cut(g, cal_list, target_precision, min_support, 1 - confidence_level)
            out.append(t)
            ok.append(feasible)
        if not per_class:
            return _block(np.full(n_classes, out[0])), ok * n_classes
        return _block(np.asarray(out)), ok

    thresholds, feasible = thresholds_with(cals, None)

    # threshold spread: choose again with each fold left out of the choice
    fold_th = np.full((cv.n_splits, n_classes), np.inf)
    for f in range(cv.n_splits):
        fcals = _bootstrap_calibrations(cv, n_classes, 0, rng, cv.fold != f) if target_mode else []
        fold_th[f] = thresholds_with(fcals, f)[0]

    # estimates on the pool for the chosen thresholds
    fp, fc = cv.final.predicted[pool], cv.final.confidence[pool]
    t_row = np.where(fp >= 0, thresholds[np.maximum(fp, 0)], np.inf)
    accepted = (fp >= 0) & (fc >= t_row)
    lfc = _logit(fc)

    def estimate(mask: NDArray[np.bool_]) -> tuple[float, float, float]:
        """Point estimate on every accepted row; interval from the bootstrap on a sample of them."""
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            return math.nan, math.nan, math.nan
        point = float(cals[0].predict_logit(lfc[rows], fp[rows]).mean())
        if len(cals) == 1:
            return point, point, point
        if len(rows) > MAX_POOL_SAMPLE:
            rows = rng.choice(rows, MAX_POOL_SAMPLE, replace=False)
        vals = _predict_all(cals[1:], lfc[rows], fp[rows]).mean(axis=1)
        lo, hi = np.quantile(vals, [lo_q, hi_q])
        return point, float(lo), float(hi)

    oof_pred = _oof_pred_at(cv, thresholds)
    seed_counts = np.bincount(cv.y_true, minlength=n_classes)
    per: list[ClassThreshold] = []
    curves: list[Curve] = []
    n_pool = max(len(pool), 1)
    for c in range(n_classes):
        acc_c = accepted & (fp == c)
        ep, lo, hi = estimate(acc_c)
        sup = (oof_pred == c)
        oof_prec = float((cv.y_true[sup] == c).mean()) if sup.any() else math.nan
        ft = fold_th[:, c]
        finite = ft[np.isfinite(ft)]
        per.append(ClassThreshold(
            label=classes[c].item() if hasattr(classes[c], "item") else classes[c],
            threshold=float(thresholds[c]),
            expected_precision=ep,
            precision_low=lo,
            precision_high=hi,
            n_accepted=int(acc_c.sum()),
            expected_coverage=float(acc_c.sum() / n_pool),
            support=int(sup.sum()),
            n_seed=int(seed_counts[c]),
            oof_precision=oof_prec,
            fold_thresholds=[float(x) for x in ft],
            threshold_spread=float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
            meets_target=bool(feasible[c] and acc_c.any()) if target_mode else bool(acc_c.any()),
        ))
        curves.append(_curve(fc[fp == c], fp[fp == c], cals[0], n_pool))
    ep, lo, hi = estimate(accepted)
    from .metrics import precision as _precision

    cv_score = _precision(cv.y_true, oof_pred) if target_mode else float(metric(cv.y_true, oof_pred))  # type: ignore[misc]
    return ThresholdResult(
        thresholds=thresholds.astype(np.float64),
        per_class=per,
        expected_precision=ep,
        precision_low=lo,
        precision_high=hi,
        coverage=float(accepted.sum() / n_pool),
        mode="per_class" if per_class else "global",
        metric=metric_name,
        target_precision=float(target_precision) if target_mode else None,
        cv_score=float(cv_score),
        curves=curves,
    )


def _curve(conf: NDArray[np.float32], pred: NDArray[np.int64], cal: Calibration, n_pool: int, points: int = 200) -> Curve:
    if len(conf) == 0:
        e = np.empty(0)
        return Curve(e, e, e)
    order = np.argsort(-conf, kind="stable")
    conf, pred = conf[order], pred[order]
    ep = np.cumsum(cal.predict(conf, pred)) / np.arange(1, len(conf) + 1)
    idx = _even_sample(len(conf), points)
    return Curve(conf[idx].astype(np.float64), ep[idx], (idx + 1) / n_pool)
