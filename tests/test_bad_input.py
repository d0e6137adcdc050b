"""Bad input through the real CLI: one line naming the problem and the fix, exit code 2, and the
user's files and the project's store exactly as they were (the issue-12 cases fixed so far)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "cache" not in p.parts}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Vectors, labels and a small embedded project with one labeled row, made once."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    np.save(d / "X.npy", (y[:, None] * 3 + rng.normal(size=(90, 8))).astype(np.float32))
    np.save(d / "X1.npy", (y[:, None] * 3 + rng.normal(size=(90, 1))).astype(np.float32))
    (d / "seed.csv").write_text("id,label\n" + "".join(f"{i},c{y[i]}\n" for i in range(0, 90, 5)))
    (d / "truth.csv").write_text("id,label\n" + "".join(f"{i},c{y[i]}\n" for i in range(90)))
    (d / "truth_unknown.csv").write_text("id,label\n" + "".join(f"{i},c{y[i]}\n" for i in range(90)) + "777,c1\n")
    (d / "latin.csv").write_bytes(("id,label\n" + "".join(f"{i},caf\xe9{y[i]}\n" for i in range(0, 90, 5)))
                                  .encode("latin-1"))
    (d / "adir").mkdir()
    (d / "afile").write_text("a user's file\n")
    (d / "pool.csv").write_text("id,text\n" + "".join(f"t{i},word{i % 3} thing {i}\n" for i in range(40)))
    assert run_cli("init", str(d / "proj"), "--data", str(d / "pool.csv"), "--text-column", "text").returncode == 0
    assert run_cli("embed", str(d / "proj"), "--model", "hashing", "--quiet").returncode == 0
    (d / "t0.csv").write_text("id,label\nt0,a\nt1,b\nt2,a\nt3,b\n")
    assert run_cli("import", str(d / "proj"), str(d / "t0.csv")).returncode == 0
    ls = {
        "ls_types.json": [{"data": {"item_id": 5}, "annotations": "x"}],
        "ls_string_choice.json": [{"data": {"item_id": "t5"}, "annotations": [{"result": [{"value": {"choices": "dog"}}]}]}],
        "ls_disagree.json": [{"data": {"item_id": "t6"}, "annotations": [
            {"result": [{"value": {"choices": ["a"]}}]}, {"result": [{"value": {"choices": ["b"]}}]}]}],
        "ls_item.json": [{"data": {"item_id": {"x": 1}}}],
        "ls_spans.json": [{"data": {"item_id": "t7"}, "annotations": [
            {"result": [{"type": "labels", "value": {"start": 0, "end": 4, "labels": ["a"]}}]}]}],
    }
    for name, body in ls.items():
        (d / name).write_text(json.dumps(body))
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    assert run_cli("autolabel", "--embeddings", str(d / "X.npy"), "--labels", str(d / "seed.csv"), "--out",
                   str(d / "run"), "--quiet", "--target-precision", "0.8", "--cache-dir", str(d / "cache")).returncode == 0
    return d


def _damage(path: Path, how: str) -> None:
    if how == "delete":
        path.unlink()
        return
    if how == "other-dim":
        n = np.load(path, mmap_mode="r").shape[0]
        np.save(path, np.ones((n, 7), dtype=np.float32))
        return
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncate" else b"" if how == "empty" else b"garbage" * 700)


# (case, args with {d} for the folder, a phrase the message must contain, damage to make first)
CASES = [
    ("latin-1 labels, autolabel", ("autolabel", "--embeddings", "{d}/X.npy", "--labels", "{d}/latin.csv", "--out",
                                   "{d}/o"), "not UTF-8", None),
    ("latin-1 labels, query", ("query", "--embeddings", "{d}/X.npy", "--labels", "{d}/latin.csv", "--budget", "3",
                               "--out", "{d}/q.csv"), "not UTF-8", None),
    ("latin-1 labels, import", ("import", "{d}/proj", "{d}/latin.csv"), "not UTF-8", None),
    ("labels is a folder", ("autolabel", "--embeddings", "{d}/X.npy", "--labels", "{d}/adir", "--out", "{d}/o"),
     "is a folder", None),
    ("negative seed", ("autolabel", "--embeddings", "{d}/X.npy", "--labels", "{d}/seed.csv", "--out", "{d}/o",
                       "--seed", "-1"), "--random-seed must be", None),
    ("out under a file, autolabel", ("autolabel", "--embeddings", "{d}/X.npy", "--labels", "{d}/seed.csv", "--out",
                                     "{d}/afile/o"), "is a file, not a folder", None),
    ("out under a file, select", ("select", "--embeddings", "{d}/X.npy", "--budget", "3", "--out",
                                  "{d}/afile/s.csv"), "is a file, not a folder", None),
    ("out under a file, apply", ("apply", "{d}/proj", "--out", "{d}/afile/l.csv"), "is a file, not a folder", None),
    ("out under a file, report", ("report", "--run", "{d}/run", "--out", "{d}/afile/r"), "is a file, not a folder",
     None),
    ("embed model typo", ("embed", "{d}/proj", "--model", "hashng"), "not a text model", None),
    ("Label Studio fields of the wrong type", ("import", "{d}/proj", "{d}/ls_types.json"), "is not a list", None),
    ("Label Studio choices as a string", ("import", "{d}/proj", "{d}/ls_string_choice.json"),
     "must be a list of labels", None),
    ("Label Studio annotations that disagree", ("import", "{d}/proj", "{d}/ls_disagree.json"), "disagree", None),
    ("Label Studio item id of the wrong type", ("import", "{d}/proj", "{d}/ls_item.json"), "item_id must be", None),
    ("Label Studio nested 100k deep", ("import", "{d}/proj", "{d}/deep.json"), "nested too deeply", None),
    ("Label Studio span labels, no choices", ("import", "{d}/proj", "{d}/ls_spans.json"), "no classification choice",
     None),
    ("garbage database", ("status", "{d}/proj"), "is damaged", ("proj/labelseed.db", "garbage")),
    ("empty database", ("status", "{d}/proj"), "holds no project", ("proj/labelseed.db", "empty")),
    ("truncated embeddings", ("select", "{d}/proj", "--budget", "2"), "embed", ("proj/embeddings.npy", "truncate")),
    ("truncated report data", ("report", "--run", "{d}/run"), "is damaged", ("run/report_data.npz", "truncate")),
    ("embeddings of another dimension", ("select", "{d}/proj", "--budget", "2"), "does not belong",
     ("proj/embeddings.npy", "other-dim")),
    ("deleted embeddings", ("select", "{d}/proj", "--budget", "2"), "embed", ("proj/embeddings.npy", "delete")),
    ("simulate: truth with unknown ids", ("simulate", "--embeddings", "{d}/X.npy", "--truth", "{d}/truth_unknown.csv",
                                          "--budget", "30", "--out", "{d}/sim"), "not in the pool", None),
    ("simulate: truth missing rows", ("simulate", "--embeddings", "{d}/X.npy", "--truth", "{d}/seed.csv",
                                      "--budget", "30", "--out", "{d}/sim"), "true label of every row", None),
    ("simulate: budget below the classes", ("simulate", "--embeddings", "{d}/X.npy", "--truth", "{d}/truth.csv",
                                            "--budget", "2", "--out", "{d}/sim"), "number of classes (3)", None),
    ("simulate: rounds < 1", ("simulate", "--embeddings", "{d}/X.npy", "--truth", "{d}/truth.csv", "--budget", "30",
                              "--rounds", "0", "--out", "{d}/sim"), "`rounds` must be", None),
    ("simulate: random share > 1", ("simulate", "--embeddings", "{d}/X.npy", "--truth", "{d}/truth.csv", "--budget",
                                    "30", "--random-share", "1.5", "--out", "{d}/sim"), "`random_share` must be", None),
    ("simulate: audits eat the budget", ("simulate", "--embeddings", "{d}/X.npy", "--truth", "{d}/truth.csv",
                                         "--budget", "30", "--audit", "10", "--out", "{d}/sim"), "must leave labels",
     None),
    ("simulate: out is an input's folder", ("simulate", "--embeddings", "{d}/X.npy", "--truth", "{d}/truth.csv",
                                            "--budget", "30", "--out", "{d}", "--force"), "input", None),
]


@pytest.mark.parametrize("case,args,phrase,damage", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(base, tmp_path, case, args, phrase, damage):
    d = tmp_path / "w"
    shutil.copytree(base, d, ignore=shutil.ignore_patterns("cache"))
    if damage is not None:
        _damage(d / damage[0], damage[1])
        for side in ("-wal", "-shm"):  # a damaged database has no journal of its own
            Path(str(d / damage[0]) + side).unlink(missing_ok=True)
    before = _digest(d)
    r = run_cli(*[a.format(d=d) for a in args])
    assert r.returncode == 2, (case, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], (case, r.stderr)
    assert "Traceback" not in r.stderr
    after = _digest(d)
    assert after == before, (case, set(after.items()) ^ set(before.items()))


def test_an_unwritable_cache_is_not_fatal(base, tmp_path):
    r = run_cli("autolabel", "--embeddings", str(base / "X.npy"), "--labels", str(base / "seed.csv"), "--out",
                str(tmp_path / "o"), "--quiet", "--target-precision", "0.8", "--cache-dir", str(base / "afile" / "c"))
    assert r.returncode == 0, r.stderr
    assert "could not cache" in r.stderr and (tmp_path / "o" / "summary.json").exists()


def test_one_column_vectors_report(base, tmp_path):
    out = tmp_path / "run1"
    r = run_cli("autolabel", "--embeddings", str(base / "X1.npy"), "--labels", str(base / "seed.csv"), "--out",
                str(out), "--quiet", "--target-precision", "0.8", "--cache-dir", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    r = run_cli("report", "--run", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "report" / "report.html").exists()


@pytest.mark.parametrize("blank", [None, "", "  "])
def test_a_vector_without_id_is_refused(tmp_path, blank):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    ids = [f"i{k}" for k in range(20)]
    ids[3] = blank
    pq.write_table(pa.table({"id": ids, "vector": [x.tolist() for x in X]}), tmp_path / "V.parquet")
    (tmp_path / "s.csv").write_text("id,label\n" + "".join(f"i{k},c{k % 2}\n" for k in range(4, 20)))
    r = run_cli("autolabel", "--embeddings", str(tmp_path / "V.parquet"), "--labels", str(tmp_path / "s.csv"),
                "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 2 and "no id" in r.stderr and "rows 4" in r.stderr
    assert not (tmp_path / "o").exists()


def test_init_pairs_parquet_vectors_by_id_not_by_row_order(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5)).astype(np.float32)
    ids = [f"i{k}" for k in range(30)]
    (tmp_path / "pool.csv").write_text("id,text\n" + "".join(f"{i},x\n" for i in ids))
    perm = rng.permutation(30)
    pq.write_table(pa.table({"id": [ids[k] for k in perm], "vector": [X[k].tolist() for k in perm]}),
                   tmp_path / "V.parquet")
    r = run_cli("init", str(tmp_path / "p"), "--data", str(tmp_path / "pool.csv"), "--vectors", str(tmp_path / "V.parquet"))
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "p" / "embeddings.npy"), X)  # item i0 has i0's vector


def test_huge_vectors_label_like_their_scaled_down_selves(base, tmp_path):
    X = np.load(base / "X.npy")
    np.save(tmp_path / "big.npy", (X.astype(np.float64) * 1e20).astype(np.float32))  # float32 squares overflow
    got = []
    for name, path in (("small", base / "X.npy"), ("big", tmp_path / "big.npy")):
        r = run_cli("autolabel", "--embeddings", str(path), "--labels", str(base / "seed.csv"), "--out",
                    str(tmp_path / name), "--quiet", "--target-precision", "0.8", "--cache-dir", str(tmp_path / "c"))
        assert r.returncode == 0, r.stderr
        got.append(json.loads((tmp_path / name / "summary.json").read_text())["n_auto"])
    assert got[0] > 0 and got[0] == got[1]


def test_apply_refuses_a_stale_run_and_refit_applies_a_fresh_one(tmp_path):
    from test_project import write_data, write_labels

    truth = write_data(tmp_path / "pool.csv", n_per=30)
    d = tmp_path / "proj"
    assert run_cli("init", str(d), "--data", str(tmp_path / "pool.csv"), "--text-column", "text").returncode == 0
    assert run_cli("embed", str(d), "--model", "hashing", "--quiet").returncode == 0
    write_labels(tmp_path / "a.csv", [(f"t{i}", truth[i]) for i in range(30)])
    write_labels(tmp_path / "b.csv", [(f"t{i}", truth[i]) for i in range(30, 45)])
    assert run_cli("import", str(d), str(tmp_path / "a.csv")).returncode == 0
    assert run_cli("fit", str(d), "--target-precision", "0.8", "--quiet").returncode == 0
    assert run_cli("import", str(d), str(tmp_path / "b.csv")).returncode == 0  # new labels: the run is stale
    before = _digest(d)
    r = run_cli("apply", str(d))
    assert r.returncode == 2 and "before the human labels changed" in r.stderr and "--refit" in r.stderr
    assert _digest(d) == before and not (d / "labels.csv").exists()
    r = run_cli("apply", str(d), "--refit", "--quiet")
    assert r.returncode == 0, r.stderr
    st = json.loads(run_cli("status", str(d), "--json").stdout)
    assert st["last_run"]["status"] == "applied"
    import csv

    rows = list(csv.DictReader(open(d / "labels.csv")))
    seed = {r["id"] for r in rows if r["source"] == "seed"}
    assert seed == {f"t{i}" for i in range(45)}  # the refit saw every human label


def test_embed_rebuilds_a_deleted_embeddings_file(base, tmp_path):
    d = tmp_path / "w"
    shutil.copytree(base / "proj", d)
    X = np.load(d / "embeddings.npy")
    (d / "embeddings.npy").unlink()
    r = run_cli("embed", str(d), "--model", "hashing", "--quiet")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(d / "embeddings.npy"), X)
    assert run_cli("select", str(d), "--budget", "2").returncode == 0


def test_run_with_other_data_on_an_existing_project_is_refused(base, tmp_path):
    d = tmp_path / "w"
    shutil.copytree(base, d, ignore=shutil.ignore_patterns("cache"))
    (d / "other.csv").write_text("id,text\nz1,hello\nz2,world\n")
    before = _digest(d)
    r = run_cli("run", str(d / "proj"), "--data", str(d / "other.csv"), "--text-column", "text", "--model", "hashing")
    assert r.returncode == 2 and "was made from" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert _digest(d) == before


@pytest.mark.parametrize("label", ["=cmd()", "+1+1", "-2+3", "@SUM(A1)", "=HYPERLINK(\"http://x\")"])
def test_formula_labels_are_neutralised_in_csv_and_round_trip(tmp_path, label):
    from test_project import write_data

    truth = write_data(tmp_path / "pool.csv", n_per=20)
    d = tmp_path / "proj"
    assert run_cli("init", str(d), "--data", str(tmp_path / "pool.csv"), "--text-column", "text").returncode == 0
    assert run_cli("embed", str(d), "--model", "hashing", "--quiet").returncode == 0
    import csv

    names = {"animal": label, "food": "food", "tool": "-1.5"}  # a plain negative number stays as it is
    with open(tmp_path / "seed.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows((f"t{i}", names[truth[i]]) for i in range(30))
    assert run_cli("import", str(d), str(tmp_path / "seed.csv")).returncode == 0
    assert run_cli("fit", str(d), "--target-precision", "0.8", "--quiet").returncode == 0
    assert run_cli("apply", str(d), "--out", str(tmp_path / "labels.csv")).returncode == 0
    raw = [row for row in csv.reader(open(tmp_path / "labels.csv"))][1:]
    cells = {row[1] for row in raw}
    assert "'" + label in cells and label not in cells  # what a spreadsheet opens is text, not a formula
    assert "-1.5" in cells
    # and labelseed reads its own CSV back to the same labels
    assert run_cli("import", str(d), str(tmp_path / "labels.csv")).returncode == 0
    from labelseed.project import Project

    with Project.open(d) as p:
        assert set(p.labels().values()) <= {label, "food", "-1.5"}
