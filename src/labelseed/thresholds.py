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
from typing import Any, Callable, Mapping

import numpy as np
from numpy.typing import NDArray
from scipy import special

from .metrics import TARGET_PRECISION, Metric
from .spreading import Scores

log = logging.getLogger(__name__)

Scorer = Callable[[list[NDArray[np.int64]]], list[Scores]]

#: Candidate thresholds an audit may raise a class to: the quantiles that cut its accepted rows
#: into this many equal parts (measured: fewer, fixed cuts make the audited share less optimistic
#: than a cut at every audited confidence; bench/README.md, honest estimates).
AUDIT_CUTS = 10

#: Bootstrap rows per class used for interval estimates on large pools.
MAX_POOL_SAMPLE = 20_000

#: Prior evidence in every calibration, worth this many labels: the pool's confidences at
#: :data:`CALIBRATION_PRIOR_POINTS` quantiles, each right with probability equal to its confidence
#: (the scores taken at face value). Without it, a seed with one or no wrong out-of-fold
#: prediction gave a calibration nearly flat in confidence, and the threshold fell to where the
#: pool is mixed: three overlapping Gaussian classes, 10 uniformly random labels a class,
#: reported +0.021 over the realized precision; with it +0.010, at coverage 0.202 instead of
#: 0.247 (20 repetitions, bench/README.md).
CALIBRATION_PRIOR_ROWS = 3.0
CALIBRATION_PRIOR_POINTS = 8


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
    weight : ndarray of shape (n_labeled,), float64, or None
        Design weight of each labeled row, 1 / its probability of being drawn, scaled to mean
        1 (:func:`design_weights`); None when every row was equally likely to be drawn.
    """

    labeled: NDArray[np.int64]
    y_true: NDArray[np.int64]
    fold: NDArray[np.int64]
    oof: Scores
    final: Scores
    n_splits: int
    unlabeled: NDArray[np.int64]
    weight: NDArray[np.float64] | None = None  # design weight per labeled row (mean 1); None: all 1


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
    weight: NDArray[np.float64] | None = None,
) -> CrossValScores:
    """Out-of-fold scores for every labeled row in `calibrate` (default: all labeled rows).

    `fold` (one entry per such row) fixes the fold assignment instead of drawing it.
    Labeled rows outside `calibrate` (e.g. picked by active learning, so not a
    random sample of the pool) spread their labels in every run but are never
    held out, so they never shape the precision estimates. `weight` (one per row,
    read at the calibrating rows) is each row's design weight, 1 / its probability of
    being drawn (:func:`design_weights`); default: equal.
    """
    sets, labeled, fold = fold_code_sets(codes, n_splits, random_state, fold, calibrate)
    w = None
    if weight is not None:
        w = np.asarray(weight, dtype=np.float64)[labeled]
        if len(w) and not np.allclose(w, w[0]):
            w = w / w.mean()
        else:
            w = None
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
        weight=w,
    )


def design_weights(inclusion: NDArray[np.floating], batch: NDArray[np.int64] | None = None) -> NDArray[np.float64]:
    """Weights that make rows drawn with unequal probabilities stand for the pool.

    A row drawn with probability ``pi`` stands for ``1 / pi`` rows of the pool (Horvitz and
    Thompson 1952). Each batch (one draw: a select, a query; default: all rows one batch) is
    scaled to mean 1, so batches count by their size, and a batch drawn uniformly at random
    gets weight 1 everywhere, as plain random labels do.

    Parameters
    ----------
    inclusion : ndarray of shape (n,)
        Probability in (0, 1] with which each row was drawn.
    batch : ndarray of int, shape (n,), optional
        The draw each row came from.

    Returns
    -------
    ndarray of shape (n,)
    """
    inc = np.asarray(inclusion, dtype=np.float64)
    if inc.size and not (np.isfinite(inc).all() and (inc > 0).all() and (inc <= 1).all()):
        raise ValueError("`inclusion` must hold probabilities in (0, 1].")
    w = 1.0 / inc
    b = np.zeros(len(w), dtype=np.int64) if batch is None else np.unique(np.asarray(batch), return_inverse=True)[1]
    mean = np.bincount(b, weights=w) / np.maximum(np.bincount(b), 1)
    return w / mean[b]


def _evidence_weights(cv: CrossValScores, n_classes: int) -> NDArray[np.float64] | None:
    """Design weights scaled within each true class to sum to its effective sample size
    ``(sum w)^2 / sum w^2`` (Kish): counts of right and wrong answers then carry the
    precision that unequal weights leave them, not the number of rows."""
    if cv.weight is None:
        return None
    w, y = cv.weight, cv.y_true
    s1 = np.bincount(y, weights=w, minlength=n_classes)
    s2 = np.bincount(y, weights=w * w, minlength=n_classes)
    n_eff = np.divide(s1 * s1, s2, out=np.zeros(n_classes), where=s2 > 0)
    scale = np.divide(n_eff, s1, out=np.zeros(n_classes), where=s1 > 0)
    return w * scale[y]


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
                    weights: NDArray[np.float64], n_iter: int = 50,
                    offset: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Newton's method for L2-penalised logistic regression, for many row weightings at once.

    `weights` (n_fits, n_rows) holds each fit's row weights (bootstrap counts); `offset`
    (n_fits, n_rows), a fixed term added to each row's logit; returns the coefficients,
    shape (n_fits, n_features).
    """
    B, d = weights.shape[0], F.shape[1]
    w = np.zeros((B, d))
    ridge = np.diag(penalty + 1e-9)
    off = 0.0 if offset is None else offset
    for _ in range(n_iter):
        p = 1.0 / (1.0 + np.exp(-(w @ F.T + off)))  # (B, m)
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
    rng: np.random.Generator | None = None,
    prior_conf: NDArray[np.floating] | None = None,
    shift: NDArray[np.float64] | None = None,
) -> list[Calibration]:
    """One :class:`Calibration` per row weighting (e.g. bootstrap counts), fitted together.

    A logistic regression on ``logit(confidence)`` plus one-hot predicted class;
    the L2 penalty ``1/C`` (as in scikit-learn, intercept unpenalised) shrinks
    class offsets towards the shared intercept. A weighting in which all (or
    none) of the predictions are right has no slope to learn: it gives a constant,
    the Jeffreys posterior mean for the first weighting and, with `rng`, a draw
    from that posterior for the others (bootstrap resamples of an all-correct seed
    are all all-correct, and a constant for each would claim zero uncertainty).
    A fit whose slope comes out negative is refitted flat (slope 0), so more
    confidence never means less precision and the intercept stays consistent.

    With `prior_conf` (confidences, e.g. the pool's quantiles), each fit also learns from
    :data:`CALIBRATION_PRIOR_ROWS` labels' worth of pseudo-rows at those confidences, each
    right with probability equal to its confidence: thin or one-sided evidence then gives a
    curve that falls where the scores are unsure, not a constant. A resample with all (or
    none) of its rows right keeps that shape, its level drawn from the Jeffreys posterior.

    `shift` (n_classes,) or (n_fits, n_classes): a fixed logit term per predicted class, the
    point its penalised offset is shrunk to instead of the shared intercept (see
    :func:`label_shift_offsets`). A constant (all right or all wrong, without `prior_conf`)
    has no class offsets to shift.
    """
    t = correct.astype(np.float64)
    total = weights.sum(axis=1)
    right = weights @ t
    n_eff = total**2 / np.maximum((weights**2).sum(axis=1), 1e-300)  # weighted rows count for less
    degenerate = (right <= 1e-9 * total) | (right >= total * (1 - 1e-9))

    def jeffreys(b: int) -> float:
        k = float(right[b] / total[b] * n_eff[b]) if total[b] > 0 else 0.0
        a_, b_ = k + 0.5, float(n_eff[b]) - k + 0.5
        return a_ / (a_ + b_) if (b == 0 or rng is None) else float(rng.beta(a_, b_))

    penalty = np.full(2 + n_classes, 1.0 / C)
    penalty[0] = 0.0
    F = _features(conf, pred, n_classes)
    S = np.broadcast_to(np.zeros(n_classes) if shift is None else np.asarray(shift, dtype=np.float64),
                        (len(weights), n_classes))
    row_off = S[:, pred]  # (fits, rows)
    if prior_conf is not None and len(prior_conf):
        q = np.clip(np.asarray(prior_conf, dtype=np.float64), 1e-3, 1 - 1e-3)
        Fp = np.zeros((len(q), F.shape[1]))  # no class offset: the prior speaks to the shared curve only
        Fp[:, 0], Fp[:, 1] = 1.0, _logit(q)
        Wp = np.concatenate([weights, np.full((len(weights), len(q)), CALIBRATION_PRIOR_ROWS / len(q))], axis=1)
        off = np.concatenate([row_off, np.zeros((len(weights), len(q)))], axis=1)  # pseudo-rows: no class
        W = _monotone_logistic(np.vstack([F, Fp]), np.concatenate([t, q]), penalty, Wp, offset=off)
        if rng is not None:  # resampled rows all right (or all wrong): no spread without a drawn level
            deg = np.flatnonzero(degenerate[1:]) + 1
            if len(deg):
                W[deg, 0] += _level_shifts(W[deg], F, weights[deg], np.array([jeffreys(int(b)) for b in deg]),
                                           offset=row_off[deg])
        return [Calibration(float(w[1]), w[0] + w[2:] + S[b]) for b, w in enumerate(W)]
    out: list[Calibration | None] = [None] * len(weights)
    for b in np.flatnonzero(degenerate):
        out[b] = Calibration(0.0, np.zeros(n_classes), constant=jeffreys(int(b)))
    fit = np.flatnonzero(~degenerate)
    if len(fit):
        W = _monotone_logistic(F, t, penalty, weights[fit], offset=row_off[fit])
        for b, w in zip(fit, W):
            out[b] = Calibration(float(w[1]), w[0] + w[2:] + S[b])
    return out  # type: ignore[return-value]


