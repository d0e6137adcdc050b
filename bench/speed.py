"""Speed and memory of the whole run (graph + 5-fold calibration + final labeling).

A: n = 20,000 x 384 real vectors (Fashion-MNIST, PCA-384), 10 labels per class:
   labelseed (default, and --fast: spreading alone with per-class thresholds, the
   previous default) vs a single scikit-learn LabelSpreading(kernel='knn',
   n_neighbors=10) fit + predict_proba on the same data (issue 14's baseline; labelseed's
   graph has 10 neighbours too; `--sklearn-7` adds scikit-learn's default of 7 beside it;
   `--auto` adds --graph-space auto, writing speed_<datasets>_auto.json);
   median of --repeats runs each, every run in a fresh process, in one benchmark run.
B: n = 1,000,000 x 384 float32 (synthetic clustered data: no real labeled set
   that size installs offline), in a child process whose peak RSS is read from
   the OS; also the kNN graph's recall@10 against exact for 1,000 sampled rows.

    python bench/speed.py --repeats 3 --big 1000000
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import CACHE, RESULTS, load  # noqa: E402


ONE_RUN = r"""
import json, sys, time, warnings
import numpy as np
sys.path.insert(0, {bench!r})
from _common import peak_rss_kib, reset_peak_rss
from labelseed.datasets import hide_labels
z = np.load({data!r})
X, y = z["X"], z["y"]
seed = hide_labels(y, 10, 0)
base = reset_peak_rss()
if {which!r}.startswith("labelseed"):
    import faiss, sklearn.model_selection  # imported before timing, as LabelSpreading is below
    from labelseed import AutoLabeler
    # labelseed_fast: --fast, spreading alone with per-class thresholds (the previous default)
    # labelseed_auto: --graph-space auto, the raw and the whitened graph, chosen out of fold
    params = {{"labelseed_fast": dict(method="spreading", per_class=True),
               "labelseed_auto": dict(graph_space="auto")}}.get({which!r}, {{}})
    t = time.perf_counter()
    m = AutoLabeler(random_state=0, **params).fit(X, seed)
    dt = time.perf_counter() - t
    extra = dict(stages=m.timings_, nprobe=m.graph_.nprobe, recall=m.graph_.recall_estimate)
else:
    from sklearn.semi_supervised import LabelSpreading
    classes = np.unique(y)
    codes = np.full(len(y), -1)
    lab = seed != None
    codes[lab] = np.searchsorted(classes, seed[lab].astype(str))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        s = LabelSpreading(kernel="knn", n_neighbors={sk_k}).fit(X, codes)
        s.predict_proba(X)
        dt = time.perf_counter() - t
    extra = {{}}
