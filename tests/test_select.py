from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from labelseed.exceptions import InputError
from labelseed.select import STRATEGIES, kcenter_greedy, select

from conftest import blobs, run_cli


@settings(deadline=None, max_examples=20)
@given(strategy=st.sampled_from(STRATEGIES), budget=st.integers(1, 40), n_labeled=st.integers(0, 30),
       seed=st.integers(0, 1000))
def test_no_duplicates_and_never_a_labeled_row(strategy, budget, n_labeled, seed):
    X, _ = blobs(n_per=30, n_classes=4, dim=8, spread=0.8, seed=seed % 5)
    labeled = np.random.default_rng(seed).choice(len(X), n_labeled, replace=False)
    sel = select(X, budget, strategy, labeled=labeled, random_state=seed)
    assert len(sel.rows) == budget == len(sel.reasons)
    assert len(np.unique(sel.rows)) == budget
    assert not np.intersect1d(sel.rows, labeled).size


def test_kcenter_radius_never_grows_with_the_budget():
    X, _ = blobs(n_per=100, n_classes=5, dim=16, spread=1.0, seed=3)
    sel = kcenter_greedy(X, 60)
    assert np.all(np.diff(sel.extra["radius"]) <= 1e-6)
    # and a larger budget is the same traversal, extended
    np.testing.assert_array_equal(kcenter_greedy(X, 30).rows, sel.rows[:30])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_deterministic_for_a_seed(strategy):
    X, _ = blobs(n_per=60, n_classes=4, dim=8, seed=1)
    a = select(X, 12, strategy, random_state=7).rows
    b = select(X, 12, strategy, random_state=7).rows
    np.testing.assert_array_equal(a, b)


def test_covers_the_clusters():
    X, y = blobs(n_per=80, n_classes=6, dim=16, spread=0.3, seed=2)
    for strategy in STRATEGIES:
        assert len(np.unique(y[select(X, 6, strategy).rows])) == 6, strategy


@pytest.mark.parametrize("budget, msg", [(0, "`budget`"), (10_000, "only"), (-3, "`budget`")])
def test_bad_budget(budget, msg):
    X, _ = blobs()
    with pytest.raises(InputError, match=msg):
        select(X, budget)


def test_unknown_strategy():
    X, _ = blobs()
    with pytest.raises(InputError, match="`strategy`"):
        select(X, 3, "magic")


_run = run_cli


def _pool(tmp_path: Path, n_per: int) -> Path:
    """A small pool of embeddings saved as X.npy; returns its path."""
    X, _ = blobs(n_per=n_per, n_classes=3, dim=8, seed=4)
    np.save(tmp_path / "X.npy", X)
    return tmp_path / "X.npy"


def test_select_cli(tmp_path):
    _pool(tmp_path, 50)
    (tmp_path / "seed.csv").write_text("id,label\n0,a\n1,a\n")
    r = _run("select", "--embeddings", str(tmp_path / "X.npy"), "--budget", "9", "--labels", str(tmp_path / "seed.csv"),
             "--out", str(tmp_path / "to_label.csv"))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / "to_label.csv")))
    assert [int(r["rank"]) for r in rows] == list(range(1, 10))
    assert not {"0", "1"} & {r["id"] for r in rows}
    tasks = json.loads((tmp_path / "to_label.labelstudio.json").read_text())
    assert [str(t["data"]["item_id"]) for t in tasks] == [r["id"] for r in rows]
    again = _run("select", "--embeddings", str(tmp_path / "X.npy"), "--budget", "9", "--out", str(tmp_path / "to_label.csv"))
    assert again.returncode == 2 and "--force" in again.stderr


@pytest.mark.parametrize("extra, msg", [(["--budget", "0"], "at least 1"), (["--budget", "1000"], "only"),
                                        (["--budget", "3", "--strategy", "nope"], "strategy")])
def test_select_cli_bad_input(tmp_path, extra, msg):
    _pool(tmp_path, 20)
    r = _run("select", "--embeddings", str(tmp_path / "X.npy"), "--out", str(tmp_path / "o.csv"), *extra)
    assert r.returncode == 2 and msg in r.stderr
    assert not (tmp_path / "o.csv").exists()


def test_select_cli_unknown_label_ids(tmp_path):
    _pool(tmp_path, 20)
    (tmp_path / "seed.csv").write_text("id,label\n999,a\n")
    r = _run("select", "--embeddings", str(tmp_path / "X.npy"), "--budget", "3", "--labels", str(tmp_path / "seed.csv"),
             "--out", str(tmp_path / "o.csv"))
    assert r.returncode == 2 and "not in the pool" in r.stderr


