from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from labelseed.exceptions import InputError
from labelseed.select import STRATEGIES, kcenter_greedy, select

from conftest import blobs


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


EXE = Path(sys.executable).parent / "labelseed"


def _run(*args):
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=300)


def test_select_cli(tmp_path):
    X, _ = blobs(n_per=50, n_classes=3, dim=8, seed=4)
    np.save(tmp_path / "X.npy", X)
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
    X, _ = blobs(n_per=20, n_classes=3, dim=8, seed=4)
    np.save(tmp_path / "X.npy", X)
    r = _run("select", "--embeddings", str(tmp_path / "X.npy"), "--out", str(tmp_path / "o.csv"), *extra)
    assert r.returncode == 2 and msg in r.stderr
    assert not (tmp_path / "o.csv").exists()


def test_select_cli_unknown_label_ids(tmp_path):
    X, _ = blobs(n_per=20, n_classes=3, dim=8, seed=4)
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "seed.csv").write_text("id,label\n999,a\n")
    r = _run("select", "--embeddings", str(tmp_path / "X.npy"), "--budget", "3", "--labels", str(tmp_path / "seed.csv"),
             "--out", str(tmp_path / "o.csv"))
    assert r.returncode == 2 and "not in the pool" in r.stderr