def _monotone_logistic(F: NDArray[np.float64], t: NDArray[np.float64], penalty: NDArray[np.float64],
                       weights: NDArray[np.float64], offset: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """:func:`_ridge_logistic`, with every fit whose slope (column 1) comes out negative refitted
    with the slope pinned at 0 (intercept and offsets then fit without it)."""
    W = _ridge_logistic(F, t, penalty, weights, offset=offset)
    neg = np.flatnonzero(W[:, 1] < 0)
    if len(neg):
        flat = penalty.copy()
        flat[1] = 1e12
        W[neg] = _ridge_logistic(F, t, flat, weights[neg], offset=None if offset is None else offset[neg])
        W[neg, 1] = 0.0
    return W


def _level_shifts(W: NDArray[np.float64], F: NDArray[np.float64], weights: NDArray[np.float64],
                  means: NDArray[np.float64], offset: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """For each fit (rows of `W`, coefficients over the features `F`), the intercept shift that
    makes its weighted mean probability over the rows of `F` equal `means`: a bisection, all fits
    at once (the mean rises with the shift)."""
    z = W @ F.T + (0.0 if offset is None else offset)  # (fits, rows)
    total = np.maximum(weights.sum(axis=1), 1e-300)
    lo, hi = np.full(len(W), -40.0), np.full(len(W), 40.0)
    for _ in range(45):
        mid = (lo + hi) / 2
        got = (special.expit(z + mid[:, None]) * weights).sum(axis=1) / total
        below = got < means
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


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
    certified_by : str
        ``"cross-validation"`` or ``"audit"`` (the estimate is then the audited share
        of right labels and its exact Clopper-Pearson interval; `support` counts the
        audited rows at or above the threshold).
    audit_needed : int or None
        After an audit, for a class it could not certify: how many more audited rows
        (all right at the class's audited rate) would certify it; None when none would.
    labels_needed : int or None
        For a class cross-validation could not certify (per-class mode): about how many
        more uniformly random labels (of any class) would, if the calibration's precision
        holds (:func:`_labels_needed`); None when no cut's expected precision beats the
        target, or the class is certified.
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
    certified_by: str = "cross-validation"
    audit_needed: int | None = None
    labels_needed: int | None = None


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
    label_sampling : str
        The sampling the estimates assume of the calibration rows (``"per_class"``:
        random within each class; ``"random"``: uniformly random rows of the pool).
    sampling_p_value : float
        With ``label_sampling="auto"``: the chi-square p-value of the seed's out-of-fold
        predicted classes as a sample of the pool's predicted-class mix (below 0.05:
        ``"per_class"`` was assumed).
    class_priors : ndarray of shape (n_classes,)
        The pool class shares the estimates used.
    n_calibration : int
        Labeled rows the estimates learned from (held out by the folds).
    design_weighted : bool
        True when those rows carried design weights (drawn with unequal, known probabilities).
    trusted : bool
        False when those rows were picked by the tool (select/query), not drawn at random.
    certified_by : str
        ``"cross-validation"``, or ``"audit"`` after :func:`audit_thresholds`.
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
    label_sampling: str = "random"
    sampling_p_value: float = math.nan
    class_priors: NDArray[np.float64] | None = None
    n_calibration: int = 0
    design_weighted: bool = False
    trusted: bool = True
    certified_by: str = "cross-validation"
    _explain: Callable[["ThresholdResult"], "ThresholdResult"] | None = field(default=None, repr=False, compare=False)

    def with_labels_needed(self) -> "ThresholdResult":
        """This result with ``labels_needed`` filled in for the classes it does not certify
        (computed on request: a caller comparing several results pays for one)."""
        return self if self._explain is None else self._explain(self)


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
    floor: float  # lowest out-of-fold confidence of any calibration row: the evidence ends there
    evidence: "_Evidence"  # the seed side: the group's out-of-fold rows

    def without_fold(self, fold: int) -> "_Group":
        return replace(self, evidence=self.evidence.without_fold(fold))


@dataclass
class _Evidence:
    """The seed's own out-of-fold evidence about one group's precision, stratified by true class.

    Labels drawn at random *within* classes make every class's rates (how often its rows
    are predicted into the group, rightly or wrongly) measurable, but not their mix: the
    precision of a group is ``sum_j prior_j R_j / sum_j prior_j (R_j + W_j)``, with ``R_j``
    (``W_j``) the share of class j's rows predicted into the group rightly (wrongly) at or
    above the threshold and the pool's class priors. Each rate gets a Beta posterior:
    Jeffreys for right answers; for wrong ones half a pseudo-row split over the classes a
    row could be wrongly sent to, so that 0 wrong of 15 rows of a class 9 times more common
    than the group's still leaves room for many false positives.
    """

    conf: NDArray[np.float32]  # the group's seed rows (predicted into it), out-of-fold confidence
    true: NDArray[np.int64]  # their true class
    right: NDArray[np.bool_]
    fold: NDArray[np.int64]
    fold_counts: NDArray[np.float64]  # (n_splits, K) calibration rows per fold and true class
    left_out: int | None
    priors: NDArray[np.float64]
    group: int | None  # the class, or None for one global threshold
    weight: NDArray[np.float64] | None = None  # per row (see _evidence_weights); None: 1 each

    @property
    def n_true(self) -> NDArray[np.float64]:
        n = self.fold_counts.sum(axis=0)
        return n if self.left_out is None else n - self.fold_counts[self.left_out]

    def without_fold(self, fold: int) -> "_Evidence":
        keep = self.fold != fold
        return replace(self, conf=self.conf[keep], true=self.true[keep], right=self.right[keep],
                       fold=self.fold[keep], left_out=fold, weight=None if self.weight is None else self.weight[keep])

    def counts(self, thresholds: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Right and wrong counts per true class at or above each threshold: two (n_t, K) arrays."""
        K = len(self.priors)
        order = np.argsort(-self.conf, kind="stable")
        conf = self.conf[order]
        hits = np.zeros((len(conf) + 1, 2 * K))
        hits[np.arange(1, len(conf) + 1), self.true[order] + K * (~self.right[order])] = (
            1.0 if self.weight is None else self.weight[order])
        cum = np.cumsum(hits, axis=0)
        idx = np.searchsorted(-conf, -np.asarray(thresholds, dtype=np.float32), side="right")
        c = cum[idx]
        return c[:, :K], c[:, K:]


    def precision(self, thresholds: NDArray[np.floating], q: float = 0.5) -> NDArray[np.float64]:
        """The evidence's precision at each threshold (posterior medians by default).

        Counts change only at the seed's own confidences, so each distinct count is
        evaluated once."""
        right, wrong = self.counts(thresholds)
        key = right.sum(axis=1) * (len(self.conf) + 1) + wrong.sum(axis=1)
        _, first, back = np.unique(key, return_index=True, return_inverse=True)
        K = len(self.priors)
        p = stratified_precision(right[first], wrong[first], self.n_true, self.priors, _can_right(K, self.group),
                                 _wrong_prior(K, self.group), q=q)
        return p[back.ravel()]


def _can_right(n_classes: int, group: int | None) -> NDArray[np.bool_]:
    """Which true classes can be accepted *rightly* into a group: its own class, or every class."""
    return np.ones(n_classes, dtype=bool) if group is None else np.arange(n_classes) == group


def _wrong_prior(n_classes: int, group: int | None) -> float:
    """Pseudo-rows of wrong answers per true class: half a row, split over the groups a row
    could be wrongly sent to."""
    return 0.5 if group is None else 0.5 / max(n_classes - 1, 1)


def stratified_precision(
    right: NDArray[np.float64], wrong: NDArray[np.float64], n_true: NDArray[np.float64], priors: NDArray[np.float64],
    can_right: NDArray[np.bool_], wrong_prior: float, *, q: float | None = 0.5, rng: np.random.Generator | None = None,
    draws: int = 0,
) -> NDArray[np.float64]:
    """Precision ``sum_j prior_j R_j / sum_j prior_j (R_j + W_j)`` from per-class counts.

    `right`/`wrong` (..., K): rows of each true class accepted rightly / wrongly, out of
    `n_true` (K,). Rates get Beta posteriors (Jeffreys for right, ``wrong_prior`` pseudo-rows
    for wrong); with `q` both sit at their pessimistic `q` quantile (0.5: medians), else
    `draws` random draws are returned along a new first axis.
    """
    has = n_true > 0
    ra, rb = right + 0.5, np.maximum(n_true - right, 0) + 0.5
    wa, wb = wrong + wrong_prior, np.maximum(n_true - wrong, 0) + 0.5
    if q is not None:
        R = special.betaincinv(ra, rb, q)
        W = special.betaincinv(wa, wb, 1 - q)
    else:
        if rng is None:
            raise ValueError("`rng` is needed for draws.")
        # draw only the rates that count (one right rate per class in the group, a wrong rate
        # per class with rows): the rest are multiplied by 0 anyway
        rc, wc = np.flatnonzero(has & can_right), np.flatnonzero(has)
        good = rng.beta(ra[..., rc], rb[..., rc], size=(draws, *ra[..., rc].shape)) @ priors[rc]
        bad = rng.beta(wa[..., wc], wb[..., wc], size=(draws, *wa[..., wc].shape)) @ priors[wc]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(good + bad > 0, good / np.maximum(good + bad, 1e-300), 0.0)
    good = (R * (has & can_right) * priors).sum(axis=-1)
    bad = (W * has * priors).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(good + bad > 0, good / np.maximum(good + bad, 1e-300), 0.0)


def stratified_interval(
    right: NDArray[np.float64], wrong: NDArray[np.float64], n_true: NDArray[np.float64], priors: NDArray[np.float64],
    can_right: NDArray[np.bool_], wrong_prior: float, lo_q: float, hi_q: float, rng: np.random.Generator,
    draws: int = 2000,
) -> tuple[float, float]:
    """Quantiles of :func:`stratified_precision` over posterior draws."""
    p = stratified_precision(right, wrong, n_true, priors, can_right, wrong_prior, q=None, rng=rng, draws=draws)
    lo, hi = np.quantile(p, [lo_q, hi_q])
    return float(lo), float(hi)


def _group(final: Scores, pool: NDArray[np.int64], cv: CrossValScores, cls: int | None,
           priors: NDArray[np.float64], fold_counts: NDArray[np.float64],
           ev_weight: NDArray[np.float64] | None = None) -> _Group:
    """Rows predicted as class `cls` (every reached row when None), pool sorted by confidence.

    `fold_counts` (n_splits, n_classes): calibration rows per fold and true class."""
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
        floor=float(cv.oof.confidence[sp >= 0].min()) if (sp >= 0).any() else math.inf,
        evidence=_Evidence(
            conf=cv.oof.confidence[smask], true=cv.y_true[smask], right=(sp == cv.y_true)[smask],
            fold=cv.fold[smask], fold_counts=fold_counts, left_out=None, priors=priors, group=cls,
            weight=None if ev_weight is None else ev_weight[smask],
        ),
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
    seed_sorted = np.sort(g.evidence.conf)[::-1]
    cap = seed_sorted[min_support - 1] if len(seed_sorted) >= min_support else -math.inf
    # below the lowest out-of-fold confidence the calibration has seen no evidence at all:
    # the model would extrapolate there, so no threshold goes below it (the slope is shared
    # by all classes, so any class's evidence counts)
    at = conf[cuts - 1]
    ok = (at <= cap) & (at >= g.floor)
    # the cuts allowed are one run (confidences descend); only their prefixes need the calibrations
    allowed = np.flatnonzero(ok)
    if len(allowed) == 0:
        return math.inf, False
    first, last = int(allowed[0]), int(allowed[-1])
    span = cuts[first : last + 1]
    n_rows = int(span[-1])
    P = _predict_all(calib_samples, g.pool_logit[:n_rows], g.pool_pred[:n_rows])
    ep = np.cumsum(P, axis=1)[:, span - 1] / span  # expected precision of each prefix
    meets = _quantile_at_least(ep, quantile, target) if len(calib_samples) > 1 else ep[0] >= target
    ok[first : last + 1] &= meets
    # the class's own stratified evidence must agree with the shared model (its offsets are
    # shrunk towards the other classes, which can hide a class that swallows a common one)
    if ok.any():
        cand = np.flatnonzero(ok)
        ok[cand] = g.evidence.precision(at[cand]) >= target
    passing = np.flatnonzero(ok)
    # without enough seed support at a threshold, the estimate above it is extrapolation
    if len(passing) == 0:
        return math.inf, False
    return float(conf[cuts[passing[-1]] - 1]), True


#: Beyond this many more labels a class is reported as not certifiable by labels alone.
LABELS_NEEDED_LIMIT = 100_000


def _labels_needed(g: _Group, calib_samples: list[Calibration], target: float, min_support: int, quantile: float,
                   n_calibration: int, n_group: int, n_pool: int, all_right_mean: float | None = None) -> int | None:
    """About how many more uniformly random labels would let the group's threshold be certified.

    For each cut whose expected precision (point calibration) beats the target, two things
    must grow: the bootstrap spread of the calibration, which shrinks like one over the
    square root of the calibration rows (so ``n (spread / margin)^2 - n`` more rows close the
    gap between the lower quantile and the target), and the group's own support above the cut
    (`min_support` rows, arriving at the rate the pool puts rows above the cut). When every
    calibration row was right (`all_right_mean`: the point calibration's mean over them), the
    level is a Jeffreys posterior: its lower quantile is about ``quantile^(1 / (n + 1/2))``
    after n right rows in all, and a cut meets the target once that level brings its error rate,
    which scales with the level's (a shift moves every row's error odds alike), below
    ``1 - target``. The cheapest cut counts; None when no cut's expected precision beats the target or more than
    :data:`LABELS_NEEDED_LIMIT` labels would be needed.
    """
    if len(g.pool_conf) == 0 or len(calib_samples) < 2:
        return None
    P = _predict_all(calib_samples, g.pool_logit, g.pool_pred)
    ep = np.cumsum(P, axis=1)[:, g.cuts - 1] / g.cuts
    point = ep[0]
    low = np.quantile(ep[1:], quantile, axis=0)
    ok = np.flatnonzero(point > target)
    if len(ok) == 0:
        return None
    spread = np.maximum(point[ok] - low[ok], 0.0)
    boot = n_calibration * ((spread / (point[ok] - target)) ** 2 - 1)
    at = g.pool_conf[g.cuts[ok] - 1]
    have = (g.evidence.conf[:, None] >= at[None, :]).sum(axis=0)
    # pool rows above the cut as a share of the pool (the group's rows are an even sample of its n_group)
    share = g.cuts[ok] / len(g.pool_conf) * n_group / max(n_pool, 1)
    support = np.maximum(min_support - have, 0) / share
    if calib_samples[0].constant is not None:
        # every calibration row was right, no prior shape: the estimate is a Jeffreys posterior whose
        # lower quantile is about quantile^(1 / (n + 1/2)), so n = ln(quantile) / ln(target) - 1/2 right
        # rows in all suffice; the square-root rule is far off here (binary digits, 8 labels a class: 194 vs 16)
        boot = np.full(len(ok), max(math.log(quantile) / math.log(target) - 0.5 - n_calibration, 0.0))
    elif all_right_mean is not None:
        # the same posterior sets the level of a shaped curve: the cut's error is (1 - level) times
        # its ratio to the seed's mean error at the point fit
        ratio = (1 - point[ok]) / max(1 - all_right_mean, 1e-12)
        level = np.clip(1 - (1 - target) / np.maximum(ratio, 1e-12), 1e-12, 1 - 1e-12)
        boot = np.maximum(math.log(quantile) / np.log(level) - 0.5 - n_calibration, 0.0)
    need = np.ceil(np.maximum(np.maximum(boot, support), 1.0))
    best = float(need.min())
    return int(best) if best <= LABELS_NEEDED_LIMIT else None


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


#: Rows from which :func:`_predict_all` looks for repeated (confidence, class) pairs.
DEDUP_MIN_ROWS = 512


def _predict_all(cals: list[Calibration], logit_conf: NDArray[np.float64], pred: NDArray[np.int64]) -> NDArray[np.float64]:
    """P(right) under every calibration at once: shape (len(cals), len(pred)).

    Where many rows share a (confidence, class) pair (spread scores saturate at 1 on easy
    pools: 19,900 rows, 10 distinct pairs), each pair is evaluated once and copied to its
    rows; the values are the same either way, the logistic is elementwise."""
    n = len(pred)
    if n >= DEDUP_MIN_ROWS:
        order = np.lexsort((logit_conf, pred))
        lo, pr = logit_conf[order], pred[order]
        new = np.empty(n, dtype=bool)
        new[0] = True
        np.logical_or(lo[1:] != lo[:-1], pr[1:] != pr[:-1], out=new[1:])
        n_unique = int(new.sum())
        if n_unique <= n // 2:
            inverse = np.empty(n, dtype=np.int64)
            inverse[order] = np.cumsum(new) - 1
            return _predict_all(cals, lo[new], pr[new])[:, inverse]
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


def label_shift_offsets(priors: NDArray[np.float64], share: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per class, how much its odds of being right change between the seed's class mix and the pool's.

    Scores learned from a seed whose class mix `share` differs from the pool's `priors`
    (labels drawn per class: ten rows of a class of 0.5% of the pool and ten of one of 15%)
    overrate the classes the seed over-represents. Under label shift each class's posterior
    scales by ``prior / share`` (Saerens et al. 2002), so the odds that a row predicted as
    class k is right scale by ``(prior_k / share_k) / ((1 - prior_k) / (1 - share_k))`` (its
    confusers taken in their seed proportions): ``logit(prior_k) - logit(share_k)``. 0 for a
    class without seed rows.
    """
    pr = np.clip(np.asarray(priors, dtype=np.float64), 1e-6, 1 - 1e-6)
    sh = np.asarray(share, dtype=np.float64)
    out = np.zeros(np.broadcast(pr, sh).shape)
    has = np.broadcast_to(sh > 0, out.shape)
    sc = np.clip(sh, 1e-6, 1 - 1e-6)
    val = (np.log(pr) - np.log1p(-pr)) - (np.log(sc) - np.log1p(-sc))
    out[has] = np.broadcast_to(val, out.shape)[has]
    return out


def _bootstrap_calibrations(
    cv: CrossValScores, n_classes: int, n_bootstrap: int, rng: np.random.Generator, rows: NDArray[np.bool_] | None = None,
    importance: NDArray[np.float64] | None = None, resample_priors: bool = False,
    prior: NDArray[np.float64] | None = None, shift: NDArray[np.float64] | None = None,
) -> list[Calibration]:
    """The calibration fitted on all out-of-fold rows, then one per bootstrap resample.

    `importance` (one weight per labeled row) reweights rows so that the seed's class
    mix matches the pool's (see :func:`class_prior_weights`). With `resample_priors`
    (labels drawn per class, so the pool's class mix is itself estimated from the seed),
    each resample is drawn within classes, as the labels were, and re-estimates the class
    mix from its own rows: the spread of the calibrations then carries the error of the
    estimated mix, which with ten labels a class can move a rare class's precision by
    tens of points (a class of 2% estimated at 4.4% reported 0.96, realized 0.75).
    `prior`: the confidences of the prior evidence (default :func:`_prior_confidences`).
    `shift` (n_classes,): :func:`label_shift_offsets` of the seed against the pool (labels
    drawn per class); with `resample_priors` each resample gets its own, from its own mix.
    """
    reached = cv.oof.predicted >= 0
    keep = reached if rows is None else reached & rows
    conf, pred = cv.oof.confidence[keep], cv.oof.predicted[keep]
    correct = pred == cv.y_true[keep]
    if prior is None:
        prior = _prior_confidences(cv)
    m = len(conf)
    if m == 0:
        return [Calibration(0.0, np.zeros(n_classes), constant=0.5)]
    weights = np.ones((1 + n_bootstrap, m))
    if resample_priors and importance is not None:
        weights[0] = importance[keep]
        counts, imp, _, resample_shifts = _per_class_resamples(cv, n_classes, n_bootstrap, rng)
        weights[1:] = (counts * imp)[:, keep]
        shifts = None if shift is None else np.vstack([shift, resample_shifts])
        return fit_calibrations(conf, pred, correct, n_classes, weights, rng=rng, prior_conf=prior, shift=shifts)
    for b in range(1, 1 + n_bootstrap):
        weights[b] = np.bincount(rng.integers(0, m, m), minlength=m)
    if importance is not None:
        weights *= importance[keep]
    return fit_calibrations(conf, pred, correct, n_classes, weights, rng=rng, prior_conf=prior, shift=shift)


def _prior_confidences(cv: CrossValScores) -> NDArray[np.float64]:
    """The pool's confidences at :data:`CALIBRATION_PRIOR_POINTS` evenly spaced quantiles (rows with
    a prediction), where a calibration's prior evidence sits."""
    pool = cv.unlabeled
    c = cv.final.confidence[pool][cv.final.predicted[pool] >= 0]
    if len(c) == 0:
        return np.empty(0)
    return np.quantile(c.astype(np.float64), (np.arange(CALIBRATION_PRIOR_POINTS) + 0.5) / CALIBRATION_PRIOR_POINTS)


def _per_class_resamples(
    cv: CrossValScores, n_classes: int, n_resamples: int, rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Bootstrap resamples of labels drawn per class: each class's rows are resampled within
    it (the design fixed how many), and the pool's class mix is estimated again from each.

    Returns ``(counts, importance, priors, shifts)``: how often each labeled row was drawn and
    its class weight (:func:`_per_class_importance`), both (n_resamples, n_labeled), then the
    priors and the label-shift offsets, both (n_resamples, n_classes)."""
    m = len(cv.y_true)
    design = _design(cv)
    members = [np.flatnonzero(cv.y_true == c) for c in range(n_classes)]
    counts = np.zeros((n_resamples, m))
    importance = np.zeros((n_resamples, m))
    priors = np.zeros((n_resamples, n_classes))
    shifts = np.zeros((n_resamples, n_classes))
    for b in range(n_resamples):
        for idx in members:
            if len(idx):
                counts[b] += np.bincount(idx[rng.integers(0, len(idx), len(idx))], minlength=m)
        importance[b], priors[b], shifts[b] = _per_class_importance(cv, n_classes, design * counts[b])
    return counts, importance, priors, shifts


def _design(cv: CrossValScores) -> NDArray[np.float64]:
    """Each labeled row's design weight (1 each when the rows were not drawn with known,
    unequal probabilities)."""
    return np.ones(len(cv.y_true)) if cv.weight is None else cv.weight


def class_prior_weights(
    cv: CrossValScores, n_classes: int, sampling: str
) -> tuple[NDArray[np.float64], NDArray[np.float64], str, float, NDArray[np.float64] | None]:
    """Weights that make the calibration rows' class mix the pool's.

    Returns ``(weights, priors, sampling, p_value, shift)``; `shift` holds the
    :func:`label_shift_offsets` of the seed's mix against the pool's (None for ``"random"``).

    ``sampling="random"``: the labeled rows are a uniform random sample of the pool, so
    their class shares already estimate the pool's and every weight is 1.
    ``sampling="per_class"``: they are random *within* each class, in any numbers (e.g.
    10 per class on a pool where one class is 40 times rarer than another). The pool's
    class shares are then estimated from the pool's predicted classes corrected by the
    out-of-fold confusion matrix (black-box shift estimation, Lipton et al. 2018), and a
    row of class ``y`` weighs ``prior[y] / seed_share[y]``; without it a rare class's
    precision would be judged against far too few rows of the common classes it
    swallows.
    ``sampling="auto"``: ``"random"`` unless the seed is implausible as a uniform sample
    of the pool, then ``"per_class"``. The test compares the seed's out-of-fold predicted
    classes with the pool's predicted classes (Pearson chi-square, p < 0.05): under
    uniform sampling both follow the same mix, and the pool's side is measured on every
    pool row, so no estimated quantity enters the test. Both assumptions are right on a
    balanced pool; ``"random"`` is the less noisy one there.

    Rows drawn with unequal, known probabilities (``cv.weight``, :func:`design_weights`) count
    by their design weight everywhere here: in the class shares, the test (its counts scaled
    to the Kish effective sample size) and the confusion matrix; the weights returned are the
    design weights times the class correction.
    """
    y = cv.y_true
    m = len(y)
    design = _design(cv)  # rows drawn with unequal probabilities
    counts = np.bincount(y, weights=design, minlength=n_classes).astype(np.float64)
    share = counts / max(counts.sum(), 1e-300) if m else counts
    if sampling == "random" or m == 0:
        return design.copy(), share, "random", math.nan, None
    p_value = math.nan
    if sampling == "auto":
        p_value = _same_mix_p_value(cv, n_classes)
        if p_value >= 0.05:
            return design.copy(), share, "random", p_value, None
    w, priors, shift = _per_class_importance(cv, n_classes, design)
    return w, priors, "per_class", p_value, shift


def _per_class_importance(
    cv: CrossValScores, n_classes: int, row_weight: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per labeled row its design weight times ``prior[y] / seed_share[y]``, scaled to mean 1,
    the estimated priors and the :func:`label_shift_offsets` between the seed's shares and
    them; shares, priors and confusion matrix count each row by `row_weight` (its design
    weight, times its bootstrap count in a resample)."""
    y = cv.y_true
    counts = np.bincount(y, weights=row_weight, minlength=n_classes).astype(np.float64)
    share = counts / max(counts.sum(), 1e-300)
    priors = estimate_class_priors(cv, n_classes, row_weight)
    present = counts > 0
    ratio = np.zeros(n_classes)
    ratio[present] = priors[present] / share[present]
    w = _design(cv) * ratio[y]
    return w * (len(y) / max(w.sum(), 1e-300)), priors, label_shift_offsets(priors, share)


def _outcome_counts(predicted: NDArray[np.int64], n_classes: int,
                    weight: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """How many rows (or how much `weight`) were predicted as each class, then how many got
    no prediction: shape (K + 1,)."""
    return np.bincount(np.where(predicted >= 0, predicted, n_classes), weights=weight,
                       minlength=n_classes + 1).astype(np.float64)


def _pool_outcome_shares(cv: CrossValScores, n_classes: int) -> NDArray[np.float64]:
    """The pool's predicted-class mix (with "no prediction"), from the final run."""
    return _outcome_counts(cv.final.predicted[cv.unlabeled], n_classes) / max(len(cv.unlabeled), 1)


def _same_mix_p_value(cv: CrossValScores, n_classes: int) -> float:
    """Chi-square p-value of the seed's out-of-fold predicted classes as a sample of the
    pool's predicted-class mix ("no prediction" is one more outcome)."""
    from scipy.stats import chi2

    seed = _outcome_counts(cv.oof.predicted, n_classes, cv.weight)
    if cv.weight is not None:  # weighted counts, scaled to the effective sample size (Kish)
        w = cv.weight
        seed *= float(w.sum()) / float((w * w).sum())
    expected = seed.sum() * _pool_outcome_shares(cv, n_classes)
    seen = (expected > 0) | (seed > 0)
    stat = float((((seed - expected)[seen] ** 2) / np.maximum(expected[seen], 0.5)).sum())
    return float(chi2.sf(stat, max(int(seen.sum()) - 1, 1)))


def estimate_class_priors(cv: CrossValScores, n_classes: int,
                          row_weight: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Pool class shares from predicted shares and the out-of-fold confusion matrix.

    Solves ``C prior = q`` (``C[i, j]``: share of seed rows of class j predicted as i,
    with "no prediction" as one more outcome; ``q``: the pool's predicted shares) for a
    prior on the simplex, by non-negative least squares. A class the solve gives
    (almost) nothing keeps half its predicted share, so that no seed row's weight is 0.
    `row_weight` (one per labeled row) counts rows unequally; default: their design weights.
    """
    from scipy.optimize import nnls

    K = n_classes
    y, p = cv.y_true, cv.oof.predicted
    w = cv.weight if row_weight is None else row_weight
    outcome = np.where(p >= 0, p, K)
    counts = np.bincount(y, weights=w, minlength=K).astype(np.float64)
    C = np.zeros((K + 1, K))
    np.add.at(C, (outcome, y), 1.0 if w is None else w)
    present = counts > 0
    C[:, present] /= counts[present]
    q = _pool_outcome_shares(cv, n_classes)
    A = np.vstack([C[:, present], 100.0 * np.ones((1, int(present.sum())))])
    b = np.append(q, 100.0)
    sol, _ = nnls(A, b)
    prior = np.zeros(K)
    prior[present] = sol
    prior = np.maximum(prior, 0.5 * q[:K] * present)
    return prior / max(prior.sum(), 1e-300)


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


@dataclass(frozen=True)
class SeedCalibration:
    """What :func:`choose_thresholds` learns from the seed before it picks a mode.

    The class mix of the calibration rows, the calibration models (the fit on every
    out-of-fold row, then one per bootstrap resample) and the ones with each fold left
    out; none depends on `per_class`, so per-class and global thresholds share them.
    """

    cv: CrossValScores
    target_mode: bool
    made_with: tuple[str, int, int]  # the label_sampling asked for, n_bootstrap, random_state
    priors: NDArray[np.float64]
    label_sampling: str  # as resolved ("auto" becomes one of the others)
    sampling_p_value: float
    calibrations: list[Calibration]
    fold_calibrations: list[list[Calibration]]
    rng_state: Mapping[str, Any]  # the random generator's state after drawing all of the above


def calibrate_seed(cv: CrossValScores, n_classes: int, *, label_sampling: str = "auto", n_bootstrap: int = 100,
                   random_state: int = 0, target_mode: bool = True) -> SeedCalibration:
    """The mode-independent part of :func:`choose_thresholds` (same parameters)."""
    if label_sampling not in ("auto", "per_class", "random"):
        raise ValueError(f"`label_sampling` must be 'auto', 'per_class' or 'random'; got {label_sampling!r}.")
    rng = np.random.default_rng(random_state)
    importance, priors, sampling, sampling_p, shift = class_prior_weights(cv, n_classes, label_sampling)
    prior = _prior_confidences(cv)  # one pool-wide quantile pass for every calibration below
    cals = _bootstrap_calibrations(cv, n_classes, n_bootstrap, rng, importance=importance, prior=prior,
                                   resample_priors=sampling == "per_class", shift=shift)
    # threshold spread: each fold left out of the choice gets its own calibration
    fold_cals = [(_bootstrap_calibrations(cv, n_classes, 0, rng, cv.fold != f, importance, prior=prior, shift=shift)
                  if target_mode else []) for f in range(cv.n_splits)]
    return SeedCalibration(cv=cv, target_mode=target_mode, made_with=(label_sampling, n_bootstrap, random_state),
                           priors=priors, label_sampling=sampling, sampling_p_value=sampling_p, calibrations=cals,
                           fold_calibrations=fold_cals, rng_state=rng.bit_generator.state)


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
    label_sampling: str = "auto",
    trusted: bool = True,
    calibrated: "SeedCalibration | None" = None,
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
        Seed rows that must lie at or above a threshold. In global mode (target metric)
        each class needs that many of its own predicted rows above the one cut, or abstains.
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
    label_sampling : {"auto", "per_class", "random"}, default="auto"
        How the calibration rows were drawn: at random within each class (class shares
        are then estimated from the pool), uniformly at random from the pool, or decided
        from the data (:func:`class_prior_weights`).
    trusted : bool, default=True
        False when the calibration rows were picked by the tool rather than drawn at
        random: the estimates are then reported but marked as not to be trusted.
    calibrated : SeedCalibration, optional
        :func:`calibrate_seed` of these scores with these `label_sampling`, `n_bootstrap`
        and `random_state`: the part of the work that does not depend on `per_class`, done
        once for both modes (the results are the same as without it).

    Intervals are the wider of two: the bootstrap of the calibration model, and the
    stratified interval on the seed's own out-of-fold evidence at the chosen thresholds
    (:func:`stratified_interval`). A class whose own evidence is thin thus gets a wide
    interval even when the shared calibration model is sure.
    """
    n_classes = len(classes)
    target_mode = metric is None
    if calibrated is None:
        calibrated = calibrate_seed(cv, n_classes, label_sampling=label_sampling, n_bootstrap=n_bootstrap,
                                    random_state=random_state, target_mode=target_mode)
    elif (calibrated.cv is not cv or calibrated.target_mode != target_mode
          or calibrated.made_with != (label_sampling, n_bootstrap, random_state)):
        raise ValueError("`calibrated` was made for other scores, another kind of metric or other "
                         "`label_sampling`, `n_bootstrap` or `random_state`.")
    rng = np.random.default_rng()
    rng.bit_generator.state = calibrated.rng_state  # as if the calibrations had just been drawn here
    pool = cv.unlabeled
    priors = calibrated.priors
    label_sampling, sampling_p = calibrated.label_sampling, calibrated.sampling_p_value
    cals = calibrated.calibrations
    lo_q, hi_q = (1 - interval) / 2, 1 - (1 - interval) / 2
    ev_w = _evidence_weights(cv, n_classes)
    fold_counts = np.zeros((cv.n_splits, n_classes))
    np.add.at(fold_counts, (cv.fold, cv.y_true), 1.0 if ev_w is None else ev_w)
    groups = ([_group(cv.final, pool, cv, c, priors, fold_counts, ev_w) for c in range(n_classes)] if per_class
              else [_group(cv.final, pool, cv, None, priors, fold_counts, ev_w)])

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
    if target_mode and not per_class:
        # One cut, but each class still needs evidence of its own: a class with fewer than
        # `min_support` held-out seed rows predicted as it above the cut abstains, as it would
        # in per-class mode. Without this, small classes ride on the big ones' precision
        # (imbalanced pool, uniform labels: classes reported 0.81 on average realized 0.48).
        support = np.bincount(_oof_pred_at(cv, thresholds) + 1, minlength=n_classes + 1)[1:]  # -1: abstained
        thresholds = np.where(support >= min_support, thresholds, np.inf)

    # threshold spread: choose again with each fold left out of the choice
    fold_th = np.full((cv.n_splits, n_classes), np.inf)
    for f in range(cv.n_splits):
        fold_th[f] = thresholds_with(calibrated.fold_calibrations[f], f)[0]

    # estimates on the pool for the chosen thresholds
    fp, fc = cv.final.predicted[pool], cv.final.confidence[pool]
    t_row = np.where(fp >= 0, thresholds[np.maximum(fp, 0)], np.inf)
    accepted = (fp >= 0) & (fc >= t_row)
    lfc = _logit(fc)

    oof_pred = _oof_pred_at(cv, thresholds)
    n_true = np.bincount(cv.y_true, weights=ev_w, minlength=n_classes).astype(np.float64)

    def evidence_counts(group: int | None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        acc = (oof_pred >= 0) if group is None else (oof_pred == group)
        r, w = acc & (oof_pred == cv.y_true), acc & (oof_pred != cv.y_true)
        right = np.bincount(cv.y_true[r], weights=None if ev_w is None else ev_w[r], minlength=n_classes)
        wrong = np.bincount(cv.y_true[w], weights=None if ev_w is None else ev_w[w], minlength=n_classes)
        return right.astype(np.float64), wrong.astype(np.float64)

    def estimate(mask: NDArray[np.bool_], group: int | None) -> tuple[float, float, float]:
        """Point estimate on every accepted row; interval from the bootstrap on a sample of
        them, widened to the stratified interval on the seed's own evidence at the thresholds."""
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            return math.nan, math.nan, math.nan
        point = float(cals[0].predict_logit(lfc[rows], fp[rows]).mean())
        lo, hi = point, point
        if len(cals) > 1:
            if len(rows) > MAX_POOL_SAMPLE:
                rows = rng.choice(rows, MAX_POOL_SAMPLE, replace=False)
            vals = _predict_all(cals[1:], lfc[rows], fp[rows]).mean(axis=1)
            lo, hi = (float(v) for v in np.quantile(vals, [lo_q, hi_q]))
        right, wrong = evidence_counts(group)
        e_lo, e_hi = stratified_interval(right, wrong, n_true, priors, _can_right(n_classes, group),
                                         _wrong_prior(n_classes, group), lo_q, hi_q, rng)
        return point, min(lo, e_lo), max(hi, e_hi)

    seed_counts = np.bincount(cv.y_true, minlength=n_classes)
    per: list[ClassThreshold] = []
    curves: list[Curve] = []
    n_pool = max(len(pool), 1)
    for c in range(n_classes):
        acc_c = accepted & (fp == c)
        ep, lo, hi = estimate(acc_c, c)
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

    reached = cv.oof.predicted >= 0
    all_right_mean = None  # the point calibration's mean over the seed, when every prediction was right
    if reached.any() and (cv.oof.predicted[reached] == cv.y_true[reached]).all():
        all_right_mean = float(cals[0].predict(cv.oof.confidence[reached], cv.oof.predicted[reached]).mean())

    def explain(result: ThresholdResult) -> ThresholdResult:
        rows = list(result.per_class)
        for c, row in enumerate(rows):
            if not row.meets_target and not (blocked is not None and c in blocked):
                rows[c] = replace(row, labels_needed=_labels_needed(
                    groups[c], cals, target_precision, min_support, 1 - confidence_level, len(cv.y_true),
                    int((fp == c).sum()), len(pool), all_right_mean))
        return replace(result, per_class=rows, _explain=None)

    ep, lo, hi = estimate(accepted, None)
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
        label_sampling=label_sampling,
        sampling_p_value=sampling_p,
        class_priors=priors,
        n_calibration=int(len(cv.y_true)),
        design_weighted=cv.weight is not None,
        trusted=bool(trusted),
        _explain=explain if target_mode and per_class else None,
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


# ------------------------------------------------------------------ audit


def clopper_pearson(k: float, n: float, q: float, upper: bool = False) -> float:
    """Exact (Clopper-Pearson) bound of a binomial share: the lower bound at one-sided
    level ``1 - q`` (e.g. ``q=0.2`` for 80% confidence), or with `upper` the upper bound at
    level `q`. Fractional (effective) counts are allowed."""
    if n <= 0:
        return 1.0 if upper else 0.0
    if upper:
        return 1.0 if k >= n else float(special.betaincinv(k + 1, n - k, q))
    return 0.0 if k <= 0 else float(special.betaincinv(k, n - k + 1, q))


def stratified_share(
    parts: list[tuple[float, float, float, bool]], lo_q: float, hi_q: float, rng: np.random.Generator,
    draws: int = 4000,
) -> tuple[float, float, float]:
    """A strata-weighted share of right labels and its interval (Monte Carlo). `parts`:
    ``(stratum size, right, checked, exact)`` per stratum, `exact` when the stratum was checked
    in full (its share is then known). NaNs without parts.

    The lower bound mixes draws from each stratum's Beta(k, n - k + 1), the upper from its
    Beta(k + 1, n - k): the distributions whose tail quantiles are the exact (Clopper-Pearson)
    bounds, so that one stratum gets exactly its per-class interval and a mix is no narrower.
    (Jeffreys posteriors were used before: audited classes are the ones that looked good, and
    the pooled lower bound of audit-certified runs was missed in up to 27% of runs at 90%.)"""
    total = sum(size for size, *_ in parts)
    if not total:
        return math.nan, math.nan, math.nan
    point = sum(size / total * k / n for size, k, n, _ in parts)

    def mixed(upper: bool) -> NDArray[np.float64]:
        out = np.zeros(draws)
        for size, k, n, exact in parts:
            if exact:
                out += size / total * k / n
            elif upper:
                out += size / total * (1.0 if k >= n else rng.beta(k + 1, n - k, draws))
            else:
                out += size / total * (0.0 if k <= 0 else rng.beta(k, n - k + 1, draws))
        return out

    lo = float(np.quantile(mixed(False), lo_q))
    hi = float(np.quantile(mixed(True), hi_q))
    return float(point), lo, hi


def _jeffreys_mean(k: float, n: float) -> float:
    """The expected share right after `k` of `n` checked rows were right: the mean of the
    Jeffreys posterior the audit's intervals come from. Not the raw share, which says 1.000
    whenever an audit found no error, above its own interval."""
    return (k + 0.5) / (n + 1)


def audit_rows_needed(k: float, n: float, target: float, confidence_level: float, limit: int = 100_000) -> int | None:
    """More audited rows (right at the observed rate ``k / n``, or all right when none was
    wrong) that would lift the exact lower bound to `target`; None when no number would."""
    rate = 1.0 if n <= 0 else k / n
    if rate <= target:
        return None
    lo, hi = int(n), limit
    if clopper_pearson(rate * hi, hi, 1 - confidence_level) < target:
        return None
    while lo < hi:  # the bound grows with m at a fixed rate
        mid = (lo + hi) // 2
        if clopper_pearson(rate * mid, mid, 1 - confidence_level) >= target:
            hi = mid
        else:
            lo = mid + 1
    return max(int(math.ceil(lo - n)), 1)


def audit_thresholds(
    base: ThresholdResult,
    predicted: NDArray[np.int64],
    confidence: NDArray[np.floating],
    pool: NDArray[np.int64],
    audited: NDArray[np.int64],
    audited_right: NDArray[np.bool_],
    *,
    inclusion: NDArray[np.float64] | None = None,
    confidence_level: float = 0.8,
    interval: float = 0.9,
    random_state: int = 0,
) -> ThresholdResult:
    """Thresholds certified by a verified random sample of the accepted rows.

    The audit is the one measurement that needs no assumption about how the seed was
    drawn: the audited rows of class c are a random sample of the rows accepted as c,
    and those at or above any confidence t a random sample of the accepted rows above t.
    Each class keeps the lowest threshold (not below its current one) at which the exact
    Clopper-Pearson lower bound (one-sided, `confidence_level`) of the audited share of
    right labels meets the target, and reports the Jeffreys posterior mean of that share
    (:func:`_jeffreys_mean`) as its expected precision; a class no threshold certifies gets
    none (``inf``) and an `audit_needed` count. The candidate thresholds are the current one and the
    ``AUDIT_CUTS``-quantiles of the accepted confidences, fixed before the answers are seen.

    Parameters
    ----------
    base : ThresholdResult
        The run's thresholds (whose accepted rows the audit sampled).
    predicted, confidence : ndarray of shape (n_rows,)
        The run's final predicted class codes and confidences.
    pool : ndarray of int64
        Rows that can be auto-labeled (the unlabeled rows of the run, less the audited ones,
        which now have a person's label).
    audited : ndarray of int64
        Audited rows (row numbers); those not accepted by `base` are ignored.
    audited_right : ndarray of bool, same length
        Whether the person confirmed the predicted label.
    inclusion : ndarray of float, optional
        Each audited row's probability of having been drawn (Horvitz-Thompson weights
        ``1 / inclusion``; default: equal within a class, as in one stratified audit).
    """
    target = base.target_precision if base.target_precision is not None else 0.95
    lo_q, hi_q = (1 - interval) / 2, 1 - (1 - interval) / 2
    th = np.asarray(base.thresholds, dtype=np.float64).copy()
    fp, fc = predicted[pool], confidence[pool]
    a_rows = np.asarray(audited, dtype=np.int64)
    a_right = np.asarray(audited_right, dtype=bool)
    a_w = np.ones(len(a_rows)) if inclusion is None else 1.0 / np.asarray(inclusion, dtype=np.float64)
    a_pred, a_conf = predicted[a_rows], confidence[a_rows]
    n_pool = max(len(pool), 1)
    per: list[ClassThreshold] = []
    parts: list[tuple[int, float, float]] = []  # (accepted rows, effective right, effective n) per class
    for c, row in enumerate(base.per_class):
        t0 = th[c]
        mine = (a_pred == c) & (a_conf >= t0)  # audited rows the run accepted as c
        conf_c, right_c, w_c = a_conf[mine], a_right[mine], a_w[mine]
        accepted_c = (fp == c) & (fc >= t0)  # pool rows the run accepted as c
        new_t, found = math.inf, False
        k_best = n_best = 0.0
        if math.isfinite(t0) and mine.any():
            # candidate cuts fixed before looking at the answers: the run's threshold and the
            # deciles of the confidences it accepted as c (a cut placed just above each observed
            # error would make the share right above it look better than it is)
            acc_conf = np.concatenate([fc[accepted_c], conf_c])
            grid = np.quantile(acc_conf, np.linspace(0, 1, AUDIT_CUTS + 1)[1:-1])
            for t in np.unique(np.concatenate([[t0], grid[grid > t0]])):
                sel = conf_c >= t
                if not sel.any():
                    break
                w = w_c[sel]
                n_eff = float(w.sum() ** 2 / (w**2).sum())
                k_eff = float(w[right_c[sel]].sum() / w.sum()) * n_eff
                if t == t0:
                    k_best, n_best = k_eff, n_eff
                if clopper_pearson(k_eff, n_eff, 1 - confidence_level) >= target:
                    new_t, found, k_best, n_best = float(t), True, k_eff, n_eff
                    break
        th[c] = new_t
        n_acc = int(((fp == c) & (fc >= new_t)).sum()) if found else 0
        if found:
            parts.append((n_acc, k_best, n_best))
        point = _jeffreys_mean(k_best, n_best) if n_best > 0 else math.nan
        per.append(replace(
            row, threshold=new_t,
            expected_precision=point if found else math.nan,
            precision_low=clopper_pearson(k_best, n_best, lo_q) if found else math.nan,
            precision_high=clopper_pearson(k_best, n_best, hi_q, upper=True) if found else math.nan,
            n_accepted=n_acc, expected_coverage=n_acc / n_pool, support=int((conf_c >= new_t).sum()) if found else 0,
            meets_target=found, certified_by="audit",
            audit_needed=None if found or not (math.isfinite(t0) and accepted_c.any())
            else audit_rows_needed(k_best, n_best, target, confidence_level),
        ))
    _, lo, hi = stratified_share([(n, k, m, False) for n, k, m in parts], lo_q, hi_q,
                                 np.random.default_rng(random_state))
    total = sum(n for n, _, _ in parts)
    point = sum(n / total * _jeffreys_mean(k, m) for n, k, m in parts) if total else math.nan
    return replace(base, thresholds=th, per_class=per, expected_precision=point, precision_low=lo,
                   precision_high=hi, coverage=sum(p[0] for p in parts) / n_pool, certified_by="audit", trusted=True)
