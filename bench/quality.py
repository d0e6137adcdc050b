"""Precision, coverage, time and memory side by side, on real labeled data.

For each data set and k labels per class (chosen at random, several seeds), the
rest hidden, at target precision 0.95 per class:

- labelseed (AutoLabeler defaults), and with ``confidence_level=0.5`` (thresholds
  on the point estimate rather than a lower bootstrap quantile),
- scikit-learn LabelSpreading (knn kernel, and rbf where the pool is small
  enough for its dense n x n matrix) scored through labelseed's same
  cross-validated per-class thresholding,
- the talk's SelfTrainingClassifier + SVC method with its two bugs fixed.

    python bench/quality.py --datasets digits fashion wordnet --k 3 5 10 --seeds 5
    python bench/quality.py --datasets fashion wordnet --n 2000 --k 10 --seeds 3   # with the talk method
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    CACHE, RESULTS, Outcome, codes_of, load, peak_rss_kib, reset_peak_rss, sklearn_spreading_scorer, talk_method,
    thresholded,
)

from labelseed import AutoLabeler  # noqa: E402
from labelseed.datasets import hide_labels  # noqa: E402
from labelseed.graph import normalize_rows  # noqa: E402

TARGET = 0.95


def run_method(name: str, X: np.ndarray, seed_labels: np.ndarray, classes: np.ndarray, seed: int) -> Outcome:
    codes = codes_of(seed_labels, classes)
    if name.startswith("labelseed"):
        level = 0.5 if name == "labelseed (cl 0.5)" else 0.8  # confidence_level: how conservative
        m = AutoLabeler(target_precision=TARGET, confidence_level=level, random_state=seed).fit(X, seed_labels)
        r = m.result_
        return Outcome(r.accepted, r.labels[r.accepted].astype(str), r.expected_precision)
    if name == "sklearn-knn":
        return thresholded(sklearn_spreading_scorer(X, "knn", len(classes)), codes, classes, TARGET, seed)
    if name == "sklearn-rbf":
        return thresholded(sklearn_spreading_scorer(X, "rbf", len(classes)), codes, classes, TARGET, seed)
    if name == "talk (fixed)":
        return talk_method(X, codes, classes, TARGET)
    raise ValueError(name)


def child(spec: dict) -> dict:
    """One run in a fresh process; peak memory is the kernel's high-water mark (reset just
    before the run) above the resident size with the data loaded."""
    z = np.load(spec["data"], allow_pickle=False)
    X, y = z["X"], z["y"]
    classes = np.unique(y)
    seed_labels = hide_labels(y, spec["k"], spec["seed"])
    base = reset_peak_rss()
    t = time.perf_counter()
    out = run_method(spec["method"], X, seed_labels, classes, spec["seed"])
    dt = time.perf_counter() - t
    peak = peak_rss_kib()
    n_pool = int((seed_labels == None).sum())  # noqa: E711
    right = int((out.labels == y[out.accepted]).sum())
    return dict(dataset=spec["dataset"], n=len(y), k=spec["k"], method=spec["method"], seed=spec["seed"],
                n_auto=len(out.accepted), correct=right,
                realized=right / len(out.accepted) if len(out.accepted) else None,
                expected=None if np.isnan(out.expected_precision) else out.expected_precision,
                coverage=len(out.accepted) / n_pool, seconds=dt, peak_mib=max(peak - base, 0) / 1024)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", nargs="+", default=["digits", "fashion", "wordnet"])
    p.add_argument("--k", nargs="+", type=int, default=[3, 5, 10])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--n", type=int, default=10_000, help="subsample larger data sets to n rows (0: all)")
    p.add_argument("--methods", nargs="+",
                   default=["labelseed", "labelseed (cl 0.5)", "sklearn-knn", "sklearn-rbf", "talk (fixed)"])
    p.add_argument("--rbf-max-rows", type=int, default=6000)
    p.add_argument("--talk-max-rows", type=int, default=2000)
    p.add_argument("--talk-seeds", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS / "quality.json"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return
    rows = []
    CACHE.mkdir(exist_ok=True)
    for ds in a.datasets:
        try:
            X, y = load(ds, a.n or None)
        except FileNotFoundError as exc:
            print(f"skip {ds}: {exc}")
            continue
        data = CACHE / f"quality_{ds}_{len(y)}.npz"
        np.savez(data, X=normalize_rows(np.asarray(X, dtype=np.float32)), y=np.asarray(y).astype(str))
        for k in a.k:
            for method in a.methods:
                if method == "sklearn-rbf" and len(y) > a.rbf_max_rows:
                    continue
                if method == "talk (fixed)" and len(y) > a.talk_max_rows:
                    continue
                n_seeds = a.talk_seeds if method == "talk (fixed)" else a.seeds
                for seed in range(n_seeds):
                    spec = dict(data=str(data), dataset=ds, k=k, method=method, seed=seed)
                    res = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                         capture_output=True, text=True)
                    if res.returncode != 0:
                        raise RuntimeError(res.stderr)
                    rec = json.loads(res.stdout.strip().splitlines()[-1])
                    rows.append(rec)
                    print(json.dumps(rec), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    print(table(rows))


def table(rows: list[dict]) -> str:
    """Markdown: means over seeds; 'pooled' precision = all right / all accepted over seeds."""
    out = ["| data (n) | k | method | seeds | realized precision (pooled) | expected | coverage | time (s) | peak MiB |",
           "|---|---|---|---|---|---|---|---|---|"]
    keys = []
    for r in rows:
        key = (r["dataset"], r["n"], r["k"], r["method"])
        if key not in keys:
            keys.append(key)
    for key in keys:
        rs = [r for r in rows if (r["dataset"], r["n"], r["k"], r["method"]) == key]
        acc = sum(r["n_auto"] for r in rs)
        pooled = sum(r["correct"] for r in rs) / acc if acc else float("nan")
        exp = [r["expected"] for r in rs if r["expected"] is not None]
        out.append(f"| {key[0]} ({key[1]}) | {key[2]} | {key[3]} | {len(rs)} | {pooled:.3f} | "
                   f"{np.mean(exp) if exp else float('nan'):.3f} | {np.mean([r['coverage'] for r in rs]):.3f} | "
                   f"{np.median([r['seconds'] for r in rs]):.2f} | {np.median([r['peak_mib'] for r in rs]):.0f} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
