from __future__ import annotations


import numpy as np
import pytest
from scipy import sparse

from labelseed import AutoLabeler, FoldFallbackWarning, InputError, NotFittedError
from labelseed._validation import check_embeddings, encode_labels

from conftest import blobs, seed_labels


def test_string_labels_with_none():
    X, y = blobs(n_per=30, n_classes=3, spread=1.0)
    names = np.array(["cat", "dog", "eel"])[y].astype(object)
    codes = seed_labels(y, 6)
    lab = np.where(codes >= 0, names, None)
    m = AutoLabeler(target_precision=0.9).fit(X, lab)
    assert list(m.classes_) == ["cat", "dog", "eel"]
    pred = m.predict()
    assert set(v for v in pred if v is not None) <= {"cat", "dog", "eel"}
    assert (m.predict_proba().shape == (len(X), 3))


def test_int_predict_uses_minus_one_for_abstained():
    X, y = blobs(n_per=30, n_classes=3, spread=3.0, seed=4)
    m = AutoLabeler(target_precision=0.999).fit(X, seed_labels(y, 5))
    p = m.predict()
    assert p.dtype.kind == "i"
    assert ((p == -1) == (m.result_.source == "abstain")).all()


def test_inductive_predict_on_new_rows():
    X, y = blobs(n_per=40, n_classes=3, spread=0.5, seed=2)
    m = AutoLabeler(target_precision=0.9).fit(X, seed_labels(y, 6))
    P = m.predict_proba(X[:5] + 0.01)
    assert P.shape == (5, 3) and np.allclose(P.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize(
    "kw, msg",
    [({"target_precision": 1.5}, r"`target_precision` must be in \(0, 1\]; got 1.5"),
     ({"target_precision": 0}, "target_precision"),
     ({"metric": "nope"}, "`metric` must be one of"),
     ({"alpha": 1.0}, "`alpha`"),
     ({"n_splits": 1}, "`n_splits`"),
     ({"method": "svm"}, "`method`"),
     ({"alpha": "x"}, r"`alpha` must be a number in \(0, 1\); got 'x'"),
     ({"random_state": "a"}, r"`random_state` must be an integer in \[0, 4294967295\]; got 'a'"),
     ({"random_state": -1}, "`random_state`"),
     ({"random_state": 0.5}, "`random_state`")],
)
def test_parameter_errors_name_the_parameter(kw, msg):
    X, y = blobs()
    with pytest.raises(InputError, match=msg):
        AutoLabeler(**kw).fit(X, seed_labels(y, 6))


def test_errors_are_value_errors():
    assert issubclass(InputError, ValueError)


def test_not_fitted():
    with pytest.raises(NotFittedError):
        AutoLabeler().predict()


def test_fold_fallback_warns():
    X, y = blobs()
    codes = seed_labels(y, 6)
    drop = np.flatnonzero(codes == 2)[3:]
    codes[drop] = -1
    with pytest.warns(FoldFallbackWarning, match="using 3 folds"):
        m = AutoLabeler(n_splits=5).fit(X, codes)
    assert m.n_splits_ == 3


def test_all_rows_labeled_is_an_error():
    X, y = blobs()
    with pytest.raises(InputError, match="nothing to auto-label"):
        AutoLabeler().fit(X, y)


@pytest.mark.parametrize("X, msg", [
    (np.zeros((0, 3)), "empty pool"),
    (np.zeros(5), "2-D"),
    (np.array([[1.0, np.nan]]), "NaN"),
    (np.array([["a", "b"]]), "numeric"),
    (sparse.csr_matrix(np.eye(3)), r"sparse matrix; pass dense embedding vectors \(e.g. `X.toarray\(\)`\)"),
])
def test_check_embeddings(X, msg):
    with pytest.raises(InputError, match=msg):
        check_embeddings(X)


def test_encode_labels_rejects_mixed_and_floats():
    with pytest.raises(InputError, match="mixes"):
        encode_labels(np.array(["a", 1, None], dtype=object), 3)
    for floats in (np.array([0.5, 1.0]), np.array([0.0, np.inf]), np.array([2.0, 0.25, None], dtype=object)):
        with pytest.raises(InputError, match="float labels that are not whole numbers"):
            encode_labels(floats, len(floats))
    with pytest.raises(InputError, match="has 2 labels"):
        encode_labels([0, 1], 3)


def test_no_global_rng_use():
    X, y = blobs(seed=5)
    codes = seed_labels(y, 6)
    np.random.seed(1)
    a = AutoLabeler(random_state=3).fit(X, codes).thresholds_
    np.random.seed(2)
    b = AutoLabeler(random_state=3).fit(X, codes).thresholds_
    np.testing.assert_array_equal(a, b)


def test_one_default_for_each_engine_knob_everywhere():
    """n_neighbors and alpha have one default: the estimator's, the pure functions', the project's,
    simulate's and the CLI's (the graph once defaulted to 15 neighbours, spreading to alpha 0.99)."""
    import inspect

    from labelseed import AutoLabeler
    from labelseed.cli import _parser
    from labelseed.graph import build_knn_graph
    from labelseed.ops import FitSettings
    from labelseed.simulate import simulate
    from labelseed.spreading import propagate, spread, spread_many

    est = AutoLabeler()

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    assert {default(f, "n_neighbors") for f in (build_knn_graph, simulate)} == {est.n_neighbors}
    # every setting a run records (and the project, query and apply --refit take from it) is the estimator's
    settings = FitSettings()
    for name, value in settings.config().items():
        assert getattr(est, name) == value, name
    assert {default(f, "alpha") for f in (propagate, spread, spread_many)} == {est.alpha}
    sub = _parser()._subparsers._group_actions[0].choices
    for command in ("autolabel", "fit", "run", "simulate"):
        assert sub[command].get_default("n_neighbors") == est.n_neighbors, command
    cli_names = {"target_precision": "target_precision", "metric": "metric", "per_class": "per_class",
                 "method": "method", "n_splits": "folds", "min_support": "min_support",
                 "confidence_level": "confidence_level", "label_sampling": "label_sampling",
                 "random_state": "random_state"}
    for command in ("autolabel", "fit", "run"):
        for name, option in cli_names.items():
            assert sub[command].get_default(option) == getattr(settings, name), (command, option)


def test_a_pandas_label_column_with_gaps_encodes_as_its_numpy_or_list_form():
    """Integer classes with gaps arrive as floats with NaN (pandas' int column with missing values),
    strings with gaps as pandas' NA: the same codes and classes as ints with -1 and strings with None."""
    pd = pytest.importorskip("pandas")
    ints = np.array([3, -1, 0, 3, -1, 7])
    want_codes, want_classes = encode_labels(ints, 6)
    assert want_classes.tolist() == [0, 3, 7] and want_codes.tolist() == [1, -1, 0, 1, -1, 2]
    floats = np.where(ints == -1, np.nan, ints.astype(float))
    for y in (floats, pd.Series(floats), floats.tolist(), ints.astype(float), pd.Series(ints).astype("Int64"),
              pd.Series(floats).astype("Int64")):
        codes, classes = encode_labels(y, 6)
        assert codes.tolist() == want_codes.tolist() and classes.tolist() == [0, 3, 7], y
        assert classes.dtype.kind == "i"
    big = 2**62 + 1  # an integer class id that float64 cannot hold
    codes, classes = encode_labels(pd.Series([big, None, 7], dtype="Int64"), 3)
    assert classes.tolist() == [7, big] and codes.tolist() == [1, -1, 0]
    strings = ["b", None, "a", "b", None, "c"]
    for y in (strings, pd.Series(strings, dtype="string"), pd.Series(strings, dtype=object)):
        codes, classes = encode_labels(y, 6)
        assert codes.tolist() == want_codes.tolist() and classes.tolist() == ["a", "b", "c"], y