# ------------------------------------------------------------- warm queries, audit

from labelseed import AutoLabeler  # noqa: E402
from labelseed.select import QUERY_STRATEGIES, audit_estimate, audit_sample, margin_uncertainty, query  # noqa: E402

from conftest import seed_labels  # noqa: E402


def _fitted():
    X, y = blobs(n_per=60, n_classes=3, dim=8, spread=1.5, seed=5)
    codes = seed_labels(y, 8)
    m = AutoLabeler(target_precision=0.9).fit(X, codes)
    return X, y, codes, m


@pytest.mark.parametrize("strategy", QUERY_STRATEGIES)
def test_query_returns_distinct_unlabeled_rows(strategy):
    X, y, codes, m = _fitted()
    other = np.roll(m.label_distributions_.argmax(1), 1)
    accepted = np.zeros(len(X), dtype=bool)
    accepted[m.result_.accepted] = True
    sel = query(X, m.label_distributions_, codes, 12, strategy, accepted=accepted, unsupported=np.array([0]),
                other_predicted=other)
    assert len(np.unique(sel.rows)) == 12
    assert (codes[sel.rows] == -1).all()


def test_uncertainty_query_prefers_uncertain_rows_but_spreads_out():
    X, y, codes, m = _fitted()
    unc = margin_uncertainty(m.label_distributions_)
    sel = query(X, m.label_distributions_, codes, 10, "uncertainty")
    free = codes < 0
    assert unc[sel.rows].mean() > unc[free].mean()
    # not near-duplicates: no two picks closer than the typical nearest-neighbour distance
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = Xn[sel.rows] @ Xn[sel.rows].T
    np.fill_diagonal(S, -1)
    assert S.max() < 0.9999


def test_abstained_query_picks_central_rows_of_abstained_regions():
    X, y = blobs(n_per=60, n_classes=4, dim=8, spread=0.5, seed=2)
    codes = seed_labels(y, 3)
    accepted = (y < 2) & (codes < 0)  # blobs 0 and 1 auto-labeled; 2 and 3 not
    D = np.zeros((len(X), 4))
    a = query(X, D, codes, 4, "abstained", accepted=accepted, random_state=3)
    assert not accepted[a.rows].any() and (codes[a.rows] == -1).all()
    assert set(y[a.rows].tolist()) == {2, 3}  # both abstained blobs get picks
    b = query(X, D, codes, 4, "abstained", accepted=accepted, random_state=3)
    np.testing.assert_array_equal(a.rows, b.rows)
    with pytest.raises(InputError, match="`accepted`"):
        query(X, D, codes, 4, "abstained")


def test_unreached_rows_come_first():
    X, y = blobs(n_per=30, n_classes=3, dim=8, spread=0.2, seed=1)
    codes = seed_labels(y, 3)
    codes[y == 2] = -1
    D = np.zeros((len(X), 3))
    D[y != 2, 0] = 1.0  # class-2 blob unreachable
    sel = query(X, D, codes, 5, "unreached")
    assert (y[sel.rows] == 2).all()


def test_audit_sample_is_stratified_and_only_accepted():
    X, y, codes, m = _fitted()
    r = m.result_
    sel = audit_sample(r.labels, r.accepted, 9, random_state=0)
    assert set(sel.rows.tolist()) <= set(r.accepted.tolist())
    assert len(np.unique(sel.rows)) == 9
    got = {str(v) for v in r.labels[sel.rows]}
    assert got == {str(v) for v in r.labels[r.accepted]}  # every class with auto-labels is audited


def test_audit_of_everything_is_the_truth():
    X, y, codes, m = _fitted()
    r = m.result_
    sel = audit_sample(r.labels, r.accepted, len(r.accepted), random_state=0)  # audit everything
    est = audit_estimate(r.labels[sel.rows], y[sel.rows].astype(object), {
        str(c): int((r.labels[r.accepted].astype(str) == str(c)).sum()) for c in np.unique(r.labels[r.accepted])})
    truth = (r.labels[r.accepted].astype(int) == y[r.accepted]).mean()
    assert est.precision == pytest.approx(truth)