peak = peak_rss_kib()
print(json.dumps(dict(seconds=dt, peak_mib=(peak - base) / 1024, **extra)))
"""


#: scikit-learn's LabelSpreading(knn) neighbours: issue 14's baseline, as labelseed's graph
SKLEARN_NEIGHBORS = 10


def noisy_clusters(n: int = 20_000, dim: int = 384, k: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Issue 14's noisy clusters: row = 0.35 c_y + 4 e / sqrt(dim), c and e standard normal, then
    L2-normalised (within-class structure is noise: hard for an IVF index)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((k, dim))
    y = rng.integers(0, k, n)
    X = 0.35 * c[y] + 4 * rng.standard_normal((n, dim)) / np.sqrt(dim)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y.astype(str)


def wordnet_13899() -> tuple[np.ndarray, np.ndarray]:
    """WordNet noun glosses with MiniLM, at most 600 per lexicographer class (13,899 rows when
    bench/embed_wordnet.py --per-class 600 made them; else drawn from the full cache)."""
    try:
        return load("wordnet", per_class=600)
    except FileNotFoundError as small:
        try:
            X, y = load("wordnet", per_class=100_000)
        except FileNotFoundError:
            raise small from None  # the quicker cache to make (1.5 min here, the full one 8.5)
        rng = np.random.default_rng(0)
        keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:600] for c in np.unique(y)]))
        return X[keep], y[keep]


def part_a(repeats: int, dataset: str = "fashion", sklearn_7: bool = False, auto: bool = False) -> dict:
    """Each run in a fresh process, alternating: the two libraries' OpenMP thread pools
    slow each other down when they share a process, which would flatter labelseed."""
    if dataset == "fashion":
        X, y = load("fashion", 20_000)
    elif dataset == "noisy":
        X, y = noisy_clusters()
    else:
        X, y = wordnet_13899()
    data = CACHE / f"speed_{dataset}_{len(y)}.npz"
    CACHE.mkdir(exist_ok=True)
    np.savez(data, X=X, y=y.astype(str))
    whiches = (["labelseed", "labelseed_fast"] + (["labelseed_auto"] if auto else []) + ["sklearn_knn"]
               + (["sklearn_knn7"] if sklearn_7 else []))
    res: dict[str, list] = {w: [] for w in whiches}
    details = []
    for _ in range(repeats):
        for which in whiches:
            code = ONE_RUN.format(bench=str(Path(__file__).parent), which=which, data=str(data),
                                  sk_k=7 if which == "sklearn_knn7" else SKLEARN_NEIGHBORS)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(out.stderr)
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            res[which].append(rec)
            details.append({"which": which, **rec})
            print(json.dumps(details[-1]), flush=True)
    med = {k: float(np.median([r["seconds"] for r in v])) for k, v in res.items()}
    med.update({f"{k}_peak_mib": float(np.median([r["peak_mib"] for r in v])) for k, v in res.items()})
    med["speedup"] = med["sklearn_knn"] / med["labelseed"]
    med["speedup_fast"] = med["sklearn_knn"] / med["labelseed_fast"]
    if auto:
        med["speedup_auto"] = med["sklearn_knn"] / med["labelseed_auto"]
    if sklearn_7:
        med["speedup_vs_k7"] = med["sklearn_knn7"] / med["labelseed"]
        med["speedup_fast_vs_k7"] = med["sklearn_knn7"] / med["labelseed_fast"]
    med["sklearn_n_neighbors"] = SKLEARN_NEIGHBORS
    med["repeats"] = repeats
    med["runs"] = details
    return med


CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {bench!r})
from _common import synthetic_clustered
from labelseed import AutoLabeler
from labelseed.graph import normalize_rows
n = {n}
t0 = time.perf_counter()
X, y = synthetic_clustered(n, 384, seed=0)
gen = time.perf_counter() - t0
rng = np.random.default_rng(0)
codes = np.full(n, -1)
for c in np.unique(y):
    pick = rng.choice(np.flatnonzero(y == c), 10, replace=False)
    codes[pick] = c
t = time.perf_counter()
m = AutoLabeler(random_state=0).fit(X, codes)
run = time.perf_counter() - t
r = m.result_
acc = r.accepted
realized = float((r.labels[acc].astype(int) == y[acc]).mean()) if len(acc) else None
rows = rng.choice(n, 1000, replace=False)
Xn = normalize_rows(X[rows])
norms = np.linalg.norm(X, axis=1)
hits = 0
for i, q in zip(rows, Xn):
    s = (X @ q) / norms  # cosine, without a normalised copy of X
    s[i] = -np.inf
    top = np.argpartition(-s, 10)[:10]
    hits += len(set(top.tolist()) & set(m.graph_.indices[i].tolist()))
print(json.dumps(dict(n=n, generate_s=gen, run_s=run, stages=m.timings_, graph=m.graph_.method,
    nprobe=m.graph_.nprobe, recall_estimate=m.graph_.recall_estimate,
    recall_at_10=hits / 10000, coverage=r.coverage, expected_precision=r.expected_precision, realized=realized,
    peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)))
"""


def part_b(n: int) -> dict:
    code = CHILD.format(bench=str(Path(__file__).parent), n=n)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s_including_data_generation"] = wall
    res["child_peak_rss_gib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return res


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--big", type=int, default=1_000_000, help="rows for part B (0 to skip)")
    p.add_argument("--skip-a", action="store_true")
    p.add_argument("--datasets", default="fashion",
                   help="part A data, comma-separated: fashion (20k), noisy (issue 14's 20k noisy clusters), wordnet")
    p.add_argument("--sklearn-7", action="store_true",
                   help="also time scikit-learn at its default n_neighbors=7 (runs before 2026-12-03 used it)")
    p.add_argument("--auto", action="store_true", help="also time --graph-space auto (two graphs)")
    a = p.parse_args()
    results = {}
    if not a.skip_a:
        for name in a.datasets.split(","):
            key = "n20k" if name == "fashion" else f"a_{name}"
            results[key] = part_a(a.repeats, name, a.sklearn_7, a.auto)
            summary = {k: v for k, v in results[key].items() if k != "runs"}
            print(name, json.dumps(summary), flush=True)
    if a.big:
        results["big"] = part_b(a.big)
        print(json.dumps(results["big"], indent=1), flush=True)
    RESULTS.mkdir(exist_ok=True)
    name = "speed.json" if a.datasets == "fashion" else f"speed_{a.datasets.replace(',', '_')}.json"
    name = name.replace(".json", "_auto.json") if a.auto else name
    (RESULTS / name).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
