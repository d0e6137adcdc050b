"""The Ray engine against the local one (issue 15): the same per-batch functions, the same outputs.

A local Ray cluster is started by the test itself (``ray.init(num_cpus=2, num_gpus=1)``: the GPU
is only declared, for the test that checks an embedding actor is given one); the CLI joins it
through ``RAY_ADDRESS``, as it would join any cluster."""
from __future__ import annotations

import logging
import os
import subprocess
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import EXE, write_text_pool

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _cli(address: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_ADDRESS": address}
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=300, env=env)


def _fitted_run(address: str, tmp_path, rng, n_classes: int, dim: int, n: int, noise: float = 1.0) -> np.ndarray:
    """A pool of `n` rows around `n_classes` random centres (tmp_path/pool.npy), 15 labels a class,
    fitted by `autolabel` into tmp_path/run; returns the centres (new items are drawn around them)."""
    centres = rng.standard_normal((n_classes, dim))
    y = rng.integers(0, n_classes, n)
    np.save(tmp_path / "pool.npy", (centres[y] + noise * rng.standard_normal((n, dim))).astype(np.float32))
    (tmp_path / "labels.csv").write_text("id,label\n" + "".join(
        f"{r},c{y[r]}\n" for c in range(n_classes) for r in np.flatnonzero(y == c)[:15]))
    r = _cli(address, "autolabel", "--embeddings", str(tmp_path / "pool.npy"), "--labels", str(tmp_path / "labels.csv"),
             "--out", str(tmp_path / "run"), "--quiet", "--no-cache")
    assert r.returncode == 0, r.stderr
    return centres


@pytest.mark.parametrize("workers", ["1", "2"])
def test_label_through_ray_writes_what_the_local_engine_writes(cluster, tmp_path, workers):
    rng = np.random.default_rng(0)
    centres = _fitted_run(cluster, tmp_path, rng, 4, 24, 6000, noise=0.8)
    yn = rng.integers(0, 4, 9000)
    np.save(tmp_path / "new.npy", (centres[yn] + 0.8 * rng.standard_normal((9000, 24))).astype(np.float32))
    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.parquet"
        r = _cli(cluster, "label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.npy"),
                 "--out", str(out), "--chunk-rows", "1000", "--engine", engine, "--workers", workers, "--quiet")
        assert r.returncode == 0, r.stderr
        outs[engine] = pq.read_table(out)
    assert outs["ray"].num_rows == 9000
    assert outs["ray"].equals(outs["local"])  # the same rows, labels and confidences, in the same order
    assert (np.array(outs["ray"].column("source").to_pylist()) == "auto").mean() > 0.5


def _part_rows(folder) -> np.ndarray:
    """Every row of every Parquet part in a project's embeddings/ folder, parts in name order."""
    files = sorted((folder / "embeddings").glob("part-*.parquet"))
    return np.concatenate([pq.read_table(f, columns=["row"]).column("row").to_numpy() for f in files])


def test_embedding_through_ray_gives_the_local_vectors(cluster, tmp_path):
    from labelseed.project import Project

    write_text_pool(tmp_path / "pool.csv", 200, 4)
    (tmp_path / "more.csv").write_text("id,text\n" + "".join(f"m{i},a more text number {i}\n" for i in range(30)))
    vectors, reports = {}, {}
    for engine in ("local", "ray"):
        proj = Project.init(tmp_path / engine, data=tmp_path / "pool.csv", text_column="text")
        with proj:
            reports[engine] = proj.embed("hashing", batch_size=16, engine=engine)
            assert reports[engine].embedded + reports[engine].from_cache == 200 and not reports[engine].failed
            vectors[engine] = proj.vectors()
        # no worker's store connection outlived the embed: the last close merged the journal
        assert not (tmp_path / engine / "labelseed.db-wal").exists(), engine
    # the same vectors, the same use of the content-hash cache (the pool repeats some texts)
    np.testing.assert_array_equal(vectors["ray"][1], vectors["local"][1])
    assert reports["ray"].from_cache == reports["local"].from_cache > 0
    # the workers wrote them, batch by batch, into Parquet parts the store points to; no array
    assert not (tmp_path / "ray" / "embeddings.npy").exists()
    np.testing.assert_array_equal(np.sort(_part_rows(tmp_path / "ray")), np.arange(200))
    with Project.open(tmp_path / "ray") as proj:
        assert sum(proj.store.part_names().values()) == 200 and proj.status()["vector_parts"] == 13
        # items added later and embedded here land in embeddings.npy beside the parts
        proj.add(tmp_path / "more.csv")
        proj.embed("hashing", batch_size=16)
        mixed = proj.vectors()
    with Project.open(tmp_path / "local") as proj:
        proj.add(tmp_path / "more.csv")
        proj.embed("hashing", batch_size=16)
        np.testing.assert_array_equal(mixed[1], proj.vectors()[1])
        assert len(mixed[0]) == 230