def test_audit_interval_covers_the_truth_at_its_level():
    # a pool of known auto-labels, 85% right; 40 audited of 2,000, drawn 200 times
    rng = np.random.default_rng(0)
    n = 2000
    labels = rng.choice(np.array(["a", "b"], dtype=object), n, p=[0.7, 0.3])
    right = rng.random(n) < np.where(labels == "a", 0.9, 0.75)
    truth_labels = np.where(right, labels, "other").astype(object)
    counts = {c: int((labels == c).sum()) for c in ("a", "b")}
    truth = right.mean()
    covered, widths = 0, []
    for s in range(200):
        sel = audit_sample(labels, np.arange(n), 40, random_state=s)
        est = audit_estimate(labels[sel.rows], truth_labels[sel.rows], counts)
        covered += est.low <= truth <= est.high
        widths.append(est.high - est.low)
        for c, (nv, k, p, lo, hi) in est.per_class.items():  # exact per-class intervals
            assert lo <= p <= hi and hi - lo > 0
    assert covered / 200 >= 0.9  # a 95% interval; 0.9 leaves room for 200 draws' noise
    assert min(widths) > 0.05  # 40 rows never pin precision down


def test_audit_budget_larger_than_accepted_is_an_error():
    X, y, codes, m = _fitted()
    with pytest.raises(InputError, match="only"):
        audit_sample(m.result_.labels, m.result_.accepted, len(m.result_.accepted) + 1)


def test_query_and_audit_cli(tmp_path):
    X, y = blobs(n_per=50, n_classes=3, dim=8, spread=1.0, seed=4)
    np.save(tmp_path / "X.npy", X)
    codes = seed_labels(y, 6)
    lines = ["id,label"] + [f"{i},c{y[i]}" for i in np.flatnonzero(codes >= 0)]
    (tmp_path / "seed.csv").write_text("\n".join(lines) + "\n")
    env_cache = ["--cache-dir", str(tmp_path / "cache")]
    r = _run("query", "--embeddings", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "seed.csv"), "--budget", "7",
             "--target-precision", "0.9", "--out", str(tmp_path / "next.csv"), *env_cache)
    assert r.returncode == 0, r.stderr
    picked = [int(row["id"]) for row in csv.DictReader(open(tmp_path / "next.csv"))]
    assert len(set(picked)) == 7 and not (codes[picked] >= 0).any()
    r = _run("autolabel", "--embeddings", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "seed.csv"),
             "--target-precision", "0.9", "--out", str(tmp_path / "run"), "--quiet", *env_cache)
    assert r.returncode == 0, r.stderr
    r = _run("audit", "--run", str(tmp_path / "run"), "--budget", "12", "--out", str(tmp_path / "audit.csv"))
    assert r.returncode == 0, r.stderr
    audit = list(csv.DictReader(open(tmp_path / "audit.csv")))
    auto = {row["id"]: row["label"] for row in csv.DictReader(open(tmp_path / "run" / "auto_labels.csv"))
            if row["source"] == "auto"}
    assert {row["id"] for row in audit} <= set(auto)
    (tmp_path / "verified.csv").write_text(
        "id,label\n" + "".join(f"{row['id']},c{y[int(row['id'])]}\n" for row in audit))
    r = _run("audit", "--run", str(tmp_path / "run"), "--verified", str(tmp_path / "verified.csv"))
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "run" / "audit.json").read_text())
    truth = np.mean([auto[row["id"]] == f"c{y[int(row['id'])]}" for row in audit])
    assert result["n_verified"] == 12
    # the verified rows here are all the evidence: the estimate is their stratified share right
    assert result["realized_precision"] == pytest.approx(truth, abs=0.15)
    lo, hi = result["interval_95"]
    assert lo <= result["realized_precision"] <= hi and hi - lo > 0
    for c, row in result["per_class"].items():
        ok = [auto[r["id"]] == f"c{y[int(r['id'])]}" for r in audit if auto[r["id"]] == c]
        assert row["verified"] == len(ok) and row["right"] == sum(ok)
    again = _run("audit", "--run", str(tmp_path / "run"), "--verified", str(tmp_path / "verified.csv"))
    assert again.returncode == 2 and "--force" in again.stderr


def test_facility_location_lazy_greedy_matches_plain_greedy():
    from labelseed.graph import build_knn_graph
    from labelseed.select import facility_location

    X, _ = blobs(n_per=25, n_classes=3, dim=6, spread=1.0, seed=4)
    g = build_knn_graph(X, 6)
    W = g.affinity().toarray()
    np.fill_diagonal(W, 1.0)
    sel = facility_location(X, 8, graph=g)
    cover, plain = np.zeros(len(X)), []
    for _ in range(8):  # the textbook greedy on the dense matrix
        gains = np.maximum(W - cover[:, None], 0).sum(axis=0)
        gains[plain] = -1
        j = int(np.argmax(gains))
        plain.append(j)
        cover = np.maximum(cover, W[:, j])
    np.testing.assert_allclose(np.sort(sel.extra["gain"])[::-1], sel.extra["gain"])  # submodular: gains shrink
    objective = lambda rows: W[:, rows].max(axis=1).sum()  # noqa: E731
    assert objective(sel.rows) == pytest.approx(objective(plain), rel=1e-5)


