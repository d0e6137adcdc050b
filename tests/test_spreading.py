from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from sklearn.semi_supervised import LabelSpreading
from sklearn.datasets import load_digits
from sklearn.metrics.pairwise import rbf_kernel

from labelseed.spreading import Scores, normalized_affinity, one_hot, propagate, self_train, spread
from labelseed.graph import build_knn_graph

from conftest import blobs, seed_labels


def _digits(n=300):
    X, y = load_digits(return_X_y=True)
    return X[:n].astype(np.float64), y[:n]


@pytest.mark.parametrize("alpha", [0.2, 0.8, 0.99])
def test_cg_matches_sklearn_rbf(alpha):
    X, y = _digits()
    X = X / 16.0
    yy = seed_labels(y, 5)
    gamma = 0.05
    ref = LabelSpreading(kernel="rbf", gamma=gamma, alpha=alpha, max_iter=100_000, tol=1e-12).fit(X, yy)
    W = rbf_kernel(X, gamma=gamma)
    np.fill_diagonal(W, 0)
    S = normalized_affinity(sparse.csr_matrix(W))
    F = propagate(S, one_hot(yy, 10), alpha, solver="cg", tol=1e-7, max_iter=5000)
    ours = Scores.from_unnormalized(F).distribution
    np.testing.assert_allclose(ours, ref.label_distributions_, atol=2e-4)
    assert (ours.argmax(1) == ref.label_distributions_.argmax(1)).mean() > 0.995


def test_iterate_matches_sklearn_knn_kernel():
    # scikit-learn's knn kernel is directed; give propagate() the very matrix
    # scikit-learn iterates with and compare the fixed points.
    X, y = _digits()
    yy = seed_labels(y, 5)
    alpha = 0.5
    ref = LabelSpreading(kernel="knn", n_neighbors=7, alpha=alpha, max_iter=100_000, tol=1e-10).fit(X, yy)
    S = sparse.csr_matrix(ref._build_graph())
    F = propagate(S, one_hot(yy, 10), alpha, solver="iterate", tol=1e-9, max_iter=100_000)
    ours = Scores.from_unnormalized(F).distribution
    np.testing.assert_allclose(ours, ref.label_distributions_, atol=1e-4)


def test_unreachable_rows_abstain_not_nan_not_class_zero():
    X, y = blobs(n_per=20, n_classes=3, seed=1)
    yy = seed_labels(y, 3)
    yy[y == 2] = -1  # cluster 2 has no labels and no edges to the others with k=5
    g = build_knn_graph(X, 5, method="exact")
    S = normalized_affinity(g.affinity())
    s = spread(S, yy, 3, 0.99)
    assert np.isfinite(s.distribution).all()
    assert (s.predicted[y == 2] == -1).all()
    assert (s.confidence[y == 2] == 0).all()
    assert (s.predicted[y != 2] >= 0).all()


def test_multi_column_solve_equals_separate_solves():
    X, y = blobs(seed=3)
    S = normalized_affinity(build_knn_graph(X, 6, method="exact").affinity())
    a, b = seed_labels(y, 4, 0), seed_labels(y, 4, 1)
    together = propagate(S, np.hstack([one_hot(a, 3), one_hot(b, 3)]), 0.9, tol=1e-6)
    np.testing.assert_allclose(together[:, :3], propagate(S, one_hot(a, 3), 0.9, tol=1e-6), atol=1e-5)
    np.testing.assert_allclose(together[:, 3:], propagate(S, one_hot(b, 3), 0.9, tol=1e-6), atol=1e-5)


def test_self_training_reports_only_what_it_accepted():
    X, y = blobs(n_per=30, seed=2)
    yy = seed_labels(y, 3)
    r = self_train(X, yy, 3, threshold=0.999999)
    assert not r.pseudo_labeled[yy >= 0].any()
    assert r.scores.distribution.shape == (len(y), 3)
    # a threshold above every probability accepts nothing: the talk's bug would claim all rows
    first = self_train(X, yy, 3, threshold=1.0, max_iter=1)
    assert first.scores.confidence.max() < 1.0  # so 1.0 is above every probability here
    r2 = self_train(X, yy, 3, threshold=1.0)
    assert not r2.pseudo_labeled.any()
    # and a reachable threshold accepts some rows but not all of them
    r3 = self_train(X, yy, 3, threshold=0.9, max_iter=1)
    assert 0 < r3.pseudo_labeled.sum() < (yy < 0).sum()
    assert (r3.scores.confidence[r3.pseudo_labeled] >= 0.9).all()


@pytest.mark.parametrize("rest", [False, True])
def test_fold_sets_solved_by_groups_equal_separate_solves(rest):
    from labelseed.spreading import spread, spread_many
    from labelseed.thresholds import fold_code_sets

    X, y = blobs(n_per=40, n_classes=3, dim=6, spread=1.5, seed=2)
    S = normalized_affinity(build_knn_graph(X, 8).affinity())
    codes = np.full(len(y), -1)
    lab = np.random.default_rng(0).choice(len(y), 30, replace=False)
    codes[lab] = y[lab]
    calibrate = None
    if rest:  # some labeled rows are never held out
        calibrate = np.ones(len(y), dtype=bool)
        calibrate[lab[:6]] = False
    sets, _, _ = fold_code_sets(codes, 3, 0, calibrate=calibrate)
    together = spread_many(S, sets, 3, 0.9, tol=1e-6)
    for c, got in zip(sets, together):
        want = spread(S, c, 3, 0.9, tol=1e-6)
        np.testing.assert_allclose(got.distribution, want.distribution, atol=1e-4)
        np.testing.assert_array_equal(got.predicted, want.predicted)