def test_a_killed_ray_label_job_resumes_and_writes_every_item_once(cluster, tmp_path):
    import signal
    import time

    rng = np.random.default_rng(1)
    centres = _fitted_run(cluster, tmp_path, rng, 3, 16, 3000)
    yn = rng.integers(0, 3, 300_000)
    np.save(tmp_path / "new.npy", (centres[yn] + rng.standard_normal((300_000, 16))).astype(np.float32))
    out, parts = tmp_path / "new_labels.parquet", tmp_path / ".new_labels.parquet.parts"
    args = [str(EXE), "label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.npy"), "--out",
            str(out), "--chunk-rows", "2000", "--engine", "ray", "--workers", "1", "--quiet"]
    proc = subprocess.Popen(args, env={**os.environ, "RAY_ADDRESS": cluster}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 3 and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if out.exists():
        pytest.skip("the job finished before it could be killed")
    assert len(list(parts.glob("part-*.parquet"))) >= 3
    r = _cli(cluster, "label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.npy"), "--out",
             str(out), "--chunk-rows", "2000", "--engine", "ray", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert "resumed from an earlier attempt" in r.stdout
    ids = pq.read_table(out, columns=["id"]).column("id").to_numpy()
    np.testing.assert_array_equal(ids, np.arange(300_000))  # every item exactly once, in order
    r = _cli(cluster, "label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.npy"), "--out",
             str(tmp_path / "local.parquet"), "--chunk-rows", "2000", "--quiet")
    assert pq.read_table(out).equals(pq.read_table(tmp_path / "local.parquet"))


