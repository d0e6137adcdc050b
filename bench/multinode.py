"""Two Ray nodes on one machine: do `--engine ray` runs whose actors sit on different nodes give
the local engine's outputs? (issue 15)

A cluster of three raylets is started with ``ray.cluster_utils.Cluster``: a head that offers no
CPU (it holds the GCS and the object store the driver talks to) and two nodes of one CPU each.
Every step runs through the real entry point with ``RAY_ADDRESS`` set to that cluster and
``--workers 2``: each actor needs one CPU, so the two actors of a pool can only be placed one
on each node. The same step runs with ``--engine local``; the outputs are compared exactly.
Steps: `embed` (hashing) of a project of texts, `autolabel` of a real-like pool (the kNN graph's
search sharded over the two nodes), `label` of new items against that run.

This is not a cluster: both nodes share this machine's disk, memory bandwidth and 2 cores,
so the times say what the extra raylets cost here, not how a cluster scales.

    python bench/multinode.py [--texts 20000] [--pool 50000] [--new 50000]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS  # noqa: E402
from engines import _time as run  # noqa: E402
from engines import real_like_task, texts  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=20_000)
    ap.add_argument("--pool", type=int, default=50_000)
    ap.add_argument("--new", type=int, default=50_000)
    a = ap.parse_args()
    os.environ.pop("RAY_ADDRESS", None)  # the local runs must not join a cluster; the Ray runs name theirs

    import pandas as pd
    import ray
    from ray.cluster_utils import Cluster

    from labelseed.project import Project

    t = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    alive = [n for n in ray.nodes() if n["Alive"]]
    cpus = {n["NodeID"][:8]: n["Resources"].get("CPU", 0) for n in alive}
    ray.shutdown()
    start_s = time.perf_counter() - t
    print(f"cluster: {len(alive)} nodes, CPUs per node {cpus}, started in {start_s:.1f} s", flush=True)
    out: dict = {"nodes": len(alive), "cpus_per_node": cpus, "cluster_start_s": start_s}
    work = Path(tempfile.mkdtemp(prefix="multinode-"))
    try:
        # embedding
        texts(work / "pool.csv", a.texts)
        vectors = {}
        for name, addr, extra in (("local", None, []), ("ray", cluster.address, ["--engine", "ray", "--workers", "2"])):
            proj = work / f"proj-{name}"
            run(["init", str(proj), "--data", str(work / "pool.csv"), "--text-column", "text"], None)
            s = run(["embed", str(proj), "--model", "hashing", "--quiet", *extra], addr)
            p = Project.open(proj, read_only=True)
            rows, X = p.vectors()
            vectors[name] = (rows, X)
            out[f"embed_{name}_s"] = s
            print(f"embed {a.texts} texts (hashing), {name}: {s:.1f} s", flush=True)
        same = (np.array_equal(vectors["local"][0], vectors["ray"][0])
                and np.array_equal(vectors["local"][1], vectors["ray"][1]))
        out["embed_equal"] = bool(same)
        print(f"embed: vectors equal: {same}", flush=True)

        # fitting (the graph's search sharded over the nodes) and labeling new items
        real_like_task(work, a.pool, a.new)
        fits, labels = {}, {}
        for name, addr, extra in (("local", None, []), ("ray", cluster.address, ["--engine", "ray", "--workers", "2"])):
            run_dir = work / f"run-{name}"
            s = run(["autolabel", "--embeddings", str(work / "pool.npy"), "--labels", str(work / "labels.csv"),
                     "--out", str(run_dir), "--quiet", "--no-cache", *extra], addr)
            summary = json.loads((run_dir / "summary.json").read_text())
            fits[name] = ((pd.read_csv(run_dir / "auto_labels.csv"), pd.read_csv(run_dir / "abstained.csv")), summary)
            out[f"autolabel_{name}_s"] = s
            out[f"graph_{name}"] = {k: summary.get(k) for k in ("graph", "graph_index", "graph_nprobe", "graph_recall")}
            print(f"autolabel {a.pool} rows, {name}: {s:.1f} s (graph {summary['timings']['graph']:.1f} s)", flush=True)
            s = run(["label", "--run", str(run_dir), "--embeddings", str(work / "new.npy"), "--out",
                     str(work / f"new-{name}.parquet"), "--quiet", *extra], addr)
            labels[name] = pd.read_parquet(work / f"new-{name}.parquet")
            out[f"label_{name}_s"] = s
            print(f"label {a.new} new items, {name}: {s:.1f} s", flush=True)
        la, sa = fits["local"]
        lb, sb = fits["ray"]
        keys = ("expected_precision", "expected_precision_interval", "coverage", "classes", "graph_recall")
        out["autolabel_equal"] = bool(la[0].equals(lb[0]) and la[1].equals(lb[1]) and all(sa[k] == sb[k] for k in keys))
        out["label_equal"] = bool(labels["local"].equals(labels["ray"]))
        if not out["autolabel_equal"]:  # e.g. a reduced-space index: sharded re-ranking may keep more candidates
            both = la[0].merge(lb[0], on="id", how="outer", suffixes=("_local", "_ray"))
            out["autolabel_same_label_share"] = float((both["label_local"] == both["label_ray"]).mean())
            out["index"] = sa.get("graph_index")
        print(f"autolabel: labels and estimates equal: {out['autolabel_equal']}; "
              f"label: outputs equal: {out['label_equal']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for n in nodes:
            cluster.remove_node(n)
        cluster.shutdown()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "multinode.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
