"""The CLI end to end, through the installed `labelseed` entry point."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import blobs, run_cli

run = run_cli


def write_seed(path: Path, rows: list[tuple[object, object]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows(rows)
    return path


@pytest.fixture
def pool(tmp_path):
    X, y = blobs(n_per=60, n_classes=3, dim=16, spread=1.0, seed=0)
    np.save(tmp_path / "X.npy", X)
    rng = np.random.default_rng(0)
    seed = [(int(i), f"class-{y[i]}") for c in range(3) for i in rng.choice(np.flatnonzero(y == c), 8, replace=False)]
    write_seed(tmp_path / "seed.csv", seed)
    return tmp_path, X, y, seed


def test_autolabel_end_to_end(pool):
    d, X, y, seed = pool
    r = run("autolabel", "--embeddings", str(d / "X.npy"), "--labels", str(d / "seed.csv"),
            "--target-precision", "0.9", "--out", str(d / "out"), "--quiet")
    assert r.returncode == 0, r.stderr
    out = d / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert {"expected_precision", "coverage", "classes"} <= summary.keys()
    assert summary["graph"] == "exact" and summary["graph_recall"] == 1.0  # 180 rows: the exact graph
    assert len(summary["classes"]) == 3
    rows = list(csv.DictReader(open(out / "auto_labels.csv")))
    assert {r["source"] for r in rows} <= {"seed", "auto"}
    assert sum(r["source"] == "seed" for r in rows) == len(seed)
    abstained = list(csv.DictReader(open(out / "abstained.csv")))
    # every row is either labeled (seed or auto) or abstained, exactly once
    ids = [int(r["id"]) for r in rows] + [int(r["id"]) for r in abstained]
    assert sorted(ids) == list(range(len(X)))
    auto = [r for r in rows if r["source"] == "auto"]
    assert summary["coverage"] == pytest.approx(len(auto) / (len(X) - len(seed)))
    right = np.mean([r["label"] == f"class-{y[int(r['id'])]}" for r in auto])
    assert right >= 0.9
    import pyarrow.parquet as pq

    assert pq.read_table(out / "auto_labels.parquet").num_rows == len(rows)


def test_prints_the_per_class_table(pool):
    d, *_ = pool
    r = run("autolabel", "--embeddings", str(d / "X.npy"), "--labels", str(d / "seed.csv"), "--out", str(d / "o"))
    assert r.returncode == 0, r.stderr
    assert "class-0" in r.stdout and "expected precision" in r.stdout


def test_parquet_embeddings_with_string_ids(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, y = blobs(n_per=40, n_classes=2, dim=8, seed=1)
    ids = [f"item-{i}" for i in range(len(X))]
    pq.write_table(pa.table({"id": ids, "embedding": [list(map(float, v)) for v in X]}), tmp_path / "e.parquet")
    write_seed(tmp_path / "s.csv", [(ids[i], f"c{y[i]}") for i in list(range(6)) + list(range(40, 46))])
    r = run("autolabel", "--embeddings", str(tmp_path / "e.parquet"), "--labels", str(tmp_path / "s.csv"),
            "--target-precision", "0.9", "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / "o" / "auto_labels.csv")))
    assert all(row["id"].startswith("item-") for row in rows)


def _bad(d: Path, X=None, seed_rows=None, extra=()):
    if X is not None:
        np.save(d / "bad.npy", X)
    if seed_rows is not None:
        write_seed(d / "bad.csv", seed_rows)
    emb = d / ("bad.npy" if X is not None else "X.npy")
    lab = d / ("bad.csv" if seed_rows is not None else "seed.csv")
    return run("autolabel", "--embeddings", str(emb), "--labels", str(lab), "--out", str(d / "o"), "--quiet", *extra)


def test_nan_vectors(pool):
    d, X, *_ = pool
    X = X.copy()
    X[5, 2] = np.nan
    X[7, 0] = np.inf
    r = _bad(d, X=X)
    assert r.returncode == 2
    assert "NaN or infinite" in r.stderr and "rows 5, 7" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_wrong_shape(pool):
    d, X, *_ = pool
    r = _bad(d, X=X[:, 0])
    assert r.returncode == 2 and "2-D" in r.stderr


def test_empty_pool(pool):
    d, X, *_ = pool
    r = _bad(d, X=np.zeros((0, 16), dtype=np.float32), seed_rows=[])
    assert r.returncode == 2 and "holds no rows" in r.stderr


def test_unknown_ids(pool):
    d, X, y, seed = pool
    r = _bad(d, seed_rows=seed + [(99999, "class-0")])
    assert r.returncode == 2 and "not in the pool" in r.stderr and "99999" in r.stderr


def test_duplicate_ids(pool):
    d, X, y, seed = pool
    r = _bad(d, seed_rows=seed + [seed[0]])
    assert r.returncode == 2 and "labeled twice" in r.stderr


def test_missing_columns(pool):
    d, *_ = pool
    (d / "bad.csv").write_text("item,class\n1,a\n")
    r = run("autolabel", "--embeddings", str(d / "X.npy"), "--labels", str(d / "bad.csv"), "--out", str(d / "o"))
    assert r.returncode == 2 and "id,label" in r.stderr


def test_single_class(pool):
    d, X, y, seed = pool
    r = _bad(d, seed_rows=[(i, "only") for i, _ in seed])
    assert r.returncode == 2 and "one class" in r.stderr and "--allow-single-class" in r.stderr
    assert not (d / "o").exists()


def test_single_class_allowed_abstains_everywhere_with_a_warning(pool):
    d, X, y, seed = pool
    r = _bad(d, seed_rows=[(i, "only") for i, _ in seed], extra=("--allow-single-class",))
    assert r.returncode == 0 and "one class" in r.stderr
    summary = json.loads((d / "o" / "summary.json").read_text())
    assert summary["n_auto"] == 0 and summary["coverage"] == 0
    r = _bad(d, seed_rows=[seed[0]], extra=("--force", "--allow-single-class"))
    assert r.returncode == 2 and "Only one row" in r.stderr


def test_class_with_fewer_labels_than_folds_falls_back(pool):
    d, X, y, seed = pool
    few = [s for s in seed if s[1] != "class-2"] + [s for s in seed if s[1] == "class-2"][:3]
    r = _bad(d, seed_rows=few)
    assert r.returncode == 0, r.stderr
    assert "using 3 folds" in r.stderr and "class-2" in r.stderr


def test_class_with_one_label_gets_no_auto_labels_and_a_warning(pool):
    d, X, y, seed = pool
    few = [s for s in seed if s[1] != "class-2"] + [s for s in seed if s[1] == "class-2"][:1]
    r = _bad(d, seed_rows=few)
    assert r.returncode == 0 and "single labeled row" in r.stderr
    rows = list(csv.DictReader(open(d / "o" / "auto_labels.csv")))
    assert not [row for row in rows if row["label"] == "class-2" and row["source"] == "auto"]


def test_every_class_with_one_label_is_an_error(pool):
    d, X, y, seed = pool
    one_each = [next(s for s in seed if s[1] == c) for c in ("class-0", "class-1", "class-2")]
    r = _bad(d, seed_rows=one_each)
    assert r.returncode == 2 and "at least 2" in r.stderr
    assert not (d / "o").exists()


@pytest.mark.parametrize("target", ["1.5", "0", "-0.2", "nan"])
def test_target_outside_unit_interval(pool, target):
    d, *_ = pool
    r = _bad(d, extra=("--target-precision", target))
    assert r.returncode == 2 and "target_precision" in r.stderr


def test_existing_output_needs_force(pool):
    d, *_ = pool
    (d / "o").mkdir()
    (d / "o" / "mine.txt").write_text("keep me")
    r = _bad(d)
    assert r.returncode == 2 and "--force" in r.stderr
    assert (d / "o" / "mine.txt").read_text() == "keep me"
    # --force replaces only labelseed's own outputs (issue 12): a user's folder stays as it was
    r = _bad(d, extra=("--force",))
    assert r.returncode == 2 and "did not write" in r.stderr
    assert (d / "o" / "mine.txt").read_text() == "keep me" and not (d / "o" / "summary.json").exists()
    (d / "o" / "mine.txt").unlink()
    (d / "o").rmdir()
    assert _bad(d).returncode == 0
    r = _bad(d, extra=("--force",))
    assert r.returncode == 0, r.stderr
    assert (d / "o" / "summary.json").exists()


def test_failed_run_leaves_no_partial_output(pool):
    d, X, *_ = pool
    X = X.copy()
    X[0, 0] = np.nan
    _bad(d, X=X)
    assert not (d / "o").exists()
    assert not [p for p in d.iterdir() if p.name.startswith(".o.")]


def test_missing_file(pool):
    d, *_ = pool
    r = run("autolabel", "--embeddings", str(d / "nope.npy"), "--labels", str(d / "seed.csv"), "--out", str(d / "o"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_global_threshold_and_metric(pool):
    d, *_ = pool
    r = _bad(d, extra=("--global", "--metric", "f1"))
    assert r.returncode == 0, r.stderr
    summary = json.loads((d / "o" / "summary.json").read_text())
    assert summary["mode"] == "global" and summary["metric"] == "f1"
    assert len({c["threshold"] for c in summary["classes"]}) == 1


def test_unknown_metric_is_exit_2(pool):
    d, *_ = pool
    r = _bad(d, extra=("--metric", "auc"))
    assert r.returncode == 2 and "`metric` must be one of" in r.stderr


def test_rerun_reuses_the_graph_and_gives_the_same_labels(pool, tmp_path):
    d, *_ = pool
    cache = tmp_path / "cache"
    args = ["autolabel", "--embeddings", str(d / "X.npy"), "--labels", str(d / "seed.csv"), "--target-precision", "0.9"]
    first = run(*args, "--out", str(d / "a"), cache=cache)
    assert first.returncode == 0, first.stderr
    assert "reusing" not in first.stderr
    graphs = list((cache / "labelseed").glob("graph-*.npz"))
    assert len(graphs) == 1
    second = run(*args, "--out", str(d / "b"), cache=cache)
    assert second.returncode == 0, second.stderr
    assert "reusing the kNN graph" in second.stderr
    assert (d / "a" / "auto_labels.csv").read_text() == (d / "b" / "auto_labels.csv").read_text()
    # a damaged cache file is rebuilt, not trusted
    graphs[0].write_bytes(b"not a graph")
    third = run(*args, "--out", str(d / "c"), cache=cache)
    assert third.returncode == 0, third.stderr
    assert (d / "a" / "auto_labels.csv").read_text() == (d / "c" / "auto_labels.csv").read_text()


def test_changed_vectors_do_not_reuse_a_graph(pool, tmp_path):
    d, X, *_ = pool
    cache = tmp_path / "cache"
    args = ["autolabel", "--labels", str(d / "seed.csv"), "--target-precision", "0.9"]
    assert run(*args, "--embeddings", str(d / "X.npy"), "--out", str(d / "a"), cache=cache).returncode == 0
    np.save(d / "Y.npy", X * 1.5 + 0.1)
    r = run(*args, "--embeddings", str(d / "Y.npy"), "--out", str(d / "b"), cache=cache)
    assert r.returncode == 0 and "reusing" not in r.stderr
    assert len(list((cache / "labelseed").glob("graph-*.npz"))) == 2


def test_file_query_refits_with_the_runs_own_settings(pool, tmp_path):
    """`query --run DIR` refits with the settings the run recorded (here 6 neighbours, spreading
    alone): it reuses that run's graph; without --run it uses the defaults and builds another."""
    d, *_ = pool
    cache = tmp_path / "cache"
    fit = run("autolabel", "--embeddings", str(d / "X.npy"), "--labels", str(d / "seed.csv"), "--out", str(d / "a"),
              "--n-neighbors", "6", "--method", "spreading", "--quiet", cache=cache)
    assert fit.returncode == 0, fit.stderr
    settings = json.loads((d / "a" / "summary.json").read_text())["settings"]
    assert settings["n_neighbors"] == 6 and settings["method"] == "spreading"
    graphs = lambda: sorted((cache / "labelseed").glob("graph-*.npz"))  # noqa: E731
    assert len(graphs()) == 1
    q = ("query", "--embeddings", str(d / "X.npy"), "--labels", str(d / "seed.csv"), "--budget", "5")
    r = run(*q, "--run", str(d / "a"), "--out", str(d / "q1.csv"), cache=cache)
    assert r.returncode == 0, r.stderr
    assert len(graphs()) == 1
    r = run(*q, "--out", str(d / "q2.csv"), cache=cache)
    assert r.returncode == 0, r.stderr
    assert len(graphs()) == 2
    assert len(list(csv.DictReader(open(d / "q1.csv")))) == 5