def test_a_killed_ray_embedding_resumes_and_ends_with_every_item_embedded_once(cluster, tmp_path):
    import signal
    import sqlite3
    import time

    from labelseed.project import Project

    write_text_pool(tmp_path / "pool.csv", 60_000, 4)
    for name in ("killed", "local"):
        Project.init(tmp_path / name, data=tmp_path / "pool.csv", text_column="text").close()
    args = [str(EXE), "embed", str(tmp_path / "killed"), "--model", "hashing", "--batch-size", "500", "--engine", "ray",
            "--workers", "1", "--quiet"]
    proc = subprocess.Popen(args, env={**os.environ, "RAY_ADDRESS": cluster}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def marked() -> int:
        try:
            with sqlite3.connect(f"file:{tmp_path / 'killed' / 'labelseed.db'}?mode=ro", uri=True, timeout=1) as db:
                return int(db.execute("SELECT COUNT(*) FROM embedded").fetchone()[0])
        except sqlite3.Error:
            return 0

    deadline = time.time() + 120
    while time.time() < deadline and marked() < 2000 and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = marked()
    if done_before >= 60_000:
        pytest.skip("the job finished before it could be killed")
    assert done_before >= 2000
    r = _cli(cluster, "embed", str(tmp_path / "killed"), "--model", "hashing", "--batch-size", "500", "--engine", "ray",
             "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert f"{done_before} done before" in r.stdout  # only the rest was embedded again
    assert "Parquet part(s) in" in r.stdout
    with Project.open(tmp_path / "local") as proj:
        proj.embed("hashing", batch_size=500)
        want = proj.vectors()[1]
    with Project.open(tmp_path / "killed") as proj:
        rows, failed = proj.store.embedded_rows()
        assert len(rows) == 60_000 and not len(failed)
        np.testing.assert_array_equal(proj.vectors()[1], want)
    # every row in exactly one Parquet part: what the killed job had written and marked was kept,
    # a part written but not marked was replaced or deleted
    np.testing.assert_array_equal(np.sort(_part_rows(tmp_path / "killed")), np.arange(60_000))


def _spectrum_pool(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Classes x sub-topics through a power-law spectrum (bench/scale.py's real-like shape)."""
    rng = np.random.default_rng(seed)
    B = np.linalg.qr(rng.standard_normal((d, d)))[0] * (np.arange(1, d + 1) ** -0.8)[None, :]
    c, u = rng.standard_normal((4, d)), rng.standard_normal((4, 10, d))
    y, s = rng.integers(0, 4, n), rng.integers(0, 10, n)
    Z = (c[y] + 0.7 * u[y, s] + rng.standard_normal((n, d))) @ B.T
    return (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32), y


@pytest.mark.parametrize("kind", ["ivf", "ivf-reduced"])
@pytest.mark.parametrize("workers", [1, 2])
def test_graph_through_ray_equals_the_local_graph(cluster, monkeypatch, caplog, kind, workers):
    from labelseed import graph as graph_module
    from labelseed.engines import get_engine
    from labelseed.graph import build_knn_graph

    if kind == "ivf-reduced":  # the reduced-space path, on a pool small enough for a test
        monkeypatch.setattr(graph_module, "REDUCED_MIN_ROWS", 5_000)
    # blocks of 700 rows: 13 of them, more than the actors hold in flight (2 each), so the driver
    # takes results back while it is still sending blocks, as on any pool past a few 8,192-row
    # blocks (a block read into the shared buffer after a result came back once replaced the
    # block being sent: the index's lists were scrambled, recall 0.66 on a 50,000-row pool)
    monkeypatch.setattr(graph_module, "ROW_BLOCK", 700)
    X, _ = _spectrum_pool(9_000, 192, 3)
    # each actor holds the IVF lists of one shard: in the full space that is the local search exactly;
    # in the reduced space each shard re-ranks its own candidates, the same as locally with as many shards
    local = build_knn_graph(X, 10, random_state=0, shards=workers if kind == "ivf-reduced" else None)
    assert local.index is not None and local.index.kind == kind  # the path this case is about
    with caplog.at_level(logging.INFO, logger="labelseed.graph"):
        remote = build_knn_graph(X, 10, random_state=0, engine=get_engine("ray", workers=workers))
    assert (f"IVF lists in {workers} shards" in caplog.text) == (workers > 1)
    assert remote.nprobe == local.nprobe
    np.testing.assert_array_equal(remote.indices, local.indices)
    np.testing.assert_array_equal(remote.similarities, local.similarities)
    # not a trivial graph: most rows' neighbours are real, and differ between rows
    assert (local.indices >= 0).all() and len(np.unique(local.indices[:, 0])) > 1000


def test_fit_and_select_through_ray_give_the_local_results(cluster, tmp_path):
    import json

    X, y = _spectrum_pool(8_000, 48, 5)
    np.save(tmp_path / "pool.npy", X)
    (tmp_path / "labels.csv").write_text("id,label\n" + "".join(
        f"{r},c{y[r]}\n" for c in range(4) for r in np.flatnonzero(y == c)[:25]))
    for engine in ("local", "ray"):
        r = _cli(cluster, "autolabel", "--embeddings", str(tmp_path / "pool.npy"), "--labels",
                 str(tmp_path / "labels.csv"), "--out", str(tmp_path / engine), "--quiet", "--no-cache",
                 "--engine", engine, "--workers", "1")
        assert r.returncode == 0, r.stderr
        r = _cli(cluster, "select", "--embeddings", str(tmp_path / "pool.npy"), "--budget", "12", "--strategy",
                 "typiclust", "--out", str(tmp_path / f"{engine}-picks.csv"), "--engine", engine)
        assert r.returncode == 0, r.stderr
    for name in ("auto_labels.csv", "abstained.csv"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    s = {e: json.loads((tmp_path / e / "summary.json").read_text()) for e in ("local", "ray")}
    assert s["ray"]["graph"] == "ivf" and s["ray"]["n_auto"] > 1000
    for key in ("expected_precision", "expected_precision_interval", "coverage", "n_auto", "graph_recall"):
        assert s["ray"][key] == s["local"][key], key
    assert (tmp_path / "ray-picks.csv").read_text() == (tmp_path / "local-picks.csv").read_text()


@pytest.mark.parametrize("graph_space", ["whitened", "auto"])
def test_a_run_in_the_whitened_space_through_ray_gives_the_local_results(cluster, tmp_path, graph_space):
    """The Ray graph gets the mapped rows (both spaces' graphs for auto), and Ray's `label` maps new items
    with the run's saved map: files, estimates and new items' labels equal the local engine's."""
    import json

    X, y = _spectrum_pool(9_000, 48, 6)
    pool, new = X[:8_000], X[8_000:]
    np.save(tmp_path / "pool.npy", pool)
    np.save(tmp_path / "new.npy", new)
    (tmp_path / "labels.csv").write_text("id,label\n" + "".join(
        f"{r},c{y[r]}\n" for c in range(4) for r in np.flatnonzero(y[:8_000] == c)[:25]))
    for engine in ("local", "ray"):
        r = _cli(cluster, "autolabel", "--embeddings", str(tmp_path / "pool.npy"), "--labels",
                 str(tmp_path / "labels.csv"), "--out", str(tmp_path / engine), "--quiet", "--no-cache",
                 "--engine", engine, "--workers", "2", "--graph-space", graph_space)
        assert r.returncode == 0, r.stderr
        r = _cli(cluster, "label", "--run", str(tmp_path / engine), "--embeddings", str(tmp_path / "new.npy"),
                 "--out", str(tmp_path / f"{engine}-new.parquet"), "--chunk-rows", "400", "--engine", engine,
                 "--workers", "2", "--quiet")
        assert r.returncode == 0, r.stderr
    for name in ("auto_labels.csv", "abstained.csv"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    s = {e: json.loads((tmp_path / e / "summary.json").read_text()) for e in ("local", "ray")}
    assert s["ray"]["n_auto"] > 1000
    for key in ("graph_space", "expected_precision", "expected_precision_interval", "coverage", "n_auto"):
        assert s["ray"][key] == s["local"][key], key
    if graph_space == "whitened":
        assert s["ray"]["graph_space"] == "whitened"
    labeled = {e: pq.read_table(tmp_path / f"{e}-new.parquet") for e in ("local", "ray")}
    assert labeled["ray"].num_rows == 1_000 and labeled["ray"].equals(labeled["local"])
    # the new items were labeled for real: most get their true class
    got = np.array(labeled["ray"].column("label").to_pylist(), dtype=object)
    auto = np.array(labeled["ray"].column("source").to_pylist()) == "auto"
    assert auto.mean() > 0.5 and (got[auto] == np.array([f"c{v}" for v in y[8_000:]], dtype=object)[auto]).mean() > 0.9


@pytest.mark.parametrize("damage, says", [("delete", "is missing although 16 items are marked embedded in it"),
                                          ("truncate", "is damaged"),
                                          ("zero", "all-zero vector(s)")])
def test_a_damaged_embedding_part_is_one_line_and_embed_mends_it(cluster, tmp_path, damage, says):
    import pyarrow as pa

    from labelseed.project import Project

    write_text_pool(tmp_path / "pool.csv", 64, 4)
    with Project.init(tmp_path / "p", data=tmp_path / "pool.csv", text_column="text") as proj:
        proj.embed("hashing", batch_size=16, engine="ray")
        want = proj.vectors()[1]
    part = sorted((tmp_path / "p" / "embeddings").glob("part-*.parquet"))[1]
    if damage == "delete":
        part.unlink()
    elif damage == "truncate":
        part.write_bytes(part.read_bytes()[:100])
    else:
        t = pq.read_table(part)
        dim = len(t.column("vector")[0])
        pq.write_table(t.set_column(1, "vector", pa.FixedSizeListArray.from_arrays(
            pa.array(np.zeros(t.num_rows * dim, np.float32)), dim)), part)
    r = _cli(cluster, "select", str(tmp_path / "p"), "--budget", "2")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert str(part) in r.stderr and says in r.stderr and "labelseed embed" in r.stderr
    fix = ["embed", str(tmp_path / "p"), "--model", "hashing", "--quiet"] + (["--force"] if damage != "delete" else [])
    r = _cli(cluster, *fix)
    assert r.returncode == 0, r.stderr
    with Project.open(tmp_path / "p") as proj:
        np.testing.assert_array_equal(proj.vectors()[1], want)


def test_ray_embeds_texts_in_parts_of_2048_by_default(cluster, tmp_path):
    from labelseed.project import EMBED_BATCH_RAY, Project

    write_text_pool(tmp_path / "pool.csv", 4500, 4)
    with Project.init(tmp_path / "p", data=tmp_path / "pool.csv", text_column="text") as proj:
        report = proj.embed("hashing", engine="ray")
        assert EMBED_BATCH_RAY["text"] == 2048 and report.parts == 3  # 2048 + 2048 + 404 rows
        assert sorted(proj.store.part_names().values()) == [404, 2048, 2048]


def test_label_through_ray_data_reads_parquet_chunks_across_row_groups_and_bad_rows_are_one_line(cluster, tmp_path):
    """The Ray Data pipeline's workers read their own chunks of a Parquet file whose row groups (700
    rows) do not line up with the chunks (1,000): the same table as the local engine's. A chunk a
    worker finds bad (a NaN vector in rows 4,001-5,000) ends the job with one line and exit 2, and nothing
    is left behind."""
    rng = np.random.default_rng(3)
    centres = _fitted_run(cluster, tmp_path, rng, 3, 12, 2000)
    yn = rng.integers(0, 3, 5500)
    Xn = (centres[yn] + rng.standard_normal((5500, 12))).astype(np.float32)

    def write(path, X):
        pq.write_table(pa.table({"id": [f"n{i}" for i in range(len(X))], "vector": list(X)}), path,
                       row_group_size=700)

    write(tmp_path / "new.parquet", Xn)
    assert pq.ParquetFile(tmp_path / "new.parquet").metadata.num_row_groups == 8
    tables = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.parquet"
        r = _cli(cluster, "label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "new.parquet"),
                 "--out", str(out), "--chunk-rows", "1000", "--engine", engine, "--quiet")
        assert r.returncode == 0, r.stderr
        tables[engine] = pq.read_table(out)
    assert tables["ray"].column("id").to_pylist() == [f"n{i}" for i in range(5500)]
    assert tables["ray"].equals(tables["local"])
    bad = Xn.copy()
    bad[4500, 3] = np.nan
    write(tmp_path / "bad.parquet", bad)
    out = tmp_path / "bad_labels.parquet"
    r = _cli(cluster, "label", "--run", str(tmp_path / "run"), "--embeddings", str(tmp_path / "bad.parquet"),
             "--out", str(out), "--chunk-rows", "1000", "--engine", "ray", "--quiet")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert "--embeddings rows 4001-5000" in r.stderr and "NaN" in r.stderr
    assert not out.exists() and not (tmp_path / ".bad_labels.parquet.parts").exists()


def test_ray_gives_each_embedding_actor_a_gpu_of_its_own_when_asked(cluster, tmp_path):
    """`--device cuda` (or auto, where the cluster has GPUs) on Ray: each actor holds one GPU, and
    the pool is no larger than the GPUs (more actors would wait for ever). The cluster here
    declares two CPUs and one GPU; each actor reports the GPUs Ray gave it in its vectors."""
    from labelseed.engines import LocalEngine
    from labelseed.engines.ray import RayEngine
    from labelseed.project import Project
    from labelseed import InputError

    write_text_pool(tmp_path / "pool.csv", 40, 3)

    class GpuReporter:  # defined here: pickled by value into the actors
        name, dim, device = "gpu-reporter", 3, "auto"

        def embed(self, items):
            import os
            import ray as r

            X = np.zeros((len(items), 3), dtype=np.float32)
            X[:, 0] = len(r.get_gpu_ids())
            X[:, 1] = os.getpid()
            X[:, 2] = 1.0
            return X, {}

    engine = RayEngine(workers=2)
    assert engine.gpus_for("cuda") == engine.gpus_for("auto") == 1.0 and engine.gpus_for("cpu") == 0.0
    for device, gpus_seen in (("auto", 1), ("cpu", 0)):
        reporter = GpuReporter()
        reporter.device = device
        with Project.init(tmp_path / device, data=tmp_path / "pool.csv", text_column="text") as proj:
            proj.embed(embedder=reporter, batch_size=4, engine="ray", workers=2)
            X = proj.vectors()[1]
        assert len(X) > 0 and (X[:, 0] == gpus_seen).all(), device
        if gpus_seen:  # one GPU in the cluster: one actor did every batch
            assert len(np.unique(X[:, 1])) == 1
    # a cluster without GPUs: cuda is one line, auto runs on the CPUs
    fake = RayEngine.__new__(RayEngine)
    fake.ray = type("R", (), {"cluster_resources": staticmethod(lambda: {"CPU": 2.0})})()
    assert fake.gpus_for("auto") == 0.0
    with pytest.raises(InputError, match="the Ray cluster offers no GPU"):
        fake.gpus_for("cuda")
    # a numbered GPU: Ray picks each actor's, so cuda:N is refused whatever the cluster offers
    for resources in ({"CPU": 2.0}, {"CPU": 2.0, "GPU": 4.0}):
        fake.ray = type("R", (), {"cluster_resources": staticmethod(lambda r=resources: r)})()
        for numbered in ("cuda:0", "cuda:1"):
            with pytest.raises(InputError, match=f"--device {numbered} with --engine ray: .*use --device cuda"):
                fake.gpus_for(numbered)
        assert fake.gpus_for("cuda" if "GPU" in resources else "auto") == (1.0 if "GPU" in resources else 0.0)
    assert LocalEngine().gpus_for("cpu") == 0.0


def test_ray_refuses_a_numbered_gpu_through_the_cli_and_changes_nothing(cluster, tmp_path):
    """Ray picks each actor's GPU, so `--device cuda:1` is one line and exit 2 before any model
    loads, and the project's files are as they were."""
    write_text_pool(tmp_path / "pool.csv", 20, 2)
    r = _cli(cluster, "init", str(tmp_path / "p"), "--data", str(tmp_path / "pool.csv"), "--text-column", "text")
    assert r.returncode == 0, r.stderr
    before = {p: p.read_bytes() for p in (tmp_path / "p").rglob("*") if p.is_file()}
    r = _cli(cluster, "embed", str(tmp_path / "p"), "--engine", "ray", "--device", "cuda:1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: --device cuda:1 with --engine ray") and "use --device cuda" in r.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "p").rglob("*") if p.is_file()} == before


def test_a_ray_worker_without_the_extra_is_one_line_naming_it(cluster, tmp_path):
    """A worker node that lacks an extra (its import refused there, as on a node installed without
    `labelseed[text]`) ends the step with the pip line, not a Ray traceback: when the model loads
    at its first batch (the embedders) and when the worker itself cannot be built."""
    from labelseed import InputError
    from labelseed.engines.ray import RayEngine
    from labelseed.project import Project

    says = (r"^on a Ray worker: labelseed_test_absent_module is needed for this step but is not installed; "
            r"install it with: pip install 'labelseed\[text\]'$")
    write_text_pool(tmp_path / "pool.csv", 40, 3)

    def _absent_extra(*_args):  # defined here: pickled by value into the actors
        from labelseed._optional import require

        require("labelseed_test_absent_module", "text")

    class NeedsAnExtra:
        name, dim = "needs-an-extra", 3

        def embed(self, items):
            from labelseed._optional import require

            require("labelseed_test_absent_module", "text")

    with Project.init(tmp_path / "p", data=tmp_path / "pool.csv", text_column="text") as proj:
        with pytest.raises(InputError, match=says):
            proj.embed(embedder=NeedsAnExtra(), batch_size=8, engine="ray", workers=2)
        assert proj.store.db.execute("SELECT COUNT(*) FROM embedded").fetchone()[0] == 0
    with pytest.raises(InputError, match=says):
        list(RayEngine(workers=2).map_list(_absent_extra, lambda worker, item: item, [1, 2, 3]))