def _three_classes(seed: int, n_per: int, shift: float):
    """Three Gaussian classes in 12 dimensions, 60 of them labeled: (unit rows, codes, affinity)."""
    from labelseed.graph import build_knn_graph, normalize_rows
    from labelseed.spreading import normalized_affinity

    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per)
    X = (np.eye(3, 12)[y] * shift + rng.normal(size=(len(y), 12))).astype(np.float32)
    codes = np.full(len(y), -1)
    lab = rng.choice(len(y), 60, replace=False)
    codes[lab] = y[lab]
    return normalize_rows(X), codes, normalized_affinity(build_knn_graph(X, 8).affinity())


def test_ensemble_fold_scores_never_see_the_fold_s_own_labels():
    """Relabel every row of fold 0: the out-of-fold scores of fold 0 must not move (spreading and the
    linear classifier are both retrained per fold), while the final scores do."""
    from labelseed.spreading import ensemble_scorer
    from labelseed.thresholds import cross_val_scores

    Xn, codes, S = _three_classes(0, 100, 2.0)
    scorer = ensemble_scorer(S, Xn, 3, 0.9)
    a = cross_val_scores(scorer, codes, 3, 5, random_state=0)
    other = codes.copy()
    f0 = a.labeled[a.fold == 0]
    other[f0] = (codes[f0] + 1) % 3
    b = cross_val_scores(scorer, other, 3, 5, random_state=0, fold=a.fold)
    np.testing.assert_allclose(a.oof.distribution[a.fold == 0], b.oof.distribution[b.fold == 0], atol=1e-6)
    assert not np.allclose(a.oof.distribution[a.fold == 1], b.oof.distribution[b.fold == 1], atol=1e-3)
    assert not np.allclose(a.final.distribution, b.final.distribution, atol=1e-3)


def test_ensemble_out_of_fold_scores_are_each_fold_s_mix_of_spreading_and_its_classifier():
    """A fold's classifier is evaluated only at the rows the fold hides; there its scores must be
    the fold's spreading mixed with that fold's classifier at the fold's weight, as over the pool."""
    from labelseed.spreading import ensemble_scorer, mix_scores
    from labelseed.thresholds import cross_val_scores

    Xn, codes, S = _three_classes(1, 120, 1.2)
    scorer = ensemble_scorer(S, Xn, 3, 0.9)
    cv = cross_val_scores(scorer, codes, 3, 5, random_state=0)
    assert scorer.set_linear is not None and any(w > 0 for w in scorer.set_weight[:-1])
    for f in range(5):
        whole = mix_scores(scorer.set_spread[f], scorer.set_linear[f].probabilities(Xn), scorer.set_weight[f])
        rows = cv.fold == f
        np.testing.assert_allclose(cv.oof.distribution[rows], whole.distribution[cv.labeled[rows]], atol=1e-6)


def test_propagate_gives_the_same_scores_from_sparse_labels_and_in_narrow_column_blocks(monkeypatch):
    # several label sets side by side are densified a block of columns at a time (memory at 1M
    # rows); the solution must not depend on that, nor on the block width
    import labelseed.spreading as sp
    from labelseed.graph import build_knn_graph

    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 8)).astype(np.float32)
    S = sp.normalized_affinity(build_knn_graph(X, 8).affinity())
    sets = [np.where(rng.random(600) < 0.05, rng.integers(0, 5, 600), -1) for _ in range(4)]
    dense = np.concatenate([sp.one_hot(c, 5) for c in sets], axis=1)
    F_dense = sp.propagate(S, dense)
    F_sparse = sp.propagate(S, sp.one_hot_sets(sets, 5))
    np.testing.assert_allclose(F_sparse, F_dense, atol=1e-6)
    monkeypatch.setattr(sp, "CG_BUFFER_BYTES", 6 * 4 * 600 * 8)  # 8 columns per block
    assert sp._column_block(600) == 8
    np.testing.assert_allclose(sp.propagate(S, sp.one_hot_sets(sets, 5)), F_dense, atol=2e-3)