def test_file_mode_knows_which_labels_were_drawn(tmp_path):
    """select/query write each drawn row's inclusion probability; autolabel --picks then lets
    those labels calibrate, weighted by 1 / probability, exactly as the library does; labels
    a picking strategy chose (or all, with --picked) never calibrate."""
    from labelseed import ops
    from labelseed.thresholds import design_weights

    X, y = blobs(n_per=80, n_classes=3, dim=16, spread=1.4, seed=3)
    np.save(tmp_path / "X.npy", X)
    r = run("select", "--embeddings", str(tmp_path / "X.npy"), "--budget", "30", "--out", str(tmp_path / "s.csv"))
    assert r.returncode == 0, r.stderr
    picks = list(csv.DictReader(open(tmp_path / "s.csv")))
    inc = np.array([float(p["inclusion"]) for p in picks])
    assert ((inc > 0) & (inc <= 1)).all() and inc.std() > 0  # clusters of unequal size: unequal probabilities
    rows = np.array([int(p["id"]) for p in picks])
    write_seed(tmp_path / "seed.csv", [(int(i), f"c{y[i]}") for i in rows])

    def fit_cli(name: str, *extra: str) -> dict:
        res = run("autolabel", "--embeddings", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "seed.csv"),
                  "--target-precision", "0.9", "--out", str(tmp_path / name), "--quiet", *extra)
        assert res.returncode == 0, res.stderr
        return json.loads((tmp_path / name / "summary.json").read_text())

    drawn = fit_cli("drawn", "--picks", str(tmp_path / "s.csv"))
    e = drawn["estimate"]
    assert e["labels"]["sampled"] == 30 and e["calibrated_by"]["sampled"] == 30 and e["trusted"]
    assert e["design_weighted"] is True
    labels = np.full(len(X), None, dtype=object)
    labels[rows] = [f"c{v}" for v in y[rows]]
    w = np.ones(len(X))
    w[rows] = design_weights(inc)
    lib = ops.fit(X, labels, ops.FitSettings(target_precision=0.9), calibrate=labels != None,  # noqa: E711
                  design_weight=w).summary
    assert drawn["expected_precision"] == pytest.approx(lib["expected_precision"], abs=1e-9)
    assert drawn["coverage"] == pytest.approx(lib["coverage"], abs=1e-9)

    # the select CSV itself, its label column filled in, passed as --labels: read as the picks it is
    with open(tmp_path / "s.csv") as f:
        table = list(csv.DictReader(f))
    with open(tmp_path / "s_labeled.csv", "w", newline="") as f:
        w_ = csv.DictWriter(f, fieldnames=[*table[0].keys(), "label"])
        w_.writeheader()
        w_.writerows({**row, "label": f"c{y[int(row['id'])]}"} for row in table)
    res = run("autolabel", "--embeddings", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "s_labeled.csv"),
              "--target-precision", "0.9", "--out", str(tmp_path / "own"), "--quiet")
    assert res.returncode == 0, res.stderr
    own = json.loads((tmp_path / "own" / "summary.json").read_text())
    assert own["estimate"]["labels"]["sampled"] == 30 and own["estimate"]["design_weighted"] is True
    assert own["expected_precision"] == pytest.approx(drawn["expected_precision"], abs=1e-9)

    plain_run = fit_cli("plain")  # no --picks: taken as a random sample, unweighted
    # the weights mattered: rows of unequal weight count for fewer labels (Kish), a wider interval
    assert drawn["expected_precision_interval"][0] < plain_run["expected_precision_interval"][0] - 0.01
    plain = plain_run["estimate"]
    assert plain["calibrated_by"]["random"] == 30 and plain["design_weighted"] is False
    picked = fit_cli("picked", "--picked")["estimate"]
    assert picked["labels"]["picked"] == 30 and sum(picked["calibrated_by"].values()) == 0 and not picked["trusted"]

    r = run("query", "--embeddings", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "seed.csv"), "--picks",
            str(tmp_path / "s.csv"), "--budget", "12", "--out", str(tmp_path / "q.csv"))
    assert r.returncode == 0, r.stderr
    q = list(csv.DictReader(open(tmp_path / "q.csv")))
    assert len(q) == 12 and not {int(p["id"]) for p in q} & set(rows.tolist())
    assert all(p["strategy"] == "sampled" and 0 < float(p["inclusion"]) <= 1 for p in q)
    r = run("query", "--embeddings", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "seed.csv"), "--strategy",
            "abstained", "--budget", "5", "--out", str(tmp_path / "k.csv"))
    assert r.returncode == 0 and "inclusion" not in open(tmp_path / "k.csv").readline()  # a pick has none


