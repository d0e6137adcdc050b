"""`labelseed simulate`: the loop played on labeled data, against random labels, through the real CLI."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import run_cli
from labelseed import datasets
from labelseed.simulate import simulate


@pytest.fixture(scope="module")
def digits():
    return datasets.digits()


def test_budgets_and_origins_add_up_and_precision_is_measured_against_the_truth(digits):
    X, y = digits
    r = simulate(X, y, 90, 3, audit=5, random_state=1)
    loop = [x for x in r.records if x.scheme == "loop"]
    rand = [x for x in r.records if x.scheme == "random"]
    audited = [x for x in r.records if x.scheme == "loop+audit"]
    assert [x.round for x in loop] == [1, 2, 3] and len(rand) == 3
    assert audited and audited[-1].round == 3
    # all 90 labels were spent (a round that could not audit gave its audit labels to the next round's
    # loop), each one counted once, and the random scheme got as many
    last = r.records[-1]
    assert last.scheme == "random" and last.n_labels == 90
    fin = [x for x in r.records if x.round == 3 and x.scheme != "random"][-1]
    assert fin.n_random + fin.n_picked + fin.n_audit == fin.n_labels == 90
    assert all(x.certified_by == "audit" for x in audited)
    # the realized precision is the truth's verdict on the accepted rows: recompute it for the random scheme
    from labelseed import AutoLabeler

    codes = np.unique(y.astype(str), return_inverse=True)[1]
    order = np.random.default_rng(1).permutation(len(y))
    labels = np.full(len(y), -1)
    labels[order[:90]] = codes[order[:90]]
    m = AutoLabeler(random_state=1).fit(X, labels)
    acc = m.result_.accepted
    assert last.coverage == pytest.approx(len(acc) / (len(y) - 90))
    assert last.realized_precision == pytest.approx(float((m.result_.labels[acc] == codes[acc]).mean()))


def test_picks_without_random_labels_mark_the_loop_untrusted(digits):
    X, y = digits
    r = simulate(X, y, 60, 2, random_share=0.0, select_strategy="kmeans", query_strategy="abstained",
                 compare_random=False)
    assert [x.scheme for x in r.records] == ["loop", "loop"]
    assert not any(x.trusted for x in r.records if x.coverage > 0)
    assert all(x.n_random == 0 for x in r.records)


def test_the_default_loop_draws_labels_that_calibrate(digits):
    """Stratified select and sampled queries draw with known probabilities: with no uniformly
    random label at all the estimate is trusted, and it certifies more than the same loop of
    picks with half its labels random (digits, 5 labels per class, 2 draws)."""
    X, y = digits
    drawn = [simulate(X, y, 50, 3, compare_random=False, random_state=s).records[-1] for s in range(2)]
    picked = [simulate(X, y, 50, 3, random_share=0.5, select_strategy="kmeans", query_strategy="abstained",
                       compare_random=False, random_state=s).records[-1] for s in range(2)]
    assert all(x.n_random == 0 and x.n_picked == 50 and x.trusted for x in drawn)
    assert all(x.realized_precision >= 0.94 for x in drawn if x.coverage > 0)
    assert np.mean([x.coverage for x in drawn]) > np.mean([x.coverage for x in picked]) + 0.1


def test_cli_writes_table_json_and_plot(digits, tmp_path):
    X, y = digits
    np.save(tmp_path / "X.npy", X)
    with open(tmp_path / "truth.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows(enumerate(y.tolist()))
    out = tmp_path / "sim"
    p = run_cli("simulate", "--embeddings", str(tmp_path / "X.npy"), "--truth", str(tmp_path / "truth.csv"),
                "--budget", "60", "--rounds", "2", "--out", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(open(out / "label_efficiency.csv")))
    assert [(r["scheme"], r["round"]) for r in rows] == [("loop", "1"), ("random", "1"), ("loop", "2"), ("random", "2")]
    meta = json.loads((out / "label_efficiency.json").read_text())
    assert meta["params"]["budget"] == 60 and len(meta["rounds"]) == 4
    assert (out / "label_efficiency.png").read_bytes()[:4] == b"\x89PNG"
    # a second run refuses to replace it without --force, and replaces it with --force
    again = ("simulate", "--embeddings", str(tmp_path / "X.npy"), "--truth", str(tmp_path / "truth.csv"),
             "--budget", "60", "--rounds", "2", "--out", str(out), "--quiet")
    assert run_cli(*again).returncode == 2
    assert run_cli(*again, "--force").returncode == 0


def test_realized_precision_and_audits_use_the_truth_whatever_the_label_names():
    """Class names whose string order is not their code order (26 classes: "10" sorts before "2")
    and names that are not numbers at all: the realized precision and the audit must still compare
    a row's auto-label with its own true class."""
    from conftest import blobs

    X, y = blobs(n_per=150, n_classes=12, dim=16, spread=0.2)
    for names in (np.array([str(v) for v in range(12)]), np.array([f"class-{chr(100 - v)}" for v in range(12)])):
        truth = names[y]
        # 32 audited rows per class can certify a class whose audited labels are all right (0.2^(1/32) > 0.95)
        r = simulate(X, truth, 2 * (48 + 12 * 32), 2, audit=12 * 32, compare_random=True, random_state=0)
        rand = [x for x in r.records if x.scheme == "random"][-1]
        assert rand.coverage > 0.5 and rand.realized_precision > 0.95  # well separated blobs: nearly all right
        audited = [x for x in r.records if x.scheme == "loop+audit"]
        assert audited and max(x.coverage for x in audited) > 0, "an audit of right labels certifies something"
