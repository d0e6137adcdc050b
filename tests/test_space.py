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


def test_an_item_maps_to_the_same_row_in_any_batch():
    """`label` maps new items a chunk at a time (Ray workers on their own BLAS threads): the mapped
    row, and so its neighbours and confidence, must not depend on the batch, bit for bit."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(5)
    X = rng.standard_normal((3000, 100)).astype(np.float32)  # float32 products differed here by batch
    m = fit_space_map(X, "whitened", random_state=0)
    whole = m.transform(X)
    for size in (1, 7, 400):
        np.testing.assert_array_equal(np.concatenate([m.transform(X[s:s + size]) for s in range(0, 3000, size)]),
                                      whole)
    with threadpool_limits(1):
        np.testing.assert_array_equal(m.transform(X), whole)
    # the map itself: unit rows, centred, times the matrix, back to unit length
    U = X.astype(np.float64) / np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True)
    Z = (U - m.mean) @ m.matrix.astype(np.float64)
    np.testing.assert_allclose(whole, Z / np.linalg.norm(Z, axis=1, keepdims=True), atol=1e-6)


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
    with pytest.raises(InputError, match="`graph_space` must be 'raw', 'whitened' or 'auto'"):
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
        auto = ops.fit(X, labels, ops.FitSettings(graph_space="auto"), cache_dir=tmp_path)  # both graphs cached
    assert (first.graph_reused, second.graph_reused, third.graph_reused) == (False, False, True)
    assert auto.graph_reused and len(list(tmp_path.glob("graph-*.npz"))) == 2
    assert _purity(second.model.graph_, y) > _purity(first.model.graph_, y) + 0.02  # 0.884 vs 0.842
    np.testing.assert_array_equal(third.model.graph_.indices, direct.graph_.indices)
    assert list(third.model.result_.labels) == list(direct.result_.labels)


def _loud_signal(n: int = 3000, k: int = 5, seed: int = 0):
    """The opposite case: the class lives in 4 loud dimensions and quiet ones are noise that
    whitening would amplify, so the raw graph is the better one (60 of them)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.standard_normal((k, 4)).astype(np.float32)
    X = np.hstack([3 * centres[y] + rng.standard_normal((n, 4)), 0.5 * rng.standard_normal((n, 60))])
    return X.astype(np.float32), y


def _codes(y, per_class: int, seed: int = 0):
    codes = np.full(len(y), -1)
    rng = np.random.default_rng(seed)
    for c in np.unique(y):
        codes[rng.choice(np.flatnonzero(y == c), per_class, replace=False)] = c
    return codes