def _on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run the entry point with stderr on a pseudo-terminal (stdout piped): exit code, stdout,
    and what the terminal received."""
    import os
    import pty
    import subprocess
    import threading

    from conftest import CLI_CACHE, EXE

    master, slave = pty.openpty()
    env = {**os.environ, "XDG_CACHE_HOME": str(CLI_CACHE), "TERM": "xterm", "COLUMNS": "150"}
    proc = subprocess.Popen([str(EXE), *args], stdout=subprocess.PIPE, stderr=slave, text=True, env=env)
    os.close(slave)
    got = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(timeout=300)
    reader.join(timeout=30)
    os.close(master)
    return proc.returncode, out, got.decode(errors="replace")


def test_progress_bars_show_on_a_terminal_and_bad_input_stays_one_line(tmp_path):
    """A terminal gets the embedding bar (stage, count, rate); a pipe gets none, so neither a log
    nor an error is preceded by a stopped bar's blank line, on a terminal or not."""
    from conftest import write_text_pool

    write_text_pool(tmp_path / "pool.csv", 300, 4)
    assert run_cli("init", str(tmp_path / "p"), "--data", str(tmp_path / "pool.csv"),
                   "--text-column", "text").returncode == 0
    rc, out, tty = _on_a_terminal("embed", str(tmp_path / "p"), "--model", "hashing", "--batch-size", "16")
    assert rc == 0 and out.startswith("embedded ") and " items with hashing" in out, (out, tty)
    assert "embedding" in tty and "/300" in tty and "items/s" in tty, tty
    r = run_cli("embed", str(tmp_path / "p"), "--model", "hashing", "--force", "--batch-size", "16")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for bad in (lambda *a: run_cli(*a), _on_a_terminal):
        got = bad("embed", str(tmp_path / "p"), "--device", "cuda:7")
        err = got.stderr if hasattr(got, "stderr") else got[2]
        assert err.replace("\r", "").lstrip(" ").startswith("error: --device cuda:7"), repr(err)