def test_select_cli_empty_pool(tmp_path):
    _pool(tmp_path, 2)  # 6 rows, all labeled below: nothing left to pick
    (tmp_path / "seed.csv").write_text("id,label\n" + "".join(f"{i},a\n" for i in range(6)))
    r = _run("select", "--embeddings", str(tmp_path / "X.npy"), "--budget", "1", "--labels", str(tmp_path / "seed.csv"),
             "--out", str(tmp_path / "o.csv"))
    assert r.returncode == 2 and "0 unlabeled" in r.stderr
    np.save(tmp_path / "empty.npy", np.zeros((0, 8), dtype=np.float32))
    r = _run("select", "--embeddings", str(tmp_path / "empty.npy"), "--budget", "1", "--out", str(tmp_path / "o.csv"))
    assert r.returncode == 2 and "empty.npy" not in r.stdout and r.stderr.strip()
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_select_cli_is_deterministic_for_a_seed(tmp_path, strategy):
    _pool(tmp_path, 40)
    outs = []
    for name in ("a.csv", "b.csv"):
        r = _run("select", "--embeddings", str(tmp_path / "X.npy"), "--budget", "8", "--strategy", strategy,
                 "--seed", "3", "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        outs.append((tmp_path / name).read_text())
    assert outs[0] == outs[1]


def test_query_cli_unknown_label_ids(tmp_path):
    _pool(tmp_path, 20)
    (tmp_path / "seed.csv").write_text("id,label\n0,a\n1,b\n999,a\n")
    r = _run("query", "--embeddings", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "seed.csv"), "--budget", "3",
             "--out", str(tmp_path / "o.csv"))
    assert r.returncode == 2 and "not in the pool" in r.stderr


def _horvitz_thompson_totals(draw, free, accepted, n_draws=150):
    """Mean over draws of sum(1 / inclusion) over all picks and over the accepted picks: a draw
    whose stated probabilities are right estimates the free rows and the accepted free rows."""
    total, acc = [], []
    for s in range(n_draws):
        sel = draw(s)
        assert (np.isin(sel.rows, free)).all() and len(np.unique(sel.rows)) == len(sel.rows)
        inv = 1.0 / sel.extra["inclusion"]
        total.append(inv.sum())
        acc.append(inv[accepted[sel.rows]].sum())
    return float(np.mean(total)), float(np.mean(acc))


def test_sampled_query_states_its_inclusion_probabilities():
    X, y = blobs(n_per=60, n_classes=4, dim=6, spread=1.2, seed=2)
    codes = np.full(len(X), -1)
    codes[np.random.default_rng(0).choice(len(X), 20, replace=False)] = 0
    free = np.flatnonzero(codes < 0)
    accepted = np.zeros(len(X), dtype=bool)
    accepted[free[free % 3 != 0]] = True  # two thirds of the free rows were auto-labeled
    dist = np.zeros((len(X), 4), dtype=np.float32)

    total, acc = _horvitz_thompson_totals(
        lambda s: query(X, dist, codes, 15, "sampled", accepted=accepted, random_state=s), free, accepted)
    assert abs(total / len(free) - 1) < 0.05
    assert abs(acc / accepted[free].sum() - 1) < 0.08
    # abstained rows are drawn SAMPLED_OVERSAMPLE times as often as accepted ones
    from labelseed.select import SAMPLED_OVERSAMPLE as o

    a = (~accepted[free]).mean()
    drawn = np.mean([(~accepted[query(X, dist, codes, 15, "sampled", accepted=accepted, random_state=s).rows]).mean()
                     for s in range(40)])
    assert o > 1 and abs(drawn - o * a / (o * a + 1 - a)) < 0.04, (drawn, a)


def test_stratified_select_states_its_inclusion_probabilities():
    X, _ = blobs(n_per=50, n_classes=4, dim=6, spread=1.0, seed=1)
    labeled = np.arange(0, len(X), 10)
    free = np.setdiff1d(np.arange(len(X)), labeled)
    half = np.zeros(len(X), dtype=bool)
    half[free[: len(free) // 2]] = True
    total, part = _horvitz_thompson_totals(
        lambda s: select(X, 12, "stratified", labeled=labeled, random_state=s), free, half)
    assert abs(total / len(free) - 1) < 0.02  # one pick from every stratum: exact in every draw
    assert abs(part / half.sum() - 1) < 0.1
