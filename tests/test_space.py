"""The graph space (issue 11): a kNN graph on rows whitened by the pool's covariance.

Whitening uses no labels, so it needs no cross-validation; what must hold is that the graph
is built in the mapped space, that the linear classifier and every saved run see the same map
(new items are mapped before their neighbours are searched), and that a cached raw graph is
never reused for a whitened run."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

from conftest import run_cli
from labelseed import AutoLabeler, InputError
from labelseed import ops
from labelseed.graph import build_knn_graph, exact_neighbors, normalize_rows
from labelseed.space import fit_space_map


def _nuisance(n: int = 3000, k: int = 5, seed: int = 0):
    """Classes told apart by 28 quiet dimensions, with 4 loud ones that carry no class: cosine
    neighbours in the raw space follow the loud ones."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.standard_normal((k, 28)).astype(np.float32)
    X = np.hstack([4 * rng.standard_normal((n, 4)), 0.5 * centres[y] + 0.5 * rng.standard_normal((n, 28))])
    return X.astype(np.float32), y


def _purity(graph, y) -> float:
    return float((y[graph.indices] == y[:, None]).mean())


def test_whitening_flattens_the_pool_spectrum_and_is_reproducible():
    X, _ = _nuisance()
    m = fit_space_map(X, "whitened", random_state=0)
    assert fit_space_map(X, "raw") is None

    def condition(Z):
        w = np.linalg.eigvalsh(np.cov(Z.T.astype(np.float64)))
        return w[-1] / w[0]
    raw, mapped = condition(normalize_rows(X)), condition(m.transform(X))
    assert raw > 20
    assert mapped < raw ** 0.75  # strength 0.5: the spread of the spectrum is about halved in log
    np.testing.assert_allclose(np.linalg.norm(m.transform(X), axis=1), 1, atol=1e-5)
    again = fit_space_map(X, "whitened", random_state=0)
    assert np.array_equal(again.matrix, m.matrix) and np.array_equal(again.mean, m.mean)


def test_a_pool_above_the_sample_size_is_mapped_from_a_seeded_sample(monkeypatch):
    import labelseed.space as space

    X, _ = _nuisance(2000)
    monkeypatch.setattr(space, "SAMPLE_ROWS", 500)
    a, b = fit_space_map(X, "whitened", random_state=1), fit_space_map(X, "whitened", random_state=2)
    assert not np.allclose(a.matrix, b.matrix)  # different samples
    np.testing.assert_array_equal(a.matrix, fit_space_map(X, "whitened", random_state=1).matrix)


def test_the_estimator_builds_its_graph_in_the_whitened_space_and_its_neighbours_are_purer():
    X, y = _nuisance()
    codes = np.full(len(y), -1)
    rng = np.random.default_rng(0)
    for c in range(5):
        codes[rng.choice(np.flatnonzero(y == c), 10, replace=False)] = c
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = AutoLabeler(graph_method="exact").fit(X, codes)
        white = AutoLabeler(graph_method="exact", graph_space="whitened").fit(X, codes)
    want = build_knn_graph(fit_space_map(X, "whitened").transform(X), 10, method="exact")
    np.testing.assert_array_equal(white.graph_.indices, want.indices)
    assert raw.space_map_ is None and white.space_map_ is not None
    assert _purity(white.graph_, y) > _purity(raw.graph_, y) + 0.05
    # the classifier keeps the rows as given: its coefficients act on the raw dimensions
    if white.linear_ is not None:
        assert white.linear_.coef.shape[-1] in (X.shape[1], len(white.classes_))


@pytest.mark.parametrize("value", ["pca", "", None, 1])
def test_an_unknown_graph_space_is_one_clear_error(value):
    X, _ = _nuisance(300)
    codes = np.r_[np.arange(5).repeat(4), -np.ones(280, int)]
    with pytest.raises(InputError, match="`graph_space` must be 'raw' or 'whitened'"):
        AutoLabeler(graph_space=value).fit(X, codes)


def test_cli_rejects_an_unknown_graph_space_with_exit_2(tmp_path):
    r = run_cli("autolabel", "--embeddings", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "l.csv"),
                "--out", str(tmp_path / "run"), "--graph-space", "pca")
    assert r.returncode == 2
    assert "--graph-space" in r.stderr and "pca" in r.stderr
    assert not (tmp_path / "run").exists()


def test_a_whitened_run_labels_new_items_through_the_cli_as_the_estimator_does(tmp_path):
    import json

    import pyarrow.parquet as pq

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))
    new, pool = np.sort(perm[:450]), np.sort(perm[450:])
    Xp, Xn = X[pool].astype(np.float32), X[new].astype(np.float32)
    labels = np.full(len(pool), None, dtype=object)
    for c in range(10):
        labels[rng.choice(np.flatnonzero(y[pool] == c), 10, replace=False)] = f"d{c}"
    space = fit_space_map(Xp, "whitened")
    # the check means something: new items' neighbours differ between the spaces
    raw_nb, _ = exact_neighbors(normalize_rows(Xn), normalize_rows(Xp), 10)
    white_nb, _ = exact_neighbors(space.transform(Xn), space.transform(Xp), 10)
    assert (np.sort(raw_nb, axis=1) != np.sort(white_nb, axis=1)).any(axis=1).mean() > 0.3

    np.save(tmp_path / "pool.npy", Xp)
    np.save(tmp_path / "new.npy", Xn)
    (tmp_path / "labels.csv").write_text("id,label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels)
                                                                   if v is not None))
    r = run_cli("autolabel", "--embeddings", str(tmp_path / "pool.npy"), "--labels", str(tmp_path / "labels.csv"),
                "--out", str(tmp_path / "run"), "--quiet", "--graph-space", "whitened")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["settings"]["graph_space"] == "whitened"
    r = run_cli("label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.npy"),
                "--out", str(tmp_path / "new.parquet"))
    assert r.returncode == 0, r.stderr
    got = pq.read_table(tmp_path / "new.parquet").to_pydict()["label"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoLabeler(graph_space="whitened").fit(Xp, labels)
    want = model.predict(Xn)
    assert [str(v) for v in got] == [str(v) for v in want]
    assert sum(v is not None for v in got) > 100


def test_a_cached_graph_is_reused_only_within_its_space(tmp_path):
    X, y = _nuisance(6000)  # above the exact limit: an IVF graph, cached with its index
    labels = np.full(len(y), None, dtype=object)
    rng = np.random.default_rng(1)
    for c in range(5):
        labels[rng.choice(np.flatnonzero(y == c), 10, replace=False)] = f"c{c}"
    white = ops.FitSettings(graph_space="whitened")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = ops.fit(X, labels, ops.FitSettings(), cache_dir=tmp_path)
        second = ops.fit(X, labels, white, cache_dir=tmp_path)
        third = ops.fit(X, labels, white, cache_dir=tmp_path)
        direct = AutoLabeler(graph_space="whitened").fit(X, labels)
    assert (first.graph_reused, second.graph_reused, third.graph_reused) == (False, False, True)
    assert _purity(second.model.graph_, y) > _purity(first.model.graph_, y) + 0.02  # 0.884 vs 0.842
    np.testing.assert_array_equal(third.model.graph_.indices, direct.graph_.indices)
    assert list(third.model.result_.labels) == list(direct.result_.labels)
