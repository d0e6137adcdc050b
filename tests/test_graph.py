from __future__ import annotations

import numpy as np
import pytest

from labelseed.exceptions import InputError
from labelseed.graph import build_knn_graph, normalize_rows

from conftest import blobs


def test_exact_graph_matches_brute_force():
    X, _ = blobs(n_per=50, dim=16, seed=4)
    g = build_knn_graph(X, 5, method="exact")
    Xn = normalize_rows(X)
    S = Xn @ Xn.T
    np.fill_diagonal(S, -np.inf)
    want = np.sort(-np.sort(-S, axis=1)[:, :5], axis=1)
    np.testing.assert_allclose(np.sort(g.similarities, axis=1), want, atol=1e-5)
    assert (g.indices != np.arange(len(X))[:, None]).all()


def test_ivf_recall_on_real_data():
    # the criterion the ANN index was chosen by: recall@k >= 0.95 against exact, on real data
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float32)
    exact = build_knn_graph(X, 10, method="exact")
    approx = build_knn_graph(X, 10, method="ivf")
    hits = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.indices, exact.indices)])
    assert approx.method == "ivf"
    assert hits >= 0.95


def test_affinity_is_symmetric_nonnegative_without_diagonal():
    X, _ = blobs(seed=6)
    W = build_knn_graph(X, 4, method="exact").affinity()
    assert abs(W - W.T).max() < 1e-7
    assert W.diagonal().max() == 0
    assert W.data.min() > 0
    assert W.nnz <= 2 * 4 * len(X)


def test_zero_vector_is_an_input_error():
    X, _ = blobs()
    X[3] = 0
    with pytest.raises(InputError, match="all-zero"):
        build_knn_graph(X, 4)


def test_tiny_pool():
    g = build_knn_graph(np.eye(2, dtype=np.float32) + 0.1, 5)
    assert g.indices.shape == (2, 1)


@pytest.mark.parametrize("method", ["exact", "ivf"])
def test_save_load_roundtrip(tmp_path, method):
    X, _ = blobs(n_per=400, n_classes=3, dim=16, seed=7)
    g = build_knn_graph(X, 6, method=method)
    g.save(tmp_path / "g.npz")
    h = type(g).load(tmp_path / "g.npz")
    np.testing.assert_array_equal(g.indices, h.indices)
    np.testing.assert_array_equal(g.similarities, h.similarities)
    assert (h.method, h.nprobe, h.recall_estimate) == (g.method, g.nprobe, g.recall_estimate)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cached_graph_is_reused_only_for_the_same_vectors(tmp_path):
    from labelseed.graph import cached_knn_graph

    X, _ = blobs(n_per=50, dim=8, seed=8)
    g1, reused1 = cached_knn_graph(X, 5, tmp_path)
    g2, reused2 = cached_knn_graph(X.copy(), 5, tmp_path)
    assert (reused1, reused2) == (False, True)
    np.testing.assert_array_equal(g1.indices, g2.indices)
    X[0, 0] += 1.0
    assert cached_knn_graph(X, 5, tmp_path)[1] is False
    assert cached_knn_graph(X, 6, tmp_path)[1] is False


@pytest.mark.parametrize("nprobe", [4, 12])
def test_ivf_graph_is_the_same_in_blocks_and_from_raw_rows(monkeypatch, nprobe):
    # rows are added and searched in blocks, scaled to unit length a block at a time; the graph
    # must not depend on the block size or on whether the caller normalised the rows first
    import labelseed.graph as graph

    X, _ = blobs(n_per=700, n_classes=4, dim=24, seed=9)
    X *= np.random.default_rng(0).uniform(0.5, 3.0, size=(len(X), 1)).astype(np.float32)
    g = build_knn_graph(X, 8, method="ivf", nprobe=nprobe)
    monkeypatch.setattr(graph, "ROW_BLOCK", 500)
    monkeypatch.setattr(graph, "COARSE_PROBES", 1)  # the probed lists found again, not those found when adding
    h = build_knn_graph(normalize_rows(X), 8, method="ivf", nprobe=nprobe, normalized=True)
    assert g.nprobe == h.nprobe == nprobe
    # the same neighbours; their order may differ only where two similarities tie to float32
    # rounding (a matrix product's rounding depends on the block's shape)
    np.testing.assert_array_equal(np.sort(g.indices, axis=1), np.sort(h.indices, axis=1))
    np.testing.assert_allclose(g.similarities, h.similarities, atol=1e-6)
    swapped = g.indices != h.indices
    assert swapped.mean() < 1e-3


