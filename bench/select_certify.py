"""Cold start at 1 and 2 labels per class: can anything be *certified* at target precision 0.95?

Per-class thresholds need `min_support` (3) held-out seed rows above each class's threshold, so
at 1-2 labels per class they certify nothing whatever the picks (bench/select_coverage.py shows
0 for every strategy). This runs the core engine's other mode, one global threshold
(`per_class=False`), whose support is pooled over classes, on the same picks: coverage of the
rest of the pool, realized precision (hidden truth) and the engine's own expected precision,
for each strategy against random picks, 5 seeds.

    python bench/select_certify.py --datasets digits fashion wordnet --seeds 5
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS  # noqa: E402
from select_coverage import parse_args, pick, prepared  # noqa: E402

from labelseed import AutoLabeler  # noqa: E402
from labelseed.exceptions import InputError  # noqa: E402
from labelseed.select import STRATEGIES  # noqa: E402


def main() -> None:
    a = parse_args()
    results = []
    print("| data (n) | labels per class | strategy | classes with >= 2 labels | coverage at 0.95 (global) "
          "| realized precision | expected precision |")
    print("|---|---|---|---|---|---|---|")
    for ds, X, y, graph in prepared(a.datasets, a.n):
        classes = np.unique(y)
        for per in (1, 2):
            for strategy in ("random", *STRATEGIES):
                runs = []
                for seed in range(a.seeds):
                    rows = pick(X, graph, strategy, per * len(classes), seed)
                    labels = np.full(len(y), None, dtype=object)
                    labels[rows] = y[rows]
                    counts = np.unique(y[rows], return_counts=True)[1]
                    rec = dict(seed=seed, classes_2plus=int((counts >= 2).sum()), coverage=0.0, realized=None,
                               expected=None)
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            r = AutoLabeler(target_precision=0.95, per_class=False, random_state=seed).fit(
                                X, labels, graph=graph).result_
                        acc = r.accepted
                        rec.update(coverage=r.coverage,
                                   realized=float((r.labels[acc] == y[acc]).mean()) if len(acc) else None,
                                   expected=r.expected_precision if len(acc) else None)
                    except InputError:  # e.g. every pick in one class: nothing can be certified
                        pass
                    runs.append(rec)
                results.append(dict(dataset=ds, n=len(y), per_class=per, strategy=strategy, runs=runs))
                real = [r["realized"] for r in runs if r["realized"] is not None]
                exp = [r["expected"] for r in runs if r["expected"] is not None]
                # realized pooled as a mean over the seeds that accepted anything
                print(f"| {ds} ({len(y)}) | {per} | {strategy} | {np.mean([r['classes_2plus'] for r in runs]):.1f} | "
                      f"{np.mean([r['coverage'] for r in runs]):.3f} | "
                      f"{np.mean(real) if real else float('nan'):.3f} ({len(real)}/{len(runs)} seeds) | "
                      f"{np.mean(exp) if exp else float('nan'):.3f} |", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "select_certify.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
