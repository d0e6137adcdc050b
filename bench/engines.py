"""The local engine against Ray with 1 and 2 workers (issue 15), on this machine.

Embedding (hashing and MiniLM, a project of texts) and labeling new items (`labelseed label`
against a run on issue 14's real-like pool), each through the real entry point in its own
process; Ray's own overhead (starting a local cluster, starting actors) is measured apart
and shown beside the totals. Every configuration is run `--repeats` times; medians.

    python bench/engines.py --texts-hashing 100000 --texts-minilm 3000 --pool 200000 --new 200000
    python bench/engines.py --stages fit     # `autolabel` (the kNN graph's search) only

`fit`: `autolabel` of the real-like pool on each engine, the graph's search on the workers.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, real_like  # noqa: E402

EXE = str(Path(sys.executable).parent / "labelseed")
WORDS = {"animal": "dog cat horse cow sheep goat lion tiger wolf bear",
         "food": "bread cheese apple rice soup pasta salad butter honey plum",
         "tool": "hammer wrench saw drill chisel pliers shovel rake axe file"}


def _time(args: list[str], address: str | None = None) -> float:
    """Seconds of one `labelseed` command; with `address`, joining that Ray cluster."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if address:
        env["RAY_ADDRESS"] = address
    t = time.perf_counter()
    r = subprocess.run([EXE, *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"labelseed {' '.join(args)}: {r.stderr[-1500:]}")
    return time.perf_counter() - t


def real_like_task(work: Path, n_pool: int, n_new: int = 0) -> None:
    """work/pool.npy (issue 14's real-like shape), work/new.npy (`n_new` more rows, when asked)
    and work/labels.csv: 25 random labels for each of the 20 classes."""
    X, y = real_like(n_pool + n_new, seed=3)
    np.save(work / "pool.npy", X[:n_pool])
    if n_new:
        np.save(work / "new.npy", X[n_pool:])
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.choice(np.flatnonzero(y[:n_pool] == c), 25, replace=False) for c in range(20)])
    (work / "labels.csv").write_text("id,label\n" + "".join(f"{r},c{y[r]}\n" for r in rows))


def ray_overhead() -> dict:
    """Seconds to start a local cluster, and to start one actor and get a first answer."""
    code = """
import time, json
t = time.perf_counter()
import ray
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
init = time.perf_counter() - t
@ray.remote
class A:
    def ping(self): return 1
t = time.perf_counter(); a = A.remote(); ray.get(a.ping.remote()); actor = time.perf_counter() - t
print(json.dumps({"cluster_start_s": init, "actor_start_s": actor}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def texts(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    names = list(WORDS)
    with open(path, "w") as f:
        f.write("id,text\n")
        for i in range(n):
            w = WORDS[names[i % 3]].split()
            f.write(f"t{i},a {' and '.join(rng.choice(w, 6))} number {i}\n")


def embedding(n: int, model: str, repeats: int, work: Path) -> dict:
    texts(work / "pool.csv", n)
    out: dict = {"items": n, "model": model}
    for name, extra in (("local", []), ("ray 1 worker", ["--engine", "ray", "--workers", "1"]),
                        ("ray 2 workers", ["--engine", "ray", "--workers", "2"])):
        runs = []
        for _ in range(repeats):
            proj = work / "proj"
            shutil.rmtree(proj, ignore_errors=True)
            _time(["init", str(proj), "--data", str(work / "pool.csv"), "--text-column", "text"])
            runs.append(_time(["embed", str(proj), "--model", model, "--quiet", *extra]))
        out[name] = {"seconds": statistics.median(runs), "items_per_s": n / statistics.median(runs)}
        print(model, name, json.dumps(out[name]), flush=True)
    return out


def labeling(n_pool: int, n_new: int, repeats: int, work: Path) -> dict:
    real_like_task(work, n_pool, n_new)
    _time(["autolabel", "--embeddings", str(work / "pool.npy"), "--labels", str(work / "labels.csv"), "--out",
           str(work / "run"), "--quiet", "--no-cache"])
    out: dict = {"pool": n_pool, "new": n_new}
    for name, extra in (("local", []), ("ray 1 worker", ["--engine", "ray", "--workers", "1"]),
                        ("ray 2 workers", ["--engine", "ray", "--workers", "2"])):
        runs = [_time(["label", "--run", str(work / "run"), "--embeddings", str(work / "new.npy"), "--out",
                       str(work / "out.parquet"), "--force", "--quiet", *extra]) for _ in range(repeats)]
        out[name] = {"seconds": statistics.median(runs), "items_per_s": n_new / statistics.median(runs)}
        print("label", name, json.dumps(out[name]), flush=True)
    return out


def fitting(n_pool: int, repeats: int, work: Path) -> dict:
    """`autolabel` of the real-like pool: the kNN graph's search on each engine, the rest local."""
    real_like_task(work, n_pool)
    out: dict = {"pool": n_pool}
    for name, extra in (("local", []), ("ray 1 worker", ["--engine", "ray", "--workers", "1"]),
                        ("ray 2 workers", ["--engine", "ray", "--workers", "2"])):
        runs, graph = [], []
        for _ in range(repeats):
            runs.append(_time(["autolabel", "--embeddings", str(work / "pool.npy"), "--labels", str(work / "labels.csv"),
                               "--out", str(work / "run"), "--force", "--quiet", "--no-cache", *extra]))
            summary = json.loads((work / "run" / "summary.json").read_text())
            graph.append(summary["timings"]["graph"])
        # the graph must be the local one (same nprobe, same sample recall), not only as fast
        out[name] = {"seconds": statistics.median(runs), "graph_s": statistics.median(graph),
                     "nprobe": summary["graph_nprobe"], "recall": summary["graph_recall"],
                     "coverage": summary["coverage"], "expected_precision": summary["expected_precision"]}
        print("fit", name, json.dumps(out[name]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts-hashing", type=int, default=100_000)
    ap.add_argument("--texts-minilm", type=int, default=3_000)
    ap.add_argument("--pool", type=int, default=200_000)
    ap.add_argument("--new", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stages", default="embed,label,fit", help="comma-separated: embed, label, fit")
    ap.add_argument("--out", default=str(RESULTS / "engines.json"))
    args = ap.parse_args()
    stages = set(args.stages.split(","))
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}  # other stages' results stay
    results["ray_overhead"] = ray_overhead()
    print("overhead", json.dumps(results["ray_overhead"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    if "embed" in stages:
        with tempfile.TemporaryDirectory(dir=RESULTS) as d:
            results["embed_hashing"] = embedding(args.texts_hashing, "hashing", args.repeats, Path(d))
        with tempfile.TemporaryDirectory(dir=RESULTS) as d:
            results["embed_minilm"] = embedding(args.texts_minilm, "all-MiniLM-L6-v2", args.repeats, Path(d))
    if "label" in stages:
        with tempfile.TemporaryDirectory(dir=RESULTS) as d:
            results["label"] = labeling(args.pool, args.new, args.repeats, Path(d))
    if "fit" in stages:
        with tempfile.TemporaryDirectory(dir=RESULTS) as d:
            results["fit"] = fitting(args.pool, args.repeats, Path(d))
    out_path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