@pytest.mark.parametrize("blocked, command, extra", [
    ("sentence_transformers", ("embed", "{p}"), "text"),
    ("matplotlib", ("report", "--run", "{run}", "--out", "{d}/rep"), "report"),
    ("ray", ("embed", "{p}", "--engine", "ray", "--model", "hashing"), "ray"),
    ("starlette", ("serve", "{p}"), "web"),
])
def test_a_missing_extra_is_one_line_naming_its_pip_install(tmp_path, blocked, command, extra):
    """An optional dependency that is not installed (here: a module on PYTHONPATH that refuses to
    import) ends the step with one line and exit 2 naming `pip install 'labelseed[extra]'`, and
    nothing in the folder changes; before, the CLI showed ImportError's traceback."""
    import hashlib
    import os
    import subprocess

    from conftest import CLI_CACHE, EXE, write_text_pool

    write_text_pool(tmp_path / "pool.csv", 30, 3)
    assert run_cli("init", str(tmp_path / "p"), "--data", str(tmp_path / "pool.csv"),
                   "--text-column", "text").returncode == 0
    X, y = blobs()
    np.save(tmp_path / "X.npy", X)
    write_seed(tmp_path / "seed.csv", [(i, int(y[i])) for i in range(0, len(y), 6)])
    assert run_cli("autolabel", "--embeddings", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "seed.csv"),
                   "--out", str(tmp_path / "run"), "--quiet").returncode == 0
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / f"{blocked}.py").write_text("raise ImportError('not installed (blocked by the test)')\n")

    def digest() -> dict[str, str]:
        return {str(f.relative_to(tmp_path)): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in sorted(tmp_path.rglob("*")) if f.is_file() and "blocked" not in f.parts}

    before = digest()
    args = [a.format(p=tmp_path / "p", run=tmp_path / "run", d=tmp_path) for a in command]
    env = {**os.environ, "XDG_CACHE_HOME": str(CLI_CACHE), "PYTHONPATH": str(tmp_path / "blocked")}
    r = subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith(("warning:", "WARNING"))]
    assert len(lines) == 1 and lines[0].startswith(f"error: {blocked}"), r.stderr
    assert f"pip install 'labelseed[{extra}]'" in lines[0]
    assert digest() == before


