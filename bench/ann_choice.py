"""Choose the approximate kNN library by measurement.

For each candidate (faiss IVF-Flat, faiss HNSW, hnswlib, usearch, pynndescent) build
the index over all rows and query every row for its k nearest neighbours (the
all-rows kNN graph labelseed needs), then compare against exact neighbours for
a random sample of rows. Reports wall time and recall@k.

    python bench/ann_choice.py --n 200000 --dataset synthetic
    python bench/ann_choice.py --dataset fashion
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _common import synthetic_clustered
from labelseed.datasets import fashion_mnist_vectors


def exact_neighbors(X: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    sims = X[rows] @ X.T
    sims[np.arange(len(rows)), rows] = -np.inf
    idx = np.argpartition(-sims, k, axis=1)[:, :k]
    return idx


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    hits = 0
    for a, e in zip(approx, exact):
        hits += len(set(a.tolist()) & set(e.tolist()))
    return hits / exact.size


def strip_self(I: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((I.shape[0], k), dtype=np.int64)
    for i, row in enumerate(I):
        row = row[row != i]
        out[i] = row[:k] if len(row) >= k else np.pad(row, (0, k - len(row)), constant_values=-1)
    return out


def run_faiss_ivf(X, k, nprobe):
    import faiss
    n, d = X.shape
    nlist = int(4 * np.sqrt(n))
    q = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(q, d, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    train = X[rng.choice(n, min(n, 40 * nlist), replace=False)]
    index.train(train)
    index.add(X)
    index.nprobe = nprobe
    _, I = index.search(X, k + 1)
    return I


def run_faiss_hnsw(X, k, ef):
    import faiss
    index = faiss.IndexHNSWFlat(X.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 40
    index.add(X)
    index.hnsw.efSearch = ef
    _, I = index.search(X, k + 1)
    return I


def run_hnswlib(X, k, ef):
    import hnswlib
    index = hnswlib.Index(space="ip", dim=X.shape[1])
    index.init_index(max_elements=X.shape[0], ef_construction=100, M=16)
    index.add_items(X, num_threads=2)
    index.set_ef(ef)
    I, _ = index.knn_query(X, k=k + 1, num_threads=2)
    return I


def run_usearch(X, k, dtype):
    from usearch.index import Index
    index = Index(ndim=X.shape[1], metric="ip", dtype=dtype, connectivity=16)
    index.add(np.arange(X.shape[0]), X, threads=2)
    m = index.search(X, k + 1, threads=2)
    return m.keys.astype(np.int64)


def run_pynndescent(X, k, _):
    from pynndescent import NNDescent
    nnd = NNDescent(X, n_neighbors=k + 1, metric="dot", n_jobs=2, random_state=0, low_memory=True)
    I, _ = nnd.neighbor_graph
    return I


CANDIDATES = {
    "faiss-ivf-np8": (run_faiss_ivf, 8),
    "faiss-ivf-np16": (run_faiss_ivf, 16),
    "faiss-ivf-np32": (run_faiss_ivf, 32),
    "faiss-hnsw-ef32": (run_faiss_hnsw, 32),
    "hnswlib-ef40": (run_hnswlib, 40),
    "usearch-f16": (run_usearch, "f16"),
    "usearch-f32": (run_usearch, "f32"),
    "pynndescent": (run_pynndescent, None),
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", choices=["synthetic", "fashion"], default="synthetic")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--k", type=int, default=15)
    p.add_argument("--only", nargs="*", default=None)
    a = p.parse_args()
    if a.dataset == "synthetic":
        X, _ = synthetic_clustered(a.n, 384, seed=0)
    else:
        X, _ = fashion_mnist_vectors()
    X = np.ascontiguousarray(X, dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    rows = np.random.default_rng(1).choice(X.shape[0], 1000, replace=False)
    t = time.perf_counter()
    exact = exact_neighbors(X, rows, a.k)
    print(f"dataset={a.dataset} n={X.shape[0]} d={X.shape[1]} k={a.k}; exact sample in {time.perf_counter()-t:.1f}s")
    print("| library | build + query all rows (s) | recall@k |")
    print("|---|---|---|")
    for name, (fn, arg) in CANDIDATES.items():
        if a.only and name not in a.only:
            continue
        t = time.perf_counter()
        I = fn(X, a.k, arg)
        dt = time.perf_counter() - t
        I = strip_self(np.asarray(I)[rows] if False else np.asarray(I), a.k)
        r = recall(I[rows], exact)
        print(f"| {name} | {dt:.1f} | {r:.3f} |", flush=True)


if __name__ == "__main__":
    main()
