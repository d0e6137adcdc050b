"""Projects use each label for what its origin supports, and audits certify thresholds."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from labelseed import UntrustedEstimateWarning
from labelseed.exceptions import InputError
from labelseed.project import Project

from conftest import run_cli
from test_project import write_data, write_labels


def _answers(tmp: Path, name: str, rows, truth) -> Path:
    path = tmp / name
    write_labels(path, [(f"t{r}", truth[int(r)]) for r in rows])
    return path


def _db_digest(folder: Path) -> str:
    with Project.open(folder) as p:
        rows = [p.store.db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("labels", "runs", "requests", "audits", "origins", "auto_labels")]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.fixture
def picked_project(tmp_path):
    """A project whose only labels were picked by `select` (so nothing may calibrate)."""
    truth = write_data(tmp_path / "pool.csv", n_per=80)
    p = Project.init(tmp_path / "proj", data=tmp_path / "pool.csv", text_column="text")
    p.embed("hashing")
    _, sel = p.select(45, strategy="kmeans")  # medoids: picked, not drawn
    p.import_labels(_answers(tmp_path, "a1.csv", sel.rows, truth))
    yield p, truth, tmp_path
    p.close()


def test_picked_labels_spread_but_do_not_calibrate(picked_project):
    p, truth, tmp = picked_project
    assert set(p.store.label_origins().values()) == {"picked"}
    with pytest.warns(UntrustedEstimateWarning):
        run = p.fit(target_precision=0.8)
    e = run["summary"]["estimate"]
    assert e["trusted"] is False and "audit" in e["assumes"]
    assert e["labels"]["picked"] == 45 and e["calibrated_by"] == {"random": 0, "validation": 0, "sampled": 0}
    st = p.status()
    assert st["label_origins"] == {"picked": 45}
    assert st["last_run"]["estimate"]["trusted"] is False


def test_random_labels_calibrate_and_picked_ones_do_not(picked_project):
    p, truth, tmp = picked_project
    labeled = set(p.labels())
    rng = np.random.default_rng(0)
    extra = [r for r in rng.permutation(len(truth)) if r not in labeled][:30]
    p.import_labels(_answers(tmp, "random.csv", extra, truth))
    run = p.fit(target_precision=0.8)
    e = run["summary"]["estimate"]
    assert e["trusted"] is True and e["calibrated_by"]["random"] == 30 and e["labels"]["picked"] == 45
    assert e["n_calibration"] == 30
    # --picked keeps a file's rows out of calibration
    more = [r for r in rng.permutation(len(truth)) if r not in labeled and r not in extra][:12]
    p.import_labels(_answers(tmp, "picked.csv", more, truth), origin="picked")
    run = p.fit(target_precision=0.8)
    assert run["summary"]["estimate"]["calibrated_by"]["random"] == 30
    assert run["summary"]["estimate"]["labels"]["picked"] == 57


def test_audit_certifies_the_run_and_audit_rows_never_calibrate(picked_project):
    p, truth, tmp = picked_project
    with pytest.warns(UntrustedEstimateWarning):
        p.fit(target_precision=0.8)
    p.apply()
    _, sel = p.audit(60)
    inc = p.store.db.execute("SELECT inclusion FROM audits").fetchall()
    assert len(inc) == 60 and all(0 < v <= 1 for (v,) in inc)
    p.import_labels(_answers(tmp, "audit.csv", sel.rows, truth))
    assert sum(v == "audit" for v in p.store.label_origins().values()) == 60
    # a plain fit: audit rows spread but do not calibrate (they are a sample of accepted rows only)
    with pytest.warns(UntrustedEstimateWarning):
        plain = p.fit(target_precision=0.8)
    assert plain["summary"]["estimate"]["calibrated_by"] == {"random": 0, "validation": 0, "sampled": 0}
    run = p.fit(target_precision=0.8, certify="audit")
    s = run["summary"]
    assert s["estimate"]["certified_by"] == "audit" and s["estimate"]["trusted"] is True
    assert s["estimate"]["audit_rows"] == 60
    d = p.decisions(run["run_id"])
    audited = set(sel.rows.tolist())
    assert not audited & set(d["accepted"].tolist())  # audited rows keep their human label
    assert audited <= set(d["seed_rows"].tolist())
    for c in s["classes"]:
        if c["meets_target"]:
            assert c["certified_by"] == "audit" and c["precision_low"] is not None
    out = p.apply(run_id=run["run_id"], out=tmp / "certified.csv")
    rows = list(csv.DictReader(open(out)))
    auto = [r for r in rows if r["source"] == "auto"]
    if auto:
        realized = np.mean([truth[int(r["id"][1:])] == r["label"] for r in auto])
        assert realized >= 0.8 - 0.1  # certified at 0.8 with an 80% one-sided bound
    st = p.status()
    assert st["audit"]["n_verified"] > 0
    assert st["last_run"]["estimate"]["certified_by"] == "audit"
    p.close()
    # `status` says the audit is the estimate's evidence, not which labels it "learned from"
    r = run_cli("status", str(p.folder))
    assert r.returncode == 0, r.stderr
    assert "the estimate rests on 60 audited rows" in r.stdout and "The estimate is certified by an audit" in r.stdout
    assert "learned from" not in r.stdout and "assumes certified" not in r.stdout
    # the report says the same, not the cross-validated run's assumption
    r = run_cli("report", "--project", str(p.folder), "--out", str(tmp / "report"))
    assert r.returncode == 0, r.stderr
    page = " ".join((tmp / "report" / "report.html").read_text().split())
    assert "The estimate is certified by an audit" in page and "fair sample" not in page


def test_certify_audit_without_audit_labels_is_an_input_error_and_changes_nothing(picked_project):
    p, truth, tmp = picked_project
    folder = p.folder
    before = _db_digest(folder)
    r = run_cli("fit", str(folder), "--certify", "audit", "--quiet")
    assert r.returncode == 2 and "needs verified audit labels" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert _db_digest(folder) == before


def test_certify_audit_from_a_run_that_no_longer_exists(picked_project):
    p, truth, tmp = picked_project
    with pytest.warns(UntrustedEstimateWarning):
        run = p.fit(target_precision=0.8)
    _, sel = p.audit(20)
    p.import_labels(_answers(tmp, "audit.csv", sel.rows, truth))
    shutil.rmtree(p.folder / "runs" / run["run_id"])
    before = _db_digest(p.folder)
    r = run_cli("fit", str(p.folder), "--certify", "audit", "--quiet")
    assert r.returncode == 2 and "no longer exist" in r.stderr and run["run_id"] in r.stderr
    assert _db_digest(p.folder) == before


@pytest.mark.parametrize("body,msg", [
    ("id,label\nt0,animal\nnope,food\n", "not items of this project"),
    ("id,label\nt1,animal\nt2,mineral\n", "no human label has"),
])
def test_bad_validation_files_change_nothing(picked_project, body, msg):
    p, truth, tmp = picked_project
    (tmp / "val.csv").write_text(body)
    before = _db_digest(p.folder)
    r = run_cli("import", str(p.folder), str(tmp / "val.csv"), "--validation")
    assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert _db_digest(p.folder) == before


def test_validation_sample_calibrates_and_certifies(picked_project):
    p, truth, tmp = picked_project
    labeled = set(p.labels())
    rng = np.random.default_rng(3)
    val = [r for r in rng.permutation(len(truth)) if r not in labeled][:60]
    r = run_cli("import", str(p.folder), str(_answers(tmp, "val.csv", val, truth)), "--validation")
    assert r.returncode == 0, r.stderr
    assert sum(v == "validation" for v in p.store.label_origins().values()) == 60
    r = run_cli("fit", str(p.folder), "--target-precision", "0.8", "--certify", "audit", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "certified by an audit" in r.stdout
    st = json.loads(run_cli("status", str(p.folder), "--json").stdout)
    assert st["last_run"]["estimate"]["certified_by"] == "audit"
    assert st["last_run"]["estimate"]["audit_rows"] == 60


def test_status_still_shows_an_audit_drawn_before_audits_were_recorded(picked_project):
    p, truth, tmp = picked_project
    with pytest.warns(UntrustedEstimateWarning):
        run = p.fit(target_precision=0.8)
    _, sel = p.audit(20)
    with p.store.transaction() as db:  # a project whose audit an older labelseed drew
        db.execute("DELETE FROM audits")
    p.import_labels(_answers(tmp, "audit.csv", sel.rows, truth))
    st = p.status()
    assert st["audit"]["run_id"] == run["run_id"] and st["audit"]["n_verified"] == 20
    d = p.decisions(run["run_id"])
    given = dict(zip(d["accepted"].tolist(), d["classes"][d["accepted_label"]].tolist()))
    per = st["audit"]["per_class"]
    for c in per:  # each class's verified rows and right answers, counted from the run's own labels
        mine = [r for r in sel.rows.tolist() if given[r] == c]
        assert per[c]["verified"] == len(mine) and per[c]["right"] == sum(truth[r] == c for r in mine)
    assert sum(v["verified"] for v in per.values()) == 20


def test_label_history_export_has_every_label_ever_given(picked_project):
    p, truth, tmp = picked_project
    first = sorted(p.labels())[0]
    write_labels(tmp / "fix.csv", [(f"t{first}", "tool" if truth[first] != "tool" else "food")])
    p.import_labels(tmp / "fix.csv", replace=True)  # the old label stays in the history
    n = p.store.db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
    r = run_cli("export", str(p.folder), "--labels-history", "--out", str(tmp / "history.csv"))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp / "history.csv")))
    assert len(rows) == n == 46
    mine = [row for row in rows if row["id"] == f"t{first}"]
    assert [row["label"] for row in mine] == [truth[first], "tool" if truth[first] != "tool" else "food"]
    assert {row["origin"] for row in rows} == {"picked"} and all(row["who"] and row["at"] for row in rows)
    r = run_cli("export", str(p.folder), "--labels-history", "--out", str(tmp / "history.xml"))
    assert r.returncode == 2 and ".csv or .parquet" in r.stderr


def test_drawn_labels_calibrate_with_their_design_weights(tmp_path):
    """select --strategy stratified and query --strategy sampled draw at random with known
    probabilities: their labels calibrate, weighted; other picks still do not."""
    truth = write_data(tmp_path / "pool.csv", n_per=80)
    p = Project.init(tmp_path / "proj", data=tmp_path / "pool.csv", text_column="text")
    p.embed("hashing")
    _, sel = p.select(30, strategy="stratified")
    p.import_labels(_answers(tmp_path, "a1.csv", sel.rows, truth))
    assert set(p.store.label_origins().values()) == {"sampled"}
    run = p.fit(target_precision=0.8)
    e = run["summary"]["estimate"]
    assert e["trusted"] is True and e["calibrated_by"] == {"random": 0, "validation": 0, "sampled": 30}
    _, q = p.query(20, strategy="sampled")
    p.import_labels(_answers(tmp_path, "a2.csv", q.rows, truth))
    _, picked = p.query(10, strategy="abstained")  # picks: they spread, never calibrate
    p.import_labels(_answers(tmp_path, "a3.csv", picked.rows, truth))
    draws = p.store.draw_inclusion()
    assert set(draws) == set(sel.rows.tolist()) | set(q.rows.tolist())
    assert all(0 < inc <= 1 for _, inc in draws.values())
    rows, _ = p.vectors()
    w = p._label_design(rows, p._labels_for(rows), p._origins_for(rows)).design_weight
    drawn = np.isin(rows, list(draws))
    assert np.allclose(w[~drawn], 1.0) and not np.allclose(w[drawn], 1.0)  # unequal draws: unequal weights
    for batch in {b for b, _ in draws.values()}:  # each draw averages 1
        mine = np.isin(rows, [r for r, (b, _) in draws.items() if b == batch])
        assert abs(w[mine].mean() - 1) < 1e-9
    run = p.fit(target_precision=0.8)
    e = run["summary"]["estimate"]
    assert e["calibrated_by"]["sampled"] == 50 and e["labels"]["picked"] == 10
    assert p.status()["label_origins"] == {"sampled": 50, "picked": 10}
    # the labels backup keeps each draw: restored into a new project, the same labels calibrate
    # with the same weights (the backup is what a damaged database's message points at)
    backup = p.folder / "backups" / "labels.csv"
    q2 = Project.init(tmp_path / "restored", data=tmp_path / "pool.csv", text_column="text")
    q2.embed("hashing")
    q2.import_labels(backup)
    assert q2.store.label_origins() == p.store.label_origins()
    rows2, _ = q2.vectors()
    w2 = q2._label_design(rows2, q2._labels_for(rows2), q2._origins_for(rows2)).design_weight
    assert np.array_equal(rows2, rows) and np.allclose(w2, w)
    assert q2.fit(target_precision=0.8)["summary"]["expected_precision"] == pytest.approx(
        run["summary"]["expected_precision"])
    with pytest.raises(InputError, match="origin column"):
        q2.import_labels(backup, origin="picked")
    q2.close()
    p.close()
