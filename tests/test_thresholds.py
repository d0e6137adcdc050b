from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from labelseed import AutoLabeler, UntrustedEstimateWarning
from labelseed.exceptions import InputError
from labelseed.graph import build_knn_graph
from labelseed.metrics import fbeta, precision, recall, resolve_metric
from labelseed.spreading import normalized_affinity, spread_many
from labelseed.thresholds import calibrate_seed, choose_thresholds, cross_val_scores

from conftest import blobs, seed_labels

settings.register_profile("ci", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


def _scorer(X, n_classes):
    S = normalized_affinity(build_knn_graph(X, 8, method="exact").affinity())
    return lambda sets: spread_many(S, sets, n_classes, 0.9)


@given(seed=st.integers(0, 10_000), fold=st.integers(0, 2))
def test_held_out_labels_never_change_their_own_scores(seed, fold):
    X, y = blobs(n_per=25, n_classes=3, spread=1.5, seed=seed % 7)
    codes = seed_labels(y, 6, seed)
    scorer = _scorer(X, 3)
    cv = cross_val_scores(scorer, codes, 3, 3, random_state=seed)
    rows = cv.labeled[cv.fold == fold]
    changed = codes.copy()
    changed[rows] = np.random.default_rng(seed).integers(0, 3, len(rows))  # any labels at all
    cv2 = cross_val_scores(scorer, changed, 3, 3, fold=cv.fold)
    held = cv.fold == fold
    np.testing.assert_array_equal(cv.oof.distribution[held], cv2.oof.distribution[held])


def test_scorer_never_sees_held_out_labels():
    X, y = blobs(n_per=30, n_classes=3, spread=1.5, seed=11)
    codes = seed_labels(y, 9, 1)
    seen = []
    inner = _scorer(X, 3)

    def spy(sets):
        seen.extend(s.copy() for s in sets)
        return inner(sets)

    cv = cross_val_scores(spy, codes, 3, 3, random_state=0)
    assert len(seen) == 4  # three folds and the final run, in one call
    for f in range(3):
        held = cv.labeled[cv.fold == f]
        assert (seen[f][held] == -1).all()
        rest = np.setdiff1d(cv.labeled, held)
        np.testing.assert_array_equal(seen[f][rest], codes[rest])
    np.testing.assert_array_equal(seen[3], codes)


@given(seed=st.integers(0, 10_000), per_class=st.booleans(), target=st.floats(0.5, 1.0))
def test_every_row_is_seed_auto_or_abstain(seed, per_class, target):
    X, y = blobs(n_per=30, n_classes=3, spread=2.0, seed=seed % 5)
    codes = seed_labels(y, 5, seed)
    m = AutoLabeler(per_class=per_class, target_precision=target, n_splits=3, n_bootstrap=10,
                    random_state=seed).fit(X, codes)
    r = m.result_
    seed_rows = codes >= 0
    assert set(np.unique(r.source)) <= {"seed", "auto", "abstain"}
    assert (r.source[seed_rows] == "seed").all()
    assert len(r.accepted) + len(r.abstained) == (~seed_rows).sum()
    assert not np.intersect1d(r.accepted, r.abstained).size
    assert all(r.labels[i] is None for i in r.abstained)
    assert all(r.labels[i] is not None for i in r.accepted)
    # thresholds are respected
    p = m.label_distributions_.argmax(1)
    assert (r.confidence[r.accepted] >= m.thresholds_[p[r.accepted]]).all()


def test_thresholds_are_observed_confidences():
    X, y = blobs(n_per=60, n_classes=3, spread=2.0, seed=2)
    codes = seed_labels(y, 10)
    m = AutoLabeler(n_splits=5, target_precision=0.8).fit(X, codes)
    conf = m.label_distributions_.max(1)
    finite = m.thresholds_[np.isfinite(m.thresholds_)]
    assert len(finite)  # the property is about real thresholds, so there must be some
    for t in finite:
        assert np.isclose(conf, t, atol=0).any(), t


def test_global_mode_uses_one_threshold():
    X, y = blobs(n_per=60, n_classes=3, spread=2.5, seed=2)
    m = AutoLabeler(per_class=False, target_precision=0.9).fit(X, seed_labels(y, 10))
    assert len(set(m.thresholds_.tolist())) == 1


def _best_global_score(m, metric_fn):
    """The metric at every observed out-of-fold confidence used as one global threshold."""
    cv = m.cv_scores_
    best = -np.inf
    for t in np.append(np.unique(cv.oof.confidence), np.inf):
        pred = np.where((cv.oof.predicted >= 0) & (cv.oof.confidence >= t), cv.oof.predicted, -1)
        v = metric_fn(cv.y_true, pred)
        if np.isfinite(v):
            best = max(best, v)
    return best


@pytest.mark.parametrize("metric", ["f1", "precision", "recall", "accuracy", "f2"])
def test_metric_mode_maximises_the_metric(metric):
    X, y = blobs(n_per=60, n_classes=3, spread=2.5, seed=2)
    m = AutoLabeler(metric=metric, per_class=False, min_support=1).fit(X, seed_labels(y, 10))
    th = m.result_.thresholds
    assert th.target_precision is None
    # the chosen global threshold scores as well as the best of all candidate thresholds
    assert th.cv_score == pytest.approx(_best_global_score(m, resolve_metric(metric)[1]))


def test_custom_callable_metric_is_maximised():
    def agreement(y_true, y_pred):  # right answers minus wrong ones: rewards abstaining when unsure
        return float(np.sum(y_pred == y_true) - np.sum((y_pred != y_true) & (y_pred >= 0)))

    X, y = blobs(n_per=40, n_classes=3, spread=2.0, seed=3)
    m = AutoLabeler(metric=agreement, per_class=False, min_support=1).fit(X, seed_labels(y, 8))
    th = m.result_.thresholds
    assert th.metric == "agreement"
    assert th.cv_score == pytest.approx(_best_global_score(m, agreement))
    # and per class, coordinate ascent never ends below the best single global threshold
    mc = AutoLabeler(metric=agreement, per_class=True, min_support=1).fit(X, seed_labels(y, 8))
    assert mc.result_.thresholds.cv_score >= _best_global_score(mc, agreement) - 1e-9


def test_metric_functions():
    yt = np.array([0, 1, 1, 2])
    yp = np.array([0, 1, -1, 0])
    assert precision(yt, yp) == pytest.approx(2 / 3)
    assert recall(yt, yp) == pytest.approx(2 / 4)
    assert fbeta(1.0)(yt, yp) == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert np.isnan(precision(yt, np.full(4, -1)))
    assert resolve_metric("f0.5")[0] == "f0.5"


def test_estimates_track_truth_on_digits():
    # honest estimates: expected precision close to what the hidden labels say
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    gaps = []
    for s in range(3):
        m = AutoLabeler(random_state=s).fit(X, seed_labels(y, 10, s))
        r = m.result_
        realized = (r.labels[r.accepted].astype(int) == y[r.accepted]).mean()
        assert realized >= 0.93
        gaps.append(abs(realized - r.expected_precision))
    assert np.mean(gaps) <= 0.03


def test_choose_thresholds_is_deterministic():
    X, y = blobs(n_per=40, n_classes=3, spread=2.0, seed=9)
    codes = seed_labels(y, 8)
    cv = cross_val_scores(_scorer(X, 3), codes, 3, 4, random_state=0)
    a = choose_thresholds(cv, np.arange(3), random_state=1)
    b = choose_thresholds(cv, np.arange(3), random_state=1)
    np.testing.assert_array_equal(a.thresholds, b.thresholds)
    assert a.expected_precision == b.expected_precision or np.isnan(a.expected_precision)


@pytest.mark.parametrize("sampling", ["random", "per_class"])
def test_one_seed_calibration_serves_both_modes_with_the_same_results(sampling):
    # per-class and global thresholds share the calibrations: reusing them must change nothing
    X, y = blobs(n_per=60, n_classes=3, spread=2.5, seed=4)
    codes = seed_labels(y, 10)
    cv = cross_val_scores(_scorer(X, 3), codes, 3, 5, random_state=0)
    shared = calibrate_seed(cv, 3, label_sampling=sampling, n_bootstrap=40, random_state=2)
    for per_class in (True, False):
        kw = dict(per_class=per_class, label_sampling=sampling, n_bootstrap=40, random_state=2, target_precision=0.9)
        a = choose_thresholds(cv, np.arange(3), **kw)
        b = choose_thresholds(cv, np.arange(3), calibrated=shared, **kw)
        np.testing.assert_array_equal(a.thresholds, b.thresholds)
        for ra, rb in zip(a.per_class + [a], b.per_class + [b]):
            np.testing.assert_array_equal([ra.expected_precision, ra.precision_low, ra.precision_high],
                                          [rb.expected_precision, rb.precision_low, rb.precision_high])
    other = cross_val_scores(_scorer(X, 3), codes, 3, 5, random_state=1)
    with pytest.raises(ValueError, match="calibrated"):
        choose_thresholds(other, np.arange(3), calibrated=shared, label_sampling=sampling, n_bootstrap=40,
                          random_state=2)
    with pytest.raises(ValueError, match="random_state"):  # another seed would draw other resamples
        choose_thresholds(cv, np.arange(3), calibrated=shared, label_sampling=sampling, n_bootstrap=40,
                          random_state=3)


@pytest.mark.parametrize("per_class", [True, False])
def test_self_training_method_end_to_end(per_class):
    X, y = blobs(n_per=40, n_classes=3, spread=1.5, seed=8)
    codes = seed_labels(y, 8)
    m = AutoLabeler(method="self_training", per_class=per_class, target_precision=0.9).fit(X, codes)
    r = m.result_
    assert m.graph_ is None
    assert len(r.accepted) + len(r.abstained) == (codes < 0).sum()
    assert (r.labels[r.accepted].astype(int) == y[r.accepted]).mean() >= 0.9


def test_rows_outside_calibrate_spread_labels_but_are_never_held_out():
    X, y = blobs(n_per=40, n_classes=3, spread=1.5, seed=12)
    codes = seed_labels(y, 8)
    rng = np.random.default_rng(0)
    queried = rng.choice(np.flatnonzero(codes < 0), 15, replace=False)
    codes[queried] = y[queried]
    calibrate = np.zeros(len(y), dtype=bool)
    calibrate[codes >= 0] = True
    calibrate[queried] = False
    m = AutoLabeler(target_precision=0.9).fit(X, codes, calibrate=calibrate)
    assert not np.intersect1d(m.cv_scores_.labeled, queried).size
    assert len(m.cv_scores_.labeled) == 24
    assert (m.result_.source[queried] == "seed").all()
    assert not np.intersect1d(m.cv_scores_.unlabeled, queried).size
    # no random row at all: the estimate still comes, from every labeled row, marked untrusted
    with pytest.warns(UntrustedEstimateWarning):
        m2 = AutoLabeler().fit(X, codes, calibrate=np.zeros(len(y), dtype=bool))
    assert not m2.result_.thresholds.trusted and len(m2.cv_scores_.labeled) == (codes >= 0).sum()


@settings(max_examples=200, deadline=None)
@given(
    b=st.integers(1, 40), m=st.integers(1, 6), q=st.floats(0.0, 1.0), target=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_quantile_test_by_counting_equals_numpy_quantile(b, m, q, target, seed):
    from labelseed.thresholds import _quantile_at_least

    rng = np.random.default_rng(seed)
    values = rng.choice(np.linspace(0, 1, 7), size=(b, m))  # ties on purpose
    values[rng.random((b, m)) < 0.3] = target  # values equal to the target too
    want = np.quantile(values, q, axis=0) >= target
    np.testing.assert_array_equal(_quantile_at_least(values, q, target), want)


def test_labels_needed_predicts_when_a_clean_class_is_certified():
    """Digits 0 vs 1 (no path between them on the graph, every label right): with 8 labels a class
    nothing is certified, and the labels each class is said to need are what it takes: with that
    many more (split over the two classes) both are certified, with 4 fewer neither is."""
    from labelseed import AutoLabeler, datasets

    X, y = datasets.digits()
    keep = (y == "0") | (y == "1")
    X, y = X[keep], y[keep]
    first = AutoLabeler().fit(X, datasets.hide_labels(y, 8, 0)).result_.thresholds
    needed = {c.labels_needed for c in first.per_class}
    assert first.coverage == 0 and len(needed) == 1 and None not in needed
    more = needed.pop()
    enough = AutoLabeler().fit(X, datasets.hide_labels(y, 8 + -(-more // 2), 0)).result_.thresholds
    short = AutoLabeler().fit(X, datasets.hide_labels(y, 8 + (more - 4) // 2, 0)).result_.thresholds
    assert all(c.meets_target for c in enough.per_class)
    assert not any(c.meets_target for c in short.per_class)


def test_global_mode_class_without_its_own_evidence_abstains():
    # one cut for all, but a class with fewer than `min_support` held-out seed rows above it
    # has no evidence of its own: it abstains instead of riding on the others' precision
    # (bench/honesty.py, imbalanced pool: such classes reported 0.81 on average, realized 0.48)
    X, y = blobs(n_per=150, n_classes=3, spread=1.2, seed=1)
    keep = np.concatenate([np.flatnonzero(y < 2), np.flatnonzero(y == 2)[:25]])  # class 2 is rare
    X, y = X[keep], y[keep]
    codes = np.full(len(y), -1)
    rows = np.random.default_rng(16).choice(len(y), 24, replace=False)  # uniform labels: 2 of class 2
    codes[rows] = y[rows]
    assert (codes == 2).sum() == 2
    m = AutoLabeler(per_class=False, target_precision=0.9, min_support=3, random_state=0).fit(X, codes)
    r, cv = m.result_, m.cv_scores_
    assert r.thresholds.mode == "global"
    cut = m.thresholds_[0]
    assert np.isfinite(cut) and m.thresholds_[1] == cut  # the others share one cut
    # the case is real: class 2's pool rows clear the shared cut, on too little evidence of its own
    pool = cv.unlabeled
    assert ((cv.final.predicted[pool] == 2) & (cv.final.confidence[pool] >= cut)).sum() > 10
    assert ((cv.oof.predicted == 2) & (cv.oof.confidence >= cut)).sum() < 3
    assert np.isinf(m.thresholds_[2])
    assert not (r.labels[r.accepted] == 2).any()
    assert not r.thresholds.per_class[2].meets_target
    # with min_support 2 its two rows are evidence enough
    m2 = AutoLabeler(per_class=False, target_precision=0.9, min_support=2, random_state=0).fit(X, codes)
    assert np.isfinite(m2.thresholds_[2]) and (m2.result_.labels[m2.result_.accepted] == 2).any()


def test_design_weights_scale_each_draw_to_mean_one():
    from labelseed.thresholds import design_weights

    w = design_weights(np.array([0.1, 0.1, 0.4, 0.4, 0.5, 0.5]), np.array([0, 0, 0, 0, 1, 1]))
    np.testing.assert_allclose(w, [1.6, 1.6, 0.4, 0.4, 1.0, 1.0])
    np.testing.assert_allclose(design_weights(np.full(7, 0.03)), np.ones(7))  # a uniform draw: plain random labels
    for bad in ([0.0, 0.5], [1.5], [np.nan]):
        with pytest.raises(ValueError, match="inclusion"):
            design_weights(np.array(bad))


def _oversampled_hard_rows(seed):
    """Three overlapping blobs; rows near a class boundary are drawn for labeling 5 times as
    often as the rest (a query that targets hard rows), with known probabilities."""
    X, y = blobs(n_per=800, n_classes=3, dim=8, spread=2.2, seed=seed)
    cent = np.stack([X[y == c].mean(0) for c in range(3)])
    d = np.sort(np.linalg.norm(X[:, None] - cent[None], axis=2), axis=1)
    gap = d[:, 1] - d[:, 0]
    p = np.where(gap < np.quantile(gap, 0.3), 0.10, 0.02)
    lab = np.random.default_rng(seed).random(len(X)) < p
    return X, y, np.where(lab, y, -1), p


def test_design_weights_undo_the_bias_of_an_unequal_draw():
    # Unweighted, the oversampled hard rows make every estimate pessimistic; weighted by
    # 1 / inclusion they stand for the pool and the error averages out (6 draws).
    errors = {"plain": [], "weighted": []}
    for seed in range(6):
        X, y, codes, p = _oversampled_hard_rows(seed)
        for name, w in (("plain", None), ("weighted", 1 / p)):
            r = AutoLabeler(target_precision=0.9, random_state=0).fit(X, codes, design_weight=w).result_
            assert len(r.accepted)
            realized = float((r.labels[r.accepted].astype(int) == y[r.accepted]).mean())
            errors[name].append(r.thresholds.expected_precision - realized)
    assert np.mean(errors["plain"]) < -0.015
    assert abs(np.mean(errors["weighted"])) < 0.01


def test_design_weight_is_checked():
    X, y, codes, p = _oversampled_hard_rows(0)
    with pytest.raises(InputError, match="design_weight"):
        AutoLabeler().fit(X, codes, design_weight=np.ones(5))
    bad = 1 / p
    bad[np.flatnonzero(codes >= 0)[0]] = -1.0
    with pytest.raises(InputError, match="design_weight"):
        AutoLabeler().fit(X, codes, design_weight=bad)


def test_bad_design_weight_is_refused_before_the_graph_is_built(tmp_path, monkeypatch):
    """ops.fit checks every input before the (cached) graph is built: a bad weight costs no search."""
    from labelseed import ops

    X, y, codes, p = _oversampled_hard_rows(0)
    built = []
    monkeypatch.setattr(ops, "cached_knn_graph", lambda *a, **k: built.append(1))
    with pytest.raises(InputError, match="design_weight"):
        ops.fit(X, codes, cache_dir=tmp_path, design_weight=np.ones(5))
    assert built == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n_distinct", [1, 7, 300, 5000])
def test_predict_all_gives_each_row_its_calibrations_value_with_repeated_confidences(n_distinct):
    # rows sharing a (confidence, class) pair are evaluated once: every row must still get what
    # its own calibration gives it, in its own place
    from labelseed.thresholds import Calibration, _logit, _predict_all

    rng = np.random.default_rng(n_distinct)
    n = 5000
    pairs_conf = rng.uniform(0.3, 1.0, n_distinct)
    pairs_conf[0] = 1.0  # saturated scores
    pairs_pred = rng.integers(-1, 4, n_distinct)  # -1: no class reached
    pick = rng.integers(0, n_distinct, n)
    lconf, pred = _logit(pairs_conf[pick]), pairs_pred[pick]
    cals = [Calibration(coef=float(rng.uniform(0.5, 3)), offsets=rng.normal(0, 1, 4)) for _ in range(20)]
    cals.append(Calibration(coef=1.0, offsets=np.zeros(4), constant=0.93))
    P = _predict_all(cals, lconf, pred)
    assert P.shape == (len(cals), n)
    for b, c in enumerate(cals):
        np.testing.assert_allclose(P[b], c.predict_logit(lconf, pred), rtol=1e-12, atol=0)