def test_query_and_select_show_the_bars_of_the_work_they_do_first(tmp_path):
    """`query` refits before it picks and `select --strategy facility|typiclust` builds a kNN graph
    (minutes at scale); a terminal sees those stages, and --quiet turns them off."""
    import csv as _csv

    from conftest import write_text_pool

    truth = write_text_pool(tmp_path / "pool.csv", 300, 4)
    assert run_cli("init", str(tmp_path / "p"), "--data", str(tmp_path / "pool.csv"),
                   "--text-column", "text").returncode == 0
    assert run_cli("embed", str(tmp_path / "p"), "--model", "hashing").returncode == 0
    with open(tmp_path / "seed.csv", "w", newline="") as f:
        w = _csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows(list(truth.items())[:30])
    assert run_cli("import", str(tmp_path / "p"), str(tmp_path / "seed.csv")).returncode == 0
    rc, out, tty = _on_a_terminal("query", str(tmp_path / "p"), "--budget", "5", "--out", str(tmp_path / "q1.csv"))
    assert rc == 0 and "picked 5 rows" in out, (out, tty)
    assert "label spreading" in tty and "thresholds" in tty, tty
    rc, out, tty = _on_a_terminal("query", str(tmp_path / "p"), "--budget", "5", "--out", str(tmp_path / "q2.csv"),
                                  "--quiet")
    assert rc == 0 and "picked 5 rows" in out and "thresholds" not in tty, (out, tty)
    rc, out, tty = _on_a_terminal("select", str(tmp_path / "p"), "--budget", "5", "--strategy", "facility",
                                  "--out", str(tmp_path / "s1.csv"))
    assert rc == 0 and "picked 5 rows" in out and "knn graph" in tty, (out, tty)