def test_affinity_drops_missing_neighbours_self_loops_and_negative_weights():
    from labelseed.graph import KnnGraph

    idx = np.array([[1, 2], [0, -1], [2, 0]])
    sim = np.array([[0.5, -0.2], [0.5, 0.0], [0.9, 0.3]], dtype=np.float32)
    W = KnnGraph(idx, sim, "exact").affinity().toarray()
    want = np.array([[0, 0.5, 0.3], [0.5, 0, 0], [0.3, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(W, want)
    C = KnnGraph(idx, sim, "exact").affinity("connectivity").toarray()
    np.testing.assert_array_equal(C, (want > 0).astype(np.float32))


@pytest.mark.parametrize("reduced", [False, True])
def test_ivf_lists_split_into_shards_give_the_same_graph(monkeypatch, reduced):
    """Each worker holds the IVF lists of one shard and searches them for the rows that probe them
    (the Ray engine's graph): every list in exactly one shard, each row in the shard of its list,
    a shard answering only with its own rows, and the merged graph equal to the unsharded one."""
    import labelseed.graph as graph

    if reduced:
        monkeypatch.setattr(graph, "REDUCED_MIN_ROWS", 0)
    X = _low_rank_pool(rank=12 if reduced else 60, seed=3)
    whole = build_knn_graph(X, 10, method="ivf")
    assert whole.index.kind == ("ivf-reduced" if reduced else "ivf")
    for n_shards in (2, 5):
        split = build_knn_graph(X, 10, method="ivf", shards=n_shards)
        assert split.nprobe == whole.nprobe
        np.testing.assert_array_equal(split.indices, whole.indices)
        np.testing.assert_array_equal(split.similarities, whole.similarities)

    unit = graph._UnitRows(X, False)
    pool, _, empty = graph.ivf_index(unit, 10, np.random.default_rng(0), 0, keep_empty=True)
    pool.set_nprobe(whole.nprobe)
    shards = graph._Shards(pool, empty, 3, 0)
    lists = np.concatenate([s.lists for s in shards])
    np.testing.assert_array_equal(np.sort(lists), np.arange(graph.faiss_ivf(pool).nlist))
    np.testing.assert_array_equal(np.sort(np.concatenate([s.ids for s in shards])), np.arange(len(X)))
    sizes = [len(s.ids) for s in shards]
    assert max(sizes) < 1.5 * min(sizes)  # balanced by rows, not by lists
    first = graph._shard_index(shards[0])
    rows = np.arange(0, len(X), 7)
    D, I = first.pool.search(unit.take(rows), 11)
    found = I[I >= 0] if first.ids is None else first.ids[I[I >= 0]]
    assert len(found) and np.isin(found, shards[0].ids).all()


def _low_rank_pool(n=6000, d=192, rank=12, seed=0):
    """Rows near a 12-dimensional subspace: a few principal components hold the neighbours."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, rank)))[0].T
    X = rng.standard_normal((n, rank)) @ basis + 0.02 * rng.standard_normal((n, d))
    return X.astype(np.float32)


@pytest.fixture
def reduced_on_small_pools(monkeypatch):
    import labelseed.graph as graph

    monkeypatch.setattr(graph, "REDUCED_MIN_ROWS", 0)  # the tests' pools are small


def test_ivf_searches_a_reduced_space_where_it_keeps_the_neighbours_and_recall_holds(reduced_on_small_pools):
    from labelseed.graph import exact_neighbors

    X = _low_rank_pool()
    g = build_knn_graph(X, 10, method="ivf")
    assert g.index is not None and g.index.kind == "ivf-reduced"
    Xn = normalize_rows(X)
    rows = np.arange(0, len(X), 25)
    truth, _ = exact_neighbors(Xn[rows], Xn, 11)
    recall = np.mean([len(np.intersect1d(a[1:], b)) / 10 for a, b in zip(truth, g.indices[rows])])
    assert recall >= 0.9
    assert abs(recall - g.recall_estimate) < 0.08  # the sample's estimate is what the graph reached


def test_ivf_keeps_the_full_space_when_no_few_components_hold_the_neighbours(reduced_on_small_pools):
    X = np.random.default_rng(1).standard_normal((6000, 192)).astype(np.float32)  # isotropic
    g = build_knn_graph(X, 10, method="ivf")
    assert g.index is not None and g.index.kind == "ivf"


def test_small_pools_keep_the_full_space_without_testing_a_reduced_one():
    g = build_knn_graph(_low_rank_pool(), 10, method="ivf")  # 6,000 rows: below REDUCED_MIN_ROWS
    assert g.index.kind == "ivf"


def test_pool_index_round_trips_through_a_file_with_the_same_neighbours(tmp_path, reduced_on_small_pools):
    from labelseed.graph import KnnGraph

    X = _low_rank_pool(seed=2)
    g = build_knn_graph(X, 10, method="ivf")
    g.save(tmp_path / "g.npz")
    h = KnnGraph.load(tmp_path / "g.npz")
    assert h.index is not None and h.index.kind == g.index.kind and h.index.nprobe == g.nprobe
    Q = normalize_rows(X[:50])
    np.testing.assert_array_equal(h.index.neighbors(Q, 10)[0], g.index.neighbors(Q, 10)[0])
    # the graph is the index searched with every row, itself left out
    assert (g.index.neighbors(Q, 11)[0][:, 1:] == g.indices[:50]).mean() > 0.95


def test_nprobe_tuning_stops_when_more_probes_add_no_similar_neighbours(monkeypatch, caplog):
    # issue 14's isotropic hard case: within a class every row is about as similar as any other,
    # so an exact recall of 0.999 costs nearly every list while the similarity mass found stops
    # growing early; tuning must stop there, say why, and report the recall it reached
    import logging

    rng = np.random.default_rng(3)
    centres = rng.standard_normal((20, 384))
    y = rng.integers(0, 20, 8000)
    X = (0.3 * centres[y] + 4 * rng.standard_normal((8000, 384)) / np.sqrt(384)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="labelseed.graph"):
        g = build_knn_graph(X, 10, method="ivf", target_recall=0.999)
    nlist = int(2 * np.sqrt(len(X)))
    assert g.nprobe < nlist / 4
    assert "similarity mass gained" in caplog.text
    assert g.recall_estimate < 1.0
    assert (y[g.indices] == y[:, None]).mean() > 0.99  # the neighbours found are as good for labels


@pytest.mark.parametrize("reduced", [True, False])
def test_a_released_index_is_read_back_with_the_same_neighbours_and_saved_whole(tmp_path, monkeypatch, reduced):
    import labelseed.graph as graph

    if reduced:
        monkeypatch.setattr(graph, "REDUCED_MIN_ROWS", 0)
    X = _low_rank_pool(seed=4)
    g = build_knn_graph(X, 10, method="ivf")
    Q = normalize_rows(X[:40])
    before = g.index.neighbors(Q, 10)
    g.index.release()  # what a fit does while it spreads: the index is not needed until the run is saved
    assert g.index._index is None and g.index.path is not None and g.index.path.exists()
    g.index.save(tmp_path / "index.faiss")
    np.testing.assert_array_equal(g.index.neighbors(Q, 10)[0], before[0])
    from labelseed.graph import PoolIndex

    again = PoolIndex.load(tmp_path / "index.faiss", g.index.kind, g.index.nprobe, g.index.k_factor)
    np.testing.assert_array_equal(again.neighbors(Q, 10)[0], before[0])


def test_reduced_candidates_are_the_exact_top_list_of_the_projected_pool(monkeypatch):
    # the reduced-space test runs against the whole pool a block at a time; its running top lists
    # must be the exact nearest rows in the projected space, each query's own row left out
    import labelseed.graph as graph
    from labelseed.graph import _UnitRows, _reduced_candidates, _topk_exact

    monkeypatch.setattr(graph, "ROW_BLOCK", 700)  # several blocks
    X = _low_rank_pool(n=3000, seed=5)
    unit = _UnitRows(X, normalized=False)
    P = np.linalg.qr(np.random.default_rng(0).standard_normal((X.shape[1], 32)))[0].T.astype(np.float32)
    rows = np.array([0, 5, 1400, 2999])
    Q = unit.take(rows)
    got = _reduced_candidates(unit, P, Q, rows, [16, 32], 20)
    R = normalize_rows(X) @ P.T
    for m in (16, 32):
        want, _ = _topk_exact(Q @ P[:m].T, np.ascontiguousarray(R[:, :m]), 20, 3000, None, self_rows=rows)
        assert [set(a) for a in got[m]] == [set(b) for b in want]


def test_one_slow_timing_does_not_stop_nprobe_tuning(monkeypatch, caplog):
    # the time bound projects a full search from 128 sampled rows searched in milliseconds, so a
    # single pause of the process (another job on the machine) must not read as a slow search
    import logging
    import time as real_time

    from labelseed import graph as graph_module

    rng = np.random.default_rng(3)
    centres = rng.standard_normal((20, 96))
    y = rng.integers(0, 20, 8000)
    X = (0.3 * centres[y] + 4 * rng.standard_normal((8000, 96)) / np.sqrt(96)).astype(np.float32)
    want = build_knn_graph(X, 10, method="ivf", target_recall=0.99)
    assert want.nprobe > graph_module.NPROBE_STEPS[0]  # tuning has a second step to take

    class PausedOnce:  # the first timed search of the second step takes an hour
        def __init__(self):
            self.calls = 0

        def perf_counter(self):
            # calls 1-2 time the first step (fast: timed once), 3-4 the second step's first search;
            # the clock jumps at its end and stays ahead, so later timings' differences are normal
            self.calls += 1
            return real_time.perf_counter() + (3600.0 if self.calls >= 4 else 0.0)

    clock = PausedOnce()
    monkeypatch.setattr(graph_module, "time", clock)
    with caplog.at_level(logging.INFO, logger="labelseed.graph"):
        got = build_knn_graph(X, 10, method="ivf", target_recall=0.99)
    assert clock.calls > 4  # the pause happened, and tuning went on after it
    assert "time: the next step" not in caplog.text
    assert got.nprobe == want.nprobe
    np.testing.assert_array_equal(got.indices, want.indices)
    # when every timing of a step is slow, the bound still stops tuning before it
    monkeypatch.setattr(graph_module, "TIMING_REPEATS", 1)
    clock.calls = 0
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="labelseed.graph"):
        stopped = build_knn_graph(X, 10, method="ivf", target_recall=0.99)
    assert "time: the next step" in caplog.text
    assert stopped.nprobe == graph_module.NPROBE_STEPS[0]


def _sorted_reference(S, k):
    return np.sort(S, axis=1)[:, ::-1][:, :k]


@pytest.mark.parametrize("shape,k", [((128, 20000), 10), ((40, 5000), 15), ((50, 300), 10), ((7, 11), 10),
                                     ((5, 10), 10), ((3, 2000), 1), ((4, 257), 16)])
def test_top_k_rows_is_each_rows_k_largest_in_order(shape, k):
    from labelseed.graph import _top_k_rows

    rng = np.random.default_rng(shape[1] + k)
    S = rng.standard_normal(shape).astype(np.float32)
    S[rng.random(shape) < 0.02] = -np.inf  # rows left out of a search (a row itself)
    idx, val = _top_k_rows(S, k)
    np.testing.assert_array_equal(val, _sorted_reference(S, k))
    np.testing.assert_array_equal(np.take_along_axis(S, idx, axis=1), val)
    assert all(len(set(row)) == k for row in idx.tolist())


def test_top_k_rows_with_ties_and_a_whole_chunk_of_the_best():
    from labelseed.graph import _top_k_rows

    rng = np.random.default_rng(0)
    S = np.round(rng.standard_normal((60, 3000)), 1).astype(np.float32)  # many equal values
    S[:, 100:130] = 9.0  # a row's k best all in one or two chunks: the bound must still hold
    idx, val = _top_k_rows(S, 10)
    np.testing.assert_array_equal(val, _sorted_reference(S, 10))
    np.testing.assert_array_equal(idx, np.tile(np.arange(100, 110), (60, 1)))  # equal values: lower column first
    idx, val = _top_k_rows(S, 40)
    np.testing.assert_array_equal(val, _sorted_reference(S, 40))
    assert (np.sort(idx[:, :30], axis=1) == np.arange(100, 130)).all()


def _full_space_block(n=3000, d=48, n_probe=6, seed=0):
    """A trained full-space IVF pool index with fp16 codes and a block of its rows, preassigned."""
    import faiss

    from labelseed.graph import PoolIndex, _GraphBlock, faiss_ivf

    rng = np.random.default_rng(seed)
    X = normalize_rows(rng.standard_normal((n, d)).astype(np.float32))
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, 60, faiss.ScalarQuantizer.QT_fp16,
                                        faiss.METRIC_INNER_PRODUCT, False)
    ivf.train(X[:2000])
    ivf.add(X[: n // 2])  # half the lists' rows, so that some queries are not in the index
    pool = PoolIndex(ivf, "ivf", n_probe)
    Q = X[n // 4 :]
    sims, lists = ivf.quantizer.search(Q, n_probe)
    lists[::7, -1] = -1  # a row probing fewer lists than asked
    return pool, faiss_ivf(pool), _GraphBlock(np.arange(len(Q)), Q, lists, sims, 10)


def test_list_scan_by_matrix_products_finds_what_faiss_finds():
    import faiss

    from labelseed import graph as graph_module
    from labelseed.graph import _ShardIndex, _decode_lists, _scan_lists

    pool, ivf, block = _full_space_block()
    want_D, want_I = ivf.search_preassigned(block.Q, 11, block.lists, block.list_sims)
    lists = _decode_lists(ivf)
    assert lists is not None and _ShardIndex(pool).decoded_lists() is not None
    omp = faiss.omp_get_max_threads()
    got = []
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        try:
            got.append(_scan_lists(lists, block))
        finally:
            faiss.omp_set_num_threads(omp)
        assert faiss.omp_get_max_threads() == omp  # the scan gives faiss its threads back
    D, I = got[0]
    np.testing.assert_array_equal(D, got[1][0])  # the same whatever the threads
    np.testing.assert_array_equal(I, got[1][1])
    found = want_I >= 0
    np.testing.assert_array_equal(I >= 0, found)
    np.testing.assert_allclose(D[found], want_D[found], atol=1e-5)
    same = [set(a[a >= 0]) == set(b[b >= 0]) for a, b in zip(I, want_I)]
    assert np.mean(same) > 0.99  # only near-ties in float rounding may swap
    # a shard too large for a float32 copy is scanned by faiss
    graph_module_limit = graph_module.BLAS_SCAN_MAX_BYTES
    try:
        graph_module.BLAS_SCAN_MAX_BYTES = 1000
        assert _decode_lists(ivf) is None
    finally:
        graph_module.BLAS_SCAN_MAX_BYTES = graph_module_limit


def test_graph_with_faiss_scan_and_matrix_product_scan_agree(monkeypatch):
    from labelseed import graph as graph_module

    rng = np.random.default_rng(5)
    centres = rng.standard_normal((12, 64))
    y = rng.integers(0, 12, 6000)
    X = (0.4 * centres[y] + 3 * rng.standard_normal((6000, 64)) / 8).astype(np.float32)
    blas = build_knn_graph(X, 10, method="ivf")
    monkeypatch.setattr(graph_module, "BLAS_SCAN_MAX_BYTES", 0)
    scanned = build_knn_graph(X, 10, method="ivf")
    assert blas.nprobe == scanned.nprobe
    same = (np.sort(blas.indices, axis=1) == np.sort(scanned.indices, axis=1)).all(axis=1)
    assert same.mean() > 0.99
    np.testing.assert_allclose(blas.similarities[same], scanned.similarities[same], atol=1e-5)
