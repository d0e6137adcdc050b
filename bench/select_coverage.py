"""Cold-start selection: how many classes a budget of 1, 2 and 5 labels per class covers,
per strategy and for random picks (5 seeds). A first measurement for choosing the default;
the downstream-coverage benchmark of issue 3 is still to be built.

    python bench/select_coverage.py --datasets digits fashion
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import load  # noqa: E402

from labelseed.select import STRATEGIES, select  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", nargs="+", default=["digits", "fashion"])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--seeds", type=int, default=5)
    a = p.parse_args()
    print("| data (n) | labels per class | strategy | classes covered (mean of seeds) | seconds |")
    print("|---|---|---|---|---|")
    for ds in a.datasets:
        X, y = load(ds, a.n)
        n_classes = len(np.unique(y))
        for per in (1, 2, 5):
            budget = per * n_classes
            for strategy in ("random", *STRATEGIES):
                covered, secs = [], []
                for seed in range(a.seeds):
                    t = time.perf_counter()
                    if strategy == "random":
                        rows = np.random.default_rng(seed).choice(len(y), budget, replace=False)
                    else:
                        rows = select(X, budget, strategy, random_state=seed).rows
                    secs.append(time.perf_counter() - t)
                    covered.append(len(np.unique(y[rows])))
                print(f"| {ds} ({len(y)}) | {per} | {strategy} | {np.mean(covered):.1f} / {n_classes} | "
                      f"{np.median(secs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
