"""Cold start: which rows to label first. For budgets of 1, 2, 5 and 10 labels per class
(budget = that many times the number of classes), each strategy and random picks of the same
size (5 seeds): how many classes the picks cover, and the downstream result when the picks'
true labels are revealed (the benchmark plays the person) and the core engine runs at target
precision 0.95: coverage of the rest of the pool and realized precision of the auto-labels.

    python bench/select_coverage.py --datasets digits fashion wordnet --seeds 5

wordnet needs `python bench/embed_wordnet.py` first. Writes bench/results/select_coverage.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, load  # noqa: E402

from labelseed import AutoLabeler  # noqa: E402
from labelseed.exceptions import InputError  # noqa: E402
from labelseed.graph import build_knn_graph, normalize_rows  # noqa: E402
from labelseed.select import STRATEGIES, select  # noqa: E402

BUDGETS = (1, 2, 5, 10)


def pick(X, graph, strategy: str, budget: int, seed: int) -> np.ndarray:
    if strategy == "random":
        return np.random.default_rng(seed).choice(len(X), budget, replace=False)
    if strategy in ("typiclust", "facility"):  # these use the graph: reuse the one built
        from labelseed.select import facility_location, typiclust

        fn = typiclust if strategy == "typiclust" else facility_location
        return fn(X, budget, graph=graph, random_state=seed).rows
    return select(X, budget, strategy, random_state=seed).rows


def oracle_coverage(pred: np.ndarray, conf: np.ndarray, y: np.ndarray, target: float = 0.95) -> float:
    """Share of rows in the largest most-confident set whose predictions are right at >= `target`
    (one threshold chosen with the hidden truth): how good the seed's propagation is, whether or
    not a method could certify it from the seed alone."""
    order = np.argsort(-conf, kind="stable")
    right = np.cumsum(pred[order] == y[order]) / np.arange(1, len(y) + 1)
    ok = np.flatnonzero(right >= target)
    return float((ok[-1] + 1) / len(y)) if len(ok) else 0.0


def downstream(X, y, graph, rows: np.ndarray, seed: int) -> tuple[float, float | None, float]:
    """Coverage at target precision 0.95, realized precision, oracle coverage; labels on `rows` only."""
    from labelseed.spreading import spread

    free = np.setdiff1d(np.arange(len(y)), rows)
    classes = np.unique(y)
    codes = np.full(len(y), -1)
    codes[rows] = np.searchsorted(classes, y[rows])
    from labelseed.spreading import normalized_affinity

    sc = spread(normalized_affinity(graph.affinity()), codes, len(classes), 0.9)
    pred = np.where(sc.predicted >= 0, classes[np.maximum(sc.predicted, 0)], "")
    oracle = oracle_coverage(pred[free], sc.confidence[free], y[free])
    labels = np.full(len(y), None, dtype=object)
    labels[rows] = y[rows]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = AutoLabeler(target_precision=0.95, random_state=seed).fit(X, labels, graph=graph).result_
    except InputError:  # e.g. one class only: nothing can be auto-labeled
        return 0.0, None, oracle
    a = r.accepted
    return r.coverage, (float((r.labels[a] == y[a]).mean()) if len(a) else None), oracle


def parse_args() -> argparse.Namespace:
    """The options shared with select_certify.py."""
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", nargs="+", default=["digits", "fashion", "wordnet"])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--seeds", type=int, default=5)
    return p.parse_args()


def prepared(names: list[str], n: int):  # type: ignore[no-untyped-def]
    """Each data set's name, unit vectors, labels and kNN graph (built once, shared by all picks)."""
    for ds in names:
        X, y = load(ds, n)
        X = normalize_rows(np.asarray(X, dtype=np.float32))
        yield ds, X, y, build_knn_graph(X, 10, normalized=True)


def main() -> None:
    a = parse_args()
    results = []
    print("| data (n) | labels per class | strategy | classes covered | coverage at 0.95 | realized precision "
          "| oracle coverage at 0.95 | select s |")
    print("|---|---|---|---|---|---|---|---|")
    for ds, X, y, graph in prepared(a.datasets, a.n):
        n_classes = len(np.unique(y))
        for per in BUDGETS:
            for strategy in ("random", *STRATEGIES):
                runs = []
                for seed in range(a.seeds):
                    t = time.perf_counter()
                    rows = pick(X, graph, strategy, per * n_classes, seed)
                    secs = time.perf_counter() - t
                    cov, prec, oracle = downstream(X, y, graph, rows, seed)
                    runs.append(dict(seed=seed, covered=len(np.unique(y[rows])), coverage=cov, realized=prec,
                                     oracle=oracle, seconds=secs))
                results.append(dict(dataset=ds, n=len(y), n_classes=n_classes, per_class=per, strategy=strategy,
                                    runs=runs))
                prec = [r["realized"] for r in runs if r["realized"] is not None]
                print(f"| {ds} ({len(y)}) | {per} | {strategy} | {np.mean([r['covered'] for r in runs]):.1f} / "
                      f"{n_classes} | {np.mean([r['coverage'] for r in runs]):.3f} | "
                      f"{np.mean(prec) if prec else float('nan'):.3f} | {np.mean([r['oracle'] for r in runs]):.3f} | "
                      f"{np.median([r['seconds'] for r in runs]):.2f} |", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "select_coverage.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