@pytest.mark.parametrize("n_classes,per_class,dim", [(2, 5, 64), (3, 10, 64), (10, 10, 64), (4, 40, 16)])
def test_fit_linear_reaches_scikit_learn_s_optimum(n_classes, per_class, dim):
    """The linear classifier's own solver (in the labeled rows' span when they are fewer than
    the dimensions) must land on LogisticRegression(C, lbfgs)'s optimum, to the tolerance the
    engine used with scikit-learn (its default, gtol 1e-4, on float32 rows): an objective no
    worse than that fit's (and no better than a tightly converged one's), and probabilities on
    every row, unlabeled ones included, no further from the tight fit's than twice that fit's
    distance plus 1e-3."""
    from sklearn.linear_model import LogisticRegression

    from labelseed.spreading import LINEAR_C, fit_linear

    rng = np.random.default_rng(n_classes * 100 + per_class)
    centers = rng.standard_normal((n_classes, dim))
    y = rng.integers(0, n_classes, 600)
    X = (0.6 * centers[y] + rng.standard_normal((600, dim))).astype(np.float32)
    norms = np.linalg.norm(X, axis=1)
    codes = np.full(600, -1)
    for c in range(n_classes):
        codes[rng.choice(np.flatnonzero(y == c), per_class, replace=False)] = c
    lab = codes >= 0
    Xn = (X / norms[:, None]).astype(np.float64)
    ref = LogisticRegression(C=LINEAR_C, max_iter=1000, tol=1e-10).fit(Xn[lab], codes[lab])
    # the rows as given with their inverse norms, as the engine passes a large pool
    model = fit_linear(X, codes, n_classes, scale=(1 / norms).astype(np.float32))
    got = model.probabilities(X, (1 / norms).astype(np.float32))

    def objective(W, b):
        Z = Xn[lab] @ np.asarray(W, np.float64).T + b
        if Z.shape[1] == 1:  # binomial: class 0's logit is 0
            Z = np.column_stack([np.zeros(len(Z)), Z])
        top = Z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(Z - top).sum(axis=1)) + top[:, 0]
        n = int(lab.sum())
        return (lse - Z[np.arange(n), codes[lab]]).sum() / n + (np.asarray(W, np.float64) ** 2).sum() / (2 * LINEAR_C * n)

    before = LogisticRegression(C=LINEAR_C, max_iter=300).fit(Xn[lab].astype(np.float32), codes[lab])
    if n_classes == 2:  # one weight vector in both
        mine = objective(model.coef[1:2] - model.coef[0:1], np.array([model.intercept[1] - model.intercept[0]]))
    else:
        mine = objective(model.coef, model.intercept)
    best, old = objective(ref.coef_, ref.intercept_), objective(before.coef_, before.intercept_)
    assert best <= mine <= old + 1e-7
    tight = ref.predict_proba(Xn)
    off = np.abs(before.predict_proba(Xn.astype(np.float32)) - tight).max()
    assert np.abs(got - tight).max() <= 2 * off + 1e-3


def test_linear_probabilities_of_an_item_do_not_depend_on_its_batch():
    """`label` scores new items in chunks (and Ray workers in theirs, on other BLAS threads): an
    item's probabilities (``exact=True``, as the new-item scorer asks) must be the same in any
    batch, bit for bit, or the engines' outputs differ."""
    from threadpoolctl import threadpool_limits

    from labelseed.spreading import LinearModel

    rng = np.random.default_rng(3)
    X = rng.standard_normal((3000, 384)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    model = LinearModel(rng.standard_normal((26, 384)).astype(np.float32), rng.standard_normal(26).astype(np.float32))
    whole = model.probabilities(X, exact=True)
    for size in (1, 7, 400):
        parts = np.concatenate([model.probabilities(X[s:s + size], exact=True) for s in range(0, len(X), size)])
        np.testing.assert_array_equal(parts, whole)
    with threadpool_limits(1):
        np.testing.assert_array_equal(model.probabilities(X, exact=True), whole)
    # the pool's one-pass float32 product agrees to float32 precision
    np.testing.assert_allclose(model.probabilities(X), whole, rtol=1e-4, atol=1e-6)
    # the probabilities are the model's: each row a softmax of X W^T + b
    z = X.astype(np.float64) @ model.coef.T.astype(np.float64) + model.intercept
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(whole, p / p.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_new_items_mixed_with_the_classifier_get_the_same_scores_in_any_chunk():
    """The new-item scorer (what `label` and `apply --new` run per chunk) with a classifier weight
    above 0: the chunks' scores equal the whole batch's, bit for bit."""
    from labelseed.autolabeler import NewItemScorer
    from labelseed.spreading import LinearModel

    rng = np.random.default_rng(4)
    n_pool, n_new, d, k = 500, 2000, 384, 26
    spread = rng.dirichlet(np.ones(k), n_pool).astype(np.float32)
    scorer = NewItemScorer(spread, LinearModel(rng.standard_normal((k, d)).astype(np.float32),
                                               rng.standard_normal(k).astype(np.float32)), 0.75)
    X = rng.standard_normal((n_new, d)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    idx = rng.integers(0, n_pool, (n_new, 10))
    sim = rng.uniform(0.2, 0.9, (n_new, 10)).astype(np.float32)
    whole = scorer.scores(idx, sim, X)
    parts = [scorer.scores(idx[s:s + 300], sim[s:s + 300], X[s:s + 300]) for s in range(0, n_new, 300)]
    np.testing.assert_array_equal(np.concatenate([p.confidence for p in parts]), whole.confidence)
    np.testing.assert_array_equal(np.concatenate([p.predicted for p in parts]), whole.predicted)