@pytest.mark.parametrize("make, want", [(_nuisance, "whitened"), (_loud_signal, "raw")])
def test_auto_keeps_the_graph_whose_out_of_fold_scores_are_better(make, want):
    X, y = make()
    codes = _codes(y, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graphs = {s: AutoLabeler(graph_method="exact", graph_space=s).fit(X, codes).graph_ for s in ("raw", "whitened")}
        auto = AutoLabeler(graph_method="exact", graph_space="auto").fit(X, codes)
    other = "raw" if want == "whitened" else "whitened"
    assert _purity(graphs[want], y) > _purity(graphs[other], y) + 0.03  # the data make one graph better
    assert auto.graph_space_ == want
    np.testing.assert_array_equal(auto.graph_.indices, graphs[want].indices)
    assert (auto.space_map_ is None) == (want == "raw")
    assert auto.timings_ and "graph" in auto.timings_


def test_auto_choice_for_a_fold_never_sees_the_fold_s_own_labels(monkeypatch):
    """Relabel every row of fold 0: its graph and weight, chosen on the other folds' rows, and so
    its out-of-fold scores must not move; and what its choice was computed from (the rows scored,
    their labels, both graphs' spreads, the classifier) must be the same bytes."""
    import hashlib

    import labelseed.spreading as sp
    from labelseed.spreading import ensemble_scorer, normalized_affinity
    from labelseed.thresholds import cross_val_scores

    seen: list[str] = []
    best_mix = sp._best_mix

    def recording(spreads, linear, y, k):
        h = hashlib.sha1(y.tobytes() + linear.tobytes())
        for A in spreads:
            h.update(A.tobytes())
        seen.append(h.hexdigest())
        return best_mix(spreads, linear, y, k)
    monkeypatch.setattr(sp, "_best_mix", recording)

    X, y = _nuisance(1500)
    codes = _codes(y, 12)
    Xn = normalize_rows(X)
    S = [normalized_affinity(build_knn_graph(Z, 10, method="exact").affinity())
         for Z in (Xn, fit_space_map(X, "whitened").transform(X))]
    scorer = ensemble_scorer(S, Xn, 5, 0.9)
    a = cross_val_scores(scorer, codes, 5, 5, random_state=0)
    graphs_a, weights_a = list(scorer.set_graph), list(scorer.set_weight)
    assert 1 in graphs_a  # the whitened graph was chosen somewhere: the choice is live
    other = codes.copy()
    f0 = a.labeled[a.fold == 0]
    other[f0] = (codes[f0] + 1) % 5
    first, seen[:] = list(seen), []
    b = cross_val_scores(scorer, other, 5, 5, random_state=0, fold=a.fold)
    assert len(seen) == len(first) == 6  # five folds' choices, then the final one
    assert seen[0] == first[0]  # fold 0's choice: computed from the same inputs
    assert seen[1] != first[1]  # fold 1's choice reads fold 0's rows (the check is live)
    assert (scorer.set_graph[0], scorer.set_weight[0]) == (graphs_a[0], weights_a[0])
    np.testing.assert_allclose(a.oof.distribution[a.fold == 0], b.oof.distribution[b.fold == 0], atol=1e-6)
    assert not np.allclose(a.final.distribution, b.final.distribution, atol=1e-3)


def test_best_mix_takes_the_graph_and_weight_of_lowest_log_loss_and_the_first_of_equals():
    from labelseed.spreading import LINEAR_WEIGHTS, _best_mix

    y = np.array([0, 1, 0, 1])
    linear = np.full((4, 2), 0.5)
    poor = np.array([[0.4, 0.6], [0.6, 0.4], [0.4, 0.6], [0.6, 0.4]])
    good = np.eye(2)[y] * 0.9 + 0.05
    assert _best_mix([poor, good], linear, y, 2) == (1, 0.0)
    assert _best_mix([good, good], linear, y, 2) == (0, 0.0)
    assert _best_mix([poor, poor], np.eye(2)[y], y, 2) == (0, max(LINEAR_WEIGHTS))


def test_auto_needs_the_ensemble():
    X, y = _nuisance(300)
    with pytest.raises(InputError, match="graph_space='auto'"):
        AutoLabeler(method="spreading", graph_space="auto").fit(X, _codes(y, 6))


def test_an_auto_run_through_the_cli_reports_its_graph_and_labels_new_items_as_the_estimator_does(tmp_path):
    import json

    import pyarrow.parquet as pq

    X, y = _nuisance(3450, seed=3)
    Xp, Xn = X[:3000], X[3000:]
    codes = _codes(y[:3000], 12)
    np.save(tmp_path / "pool.npy", Xp)
    np.save(tmp_path / "new.npy", Xn)
    (tmp_path / "labels.csv").write_text("id,label\n" + "".join(f"{i},c{c}\n" for i, c in enumerate(codes) if c >= 0))
    r = run_cli("autolabel", "--embeddings", str(tmp_path / "pool.npy"), "--labels", str(tmp_path / "labels.csv"),
                "--out", str(tmp_path / "run"), "--quiet", "--graph-space", "auto")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["settings"]["graph_space"] == "auto" and summary["graph_space"] == "whitened"
    r = run_cli("label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.npy"),
                "--out", str(tmp_path / "new.parquet"))
    assert r.returncode == 0, r.stderr
    got = pq.read_table(tmp_path / "new.parquet").to_pydict()["label"]
    labels = np.where(codes >= 0, np.char.add("c", codes.astype(str)), None).astype(object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoLabeler(graph_space="auto").fit(Xp, labels)
    assert [str(v) for v in got] == [str(v) for v in model.predict(Xn)]
    assert sum(v is not None for v in got) > 50


def test_a_project_fitted_on_the_whitened_graph_labels_added_items_through_its_map(tmp_path):
    import csv

    from labelseed.project import Project

    X, y = _nuisance(3300, seed=5)
    codes = _codes(y[:3000], 12)
    np.save(tmp_path / "pool.npy", X[:3000])
    np.save(tmp_path / "new.npy", X[3000:])
    (tmp_path / "ids.csv").write_text("id\n" + "".join(f"v{i}\n" for i in range(3000)))
    (tmp_path / "new.csv").write_text("id\n" + "".join(f"v{i}\n" for i in range(3000, 3300)))
    (tmp_path / "seed.csv").write_text("id,label\n" + "".join(f"v{i},c{c}\n" for i, c in enumerate(codes) if c >= 0))
    with Project.init(tmp_path / "proj", data=tmp_path / "ids.csv", vectors=tmp_path / "pool.npy") as proj:
        proj.import_labels(tmp_path / "seed.csv")
        run = proj.fit(graph_space="whitened")
        assert run["summary"]["graph_space"] == "whitened"
        assert proj.add(tmp_path / "new.csv", vectors=tmp_path / "new.npy") == 300
        out = proj.apply(new=True, out=tmp_path / "labels.csv")
        rows = {r["id"]: r for r in csv.DictReader(open(out))}
        assert proj.status()["last_run"]["graph_space"] == "whitened"
    shown = run_cli("status", str(tmp_path / "proj"))
    assert shown.returncode == 0, shown.stderr
    assert "kNN graph in the whitened space" in shown.stdout
    labels = np.where(codes >= 0, np.char.add("c", codes.astype(str)), None).astype(object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = AutoLabeler(graph_space="whitened").fit(X[:3000], labels).predict(X[3000:])
    got = [rows[f"v{i}"]["label"] if f"v{i}" in rows else None for i in range(3000, 3300)]
    assert sum(v is not None for v in want) > 50
    assert [str(v) for v in got] == [str(v) for v in want]


@pytest.mark.parametrize("n, d", [(40, 60), (500, 12), (3000, 64)])
def test_the_shrunk_covariance_is_scikit_learn_s_ledoit_wolf(n, d):
    from sklearn.covariance import ledoit_wolf

    from labelseed.space import ledoit_wolf_covariance

    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, d)) * np.linspace(0.05, 4, d)
    X -= X.mean(axis=0)
    want, shrinkage = ledoit_wolf(X, assume_centered=True)
    assert 0 < shrinkage < 1  # the check covers the shrinkage, not only the sample covariance
    np.testing.assert_allclose(ledoit_wolf_covariance(X), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("graph_space", ["whitened", "auto"])
def test_simulate_fits_each_round_in_the_graph_space_it_was_given(graph_space):
    from labelseed.simulate import simulate

    X, y = _nuisance(2000, seed=7)
    truth = np.array([f"c{v}" for v in y])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = simulate(X, truth, 100, 1, random_state=0)
        got = simulate(X, truth, 100, 1, graph_space=graph_space, random_state=0)
        # the random scheme's labels: the first 100 rows of the simulation's permutation
        order = np.random.default_rng(0).permutation(len(y))
        labels = np.full(len(y), None, dtype=object)
        labels[order[:100]] = truth[order[:100]]
        direct = AutoLabeler(graph_space=graph_space).fit(X, labels).result_
    rec = {r.scheme: r for r in got.records}["random"]
    assert got.params["graph_space"] == graph_space
    assert rec.coverage == pytest.approx(direct.coverage)
    assert rec.expected_precision == pytest.approx(direct.expected_precision)
    raw_rec = {r.scheme: r for r in raw.records}["random"]
    assert (raw_rec.coverage, raw_rec.expected_precision) != (rec.coverage, rec.expected_precision)


def test_simulate_rejects_a_bad_graph_space_through_the_cli_with_one_line(tmp_path):
    X, y = _nuisance(300)
    np.save(tmp_path / "x.npy", X)
    (tmp_path / "truth.csv").write_text("id,label\n" + "".join(f"{i},c{v}\n" for i, v in enumerate(y)))
    r = run_cli("simulate", "--embeddings", str(tmp_path / "x.npy"), "--truth", str(tmp_path / "truth.csv"),
                "--budget", "20", "--out", str(tmp_path / "sim"), "--graph-space", "auto", "--fast")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "graph_space='auto'" in r.stderr
    assert not (tmp_path / "sim").exists()
