"""Labeling new items against a fitted run (issue 14): `labelseed label` and AutoLabeler.predict.

New items are scored as the run's held-out labeled rows were when the new-item thresholds were
calibrated; these tests check that the CLI path (the run's saved index) and the Python path give
the same labels, that the precision reported for new items is not above what held-out items
realize, and that a killed job resumes with every item written once."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_digits

from conftest import EXE, run_cli
from labelseed import AutoLabeler


def _digits_split(seed: int = 0, per_class: int = 10):
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    new, pool = np.sort(perm[:450]), np.sort(perm[450:])
    labels = np.full(len(pool), None, dtype=object)
    for c in range(10):
        labels[rng.choice(np.flatnonzero(y[pool] == c), per_class, replace=False)] = f"d{c}"
    return X[pool].astype(np.float32), labels, X[new].astype(np.float32), np.array([f"d{c}" for c in y[new]])


def _write_labels(path: Path, labels: np.ndarray) -> None:
    rows = [f"{i},{v}\n" for i, v in enumerate(labels) if v is not None]
    path.write_text("id,label\n" + "".join(rows))


def test_cli_labels_new_items_as_the_estimator_does_and_as_honestly_as_reported(tmp_path):
    Xp, labels, Xn, truth = _digits_split()
    np.save(tmp_path / "pool.npy", Xp)
    _write_labels(tmp_path / "labels.csv", labels)
    pq.write_table(pa.table({"id": [f"new{i}" for i in range(len(Xn))], "vector": [x.tolist() for x in Xn]}),
                   tmp_path / "new.parquet")
    r = run_cli("autolabel", "--embeddings", str(tmp_path / "pool.npy"), "--labels", str(tmp_path / "labels.csv"),
                "--out", str(tmp_path / "run"), "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_cli("label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.parquet"),
                "--out", str(tmp_path / "new.parquet.out.parquet"), "--chunk-rows", "100")
    assert r.returncode == 0, r.stderr
    assert "expected precision of new items' labels" in r.stdout
    out = pq.read_table(tmp_path / "new.parquet.out.parquet").to_pydict()
    assert out["id"] == [f"new{i}" for i in range(len(Xn))]  # every item once, in input order
    got = np.array([v if v is not None else None for v in out["label"]], dtype=object)

    model = AutoLabeler().fit(Xp, labels)  # the same defaults as the CLI
    want = model.predict(Xn)
    # an exact pool index: the saved run and the estimator label new items identically
    assert [str(v) for v in got] == [str(v) for v in want]
    auto = np.array(out["source"]) == "auto"
    assert 0.3 < auto.mean() < 1.0
    realized = float(np.mean(got[auto] == truth[auto]))
    th = model.new_item_thresholds_
    # the estimate for new items was calibrated on held-out rows scored as new items are:
    # what held-out items realize stays inside what was reported
    assert realized >= th.precision_low
    assert th.expected_precision - realized < 0.05


def test_label_writes_a_folder_of_parquet_shards_that_reads_as_the_one_file(tmp_path):
    import pyarrow.dataset as ds

    Xp, labels, Xn, _ = _digits_split(1)
    np.save(tmp_path / "pool.npy", Xp)
    np.save(tmp_path / "new.npy", Xn)
    _write_labels(tmp_path / "labels.csv", labels)
    r = run_cli("autolabel", "--embeddings", str(tmp_path / "pool.npy"), "--labels", str(tmp_path / "labels.csv"),
                "--out", str(tmp_path / "run"), "--quiet")
    assert r.returncode == 0, r.stderr
    args = ["label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.npy"), "--chunk-rows", "100"]
    assert run_cli(*args, "--out", str(tmp_path / "one.parquet"), "--quiet").returncode == 0
    r = run_cli(*args, "--out", str(tmp_path / "shards"))
    assert r.returncode == 0, r.stderr
    files = sorted((tmp_path / "shards").glob("*.parquet"))
    assert [f.name for f in files] == [f"part-{i:06d}.parquet" for i in range(5)]  # 450 items, 100 a chunk
    one = pq.read_table(tmp_path / "one.parquet")
    assert pa.concat_tables([pq.read_table(f) for f in files]).equals(one)
    # the folder reads as one data set: what labelseed keeps beside the shards is hidden from readers
    assert ds.dataset(tmp_path / "shards", format="parquet").to_table().num_rows == len(Xn)
    assert not list(tmp_path.glob(".shards*"))  # the parts became the folder
    # written by labelseed: replaced only with --force
    assert run_cli(*args, "--out", str(tmp_path / "shards")).returncode == 2
    r = run_cli(*args, "--out", str(tmp_path / "shards"), "--force", "--chunk-rows", "450")
    assert r.returncode == 0, r.stderr
    assert [f.name for f in (tmp_path / "shards").glob("*.parquet")] == ["part-000000.parquet"]


def test_a_killed_label_job_resumes_and_writes_every_item_once(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 32))
    y = rng.integers(0, 4, 6000)
    Xp = (centres[y] + 0.8 * rng.standard_normal((6000, 32))).astype(np.float32)  # above 5,000 rows: an IVF index
    labels = np.full(6000, None, dtype=object)
    for c in range(4):
        labels[np.flatnonzero(y == c)[:15]] = f"c{c}"
    np.save(tmp_path / "pool.npy", Xp)
    _write_labels(tmp_path / "labels.csv", labels)
    yn = rng.integers(0, 4, 400_000)
    np.save(tmp_path / "new.npy", (centres[yn] + 0.8 * rng.standard_normal((400_000, 32))).astype(np.float32))
    r = run_cli("autolabel", "--embeddings", str(tmp_path / "pool.npy"), "--labels", str(tmp_path / "labels.csv"),
                "--out", str(tmp_path / "run"), "--quiet")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "new_labels.parquet"
    parts = tmp_path / ".new_labels.parquet.parts"
    args = [str(EXE), "label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.npy"),
            "--out", str(out), "--chunk-rows", "4000", "--quiet"]
    proc = subprocess.Popen(args, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 3 and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(parts.glob("part-*.parquet")))
    if done_before >= 100 or out.exists():
        pytest.skip("the job finished before it could be killed")
    assert done_before >= 3 and not out.exists()
    r = run_cli("label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.npy"),
                "--out", str(out), "--chunk-rows", "4000")
    assert r.returncode == 0, r.stderr
    assert "resumed from an earlier attempt" in r.stdout
    ids = pq.read_table(out, columns=["id"]).column("id").to_numpy()
    np.testing.assert_array_equal(ids, np.arange(400_000))  # every row exactly once, in order
    assert not parts.exists()
    # and the resumed output is what one uninterrupted job writes
    r = run_cli("label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.npy"),
                "--out", str(tmp_path / "again.parquet"), "--chunk-rows", "4000", "--quiet")
    assert r.returncode == 0, r.stderr
    assert pq.read_table(out).equals(pq.read_table(tmp_path / "again.parquet"))


def _vector_project(tmp_path: Path):
    from labelseed.project import Project

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 16)) * 3
    y = np.arange(460) % 3
    X = (centres[y] + rng.standard_normal((460, 16))).astype(np.float32)
    np.save(tmp_path / "pool.npy", X[:300])
    (tmp_path / "ids.csv").write_text("id\n" + "".join(f"v{i}\n" for i in range(300)))
    (tmp_path / "seed.csv").write_text("id,label\n" + "".join(f"v{i},c{y[i]}\n" for i in range(45)))
    proj = Project.init(tmp_path / "proj", data=tmp_path / "ids.csv", vectors=tmp_path / "pool.npy")
    proj.import_labels(tmp_path / "seed.csv")
    return proj, X, y


def test_project_labels_items_added_after_a_fit_without_refitting(tmp_path):
    proj, X, y = _vector_project(tmp_path)
    with proj:
        run = proj.fit()
        np.save(tmp_path / "new.npy", X[300:])
        (tmp_path / "new.csv").write_text("id\n" + "".join(f"v{i}\n" for i in range(300, 460)))
        assert proj.add(tmp_path / "new.csv", vectors=tmp_path / "new.npy") == 160
        out = proj.apply(new=True, out=tmp_path / "labels.csv")
        assert proj.run()["run_id"] == run["run_id"]  # no refit: the same run labeled them
        import csv

        rows = {r["id"]: r for r in csv.DictReader(open(out))}
        new = [f"v{i}" for i in range(300, 460)]
        auto = [i for i in new if i in rows]
        assert len(auto) > 120
        assert all(rows[i]["source"] == "auto" for i in auto)
        assert np.mean([rows[i]["label"] == f"c{y[int(i[1:])]}" for i in auto]) > 0.95
        # recorded with the run: status counts them
        st = proj.status()
        assert sum(v["auto"] for v in st["classes"].values()) >= len(auto)
        # the next fit takes them into the pool
        proj.fit()
        assert proj.decisions()["rows"].shape[0] == 460


def test_an_add_killed_after_its_vectors_were_written_leaves_a_usable_project(tmp_path):
    # add writes the longer embeddings file first, then the items in one transaction; a kill
    # between the two leaves a file with rows past the items, which is never read
    proj, X, _ = _vector_project(tmp_path)
    with proj:
        proj._write_embeddings(330, 16, tail=X[300:330])  # what the killed add had written
        rows, V = proj.vectors()
        assert len(rows) == 300
        np.testing.assert_array_equal(V, X[:300])
        np.save(tmp_path / "new.npy", X[300:330])
        (tmp_path / "new.csv").write_text("id\n" + "".join(f"v{i}\n" for i in range(300, 330)))
        assert proj.add(tmp_path / "new.csv", vectors=tmp_path / "new.npy") == 30  # the retry succeeds
        rows, V = proj.vectors()
        np.testing.assert_array_equal(V, X[:330])


def test_text_items_added_are_embedded_by_the_next_embed_and_labeled_by_apply_new(tmp_path):
    from conftest import write_text_pool

    from labelseed.project import Project

    truth = write_text_pool(tmp_path / "pool.csv", 300, 4)
    (tmp_path / "seed.csv").write_text("id,label\n" + "".join(f"{i},{c}\n" for i, c in list(truth.items())[:60]))
    proj = Project.init(tmp_path / "proj", data=tmp_path / "pool.csv", text_column="text")
    with proj:
        proj.embed("hashing")
        proj.import_labels(tmp_path / "seed.csv")
        proj.fit()
        more = write_text_pool(tmp_path / "more.csv", 330, 4)  # the same texts, then 30 more
        new_truth = dict(list(more.items())[300:])
        (tmp_path / "new.csv").write_text("id,text\n" + "\n".join(
            line for line in (tmp_path / "more.csv").read_text().splitlines()[301:]) + "\n")
        assert proj.add(tmp_path / "new.csv") == 30
        with pytest.raises(Exception, match="not embedded yet"):
            proj.apply(new=True)
        before = np.load(proj.store.embeddings_path())
        report = proj.embed("hashing")
        assert report.embedded + report.from_cache == 30 and report.already_done == 300
        after = np.load(proj.store.embeddings_path())
        np.testing.assert_array_equal(after[:300], before)  # the vectors it had are kept
        out = proj.apply(new=True)
        import csv

        rows = {r["id"]: r for r in csv.DictReader(open(out))}
        got = [i for i in new_truth if i in rows]
        assert len(got) >= 20 and all(rows[i]["label"] == new_truth[i] for i in got)


@pytest.mark.parametrize("row_group", [7, 50, 1000])
@pytest.mark.parametrize("order", ["forward", "shuffled"])
def test_embedding_reader_reads_any_chunk_of_a_parquet_file_in_any_order(tmp_path, row_group, order):
    """A worker reads its own chunks (rows first..first + n) of a Parquet file whose row groups need
    not line up with the chunks; in order (one pass) or in any order (each read starts at the row
    group holding the chunk), the rows are the file's."""
    from labelseed._io import EmbeddingReader

    rng = np.random.default_rng(0)
    X = rng.standard_normal((333, 5)).astype(np.float32)
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table({"id": [f"i{k}" for k in range(333)], "vector": list(X)}), path, row_group_size=row_group)
    chunks = [(a, min(40, 333 - a)) for a in range(0, 333, 40)]
    if order == "shuffled":
        chunks = [chunks[k] for k in rng.permutation(len(chunks))]
    reader = EmbeddingReader(path, chunk_rows=40)
    for first, n in chunks:
        ids, got = reader.read(first, n)
        assert ids.tolist() == [f"i{k}" for k in range(first, first + n)]
        np.testing.assert_array_equal(got, X[first:first + n])
