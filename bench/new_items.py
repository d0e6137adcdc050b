"""Is the precision reported for new items the precision they get? (issue 14)

For each data set and repetition: hold out a quarter of the rows as "new items", draw random
labels within each class from the rest (the pool), fit, then label the held-out items with
``AutoLabeler.predict`` (the scorer and thresholds `labelseed label` uses) and compare the
run's expected precision for new items (``new_item_thresholds_``) with the precision they
realize against the hidden truth; the pool's own estimate beside it.

    python bench/new_items.py --datasets digits,fashion,wordnet --reps 10 --per-class 10
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, load  # noqa: E402


def one(X: np.ndarray, y: np.ndarray, per_class: int, rep: int) -> dict:
    from labelseed import AutoLabeler

    rng = np.random.default_rng(rep)
    perm = rng.permutation(len(y))
    new, pool = np.sort(perm[: len(y) // 4]), np.sort(perm[len(y) // 4:])
    Xp, yp = X[pool], y[pool]
    labels = np.full(len(pool), None, dtype=object)
    for c in np.unique(yp):
        rows = np.flatnonzero(yp == c)
        labels[rng.choice(rows, min(per_class, len(rows)), replace=False)] = c
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = AutoLabeler(random_state=rep).fit(Xp, labels)
    got = m.predict(X[new])
    acc = np.array([v is not None for v in got])
    th = m.new_item_thresholds_
    a = m.result_.accepted
    return {
        "new_coverage": float(acc.mean()),
        "new_expected": th.expected_precision if acc.any() else None,
        "new_low": th.precision_low if acc.any() else None,
        "new_realized": float(np.mean(got[acc] == y[new][acc])) if acc.any() else None,
        "pool_coverage": m.result_.coverage,
        "pool_expected": m.result_.expected_precision if len(a) else None,
        "pool_realized": float(np.mean(m.result_.labels[a] == yp[a])) if len(a) else None,
    }


def summarise(rows: list[dict], prefix: str) -> dict:
    ok = [r for r in rows if r[f"{prefix}_realized"] is not None]
    if not ok:
        return {"runs_accepting": 0}
    e = np.array([r[f"{prefix}_expected"] for r in ok])
    z = np.array([r[f"{prefix}_realized"] for r in ok])
    out = {"runs_accepting": len(ok), "coverage": float(np.mean([r[f"{prefix}_coverage"] for r in rows])),
           "bias": float(np.mean(e - z)), "rmse": float(np.sqrt(np.mean((e - z) ** 2))),
           "expected": float(e.mean()), "realized": float(z.mean())}
    if prefix == "new":
        out["below_low"] = float(np.mean(z < np.array([r["new_low"] for r in ok])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="digits,fashion,wordnet")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--out", default=str(RESULTS / "new_items.json"))
    args = ap.parse_args()
    table = {}
    for name in args.datasets.split(","):
        if name == "fashion":
            X, y = load("fashion", n=20_000)
        elif name == "wordnet":
            X, y = load("wordnet", per_class=100_000)
        else:
            X, y = load(name)
        y = np.asarray(y).astype(str)
        rows = [one(X, y, args.per_class, r) for r in range(args.reps)]
        table[name] = {"new": summarise(rows, "new"), "pool": summarise(rows, "pool"), "runs": rows}
        print(name, json.dumps({k: table[name][k] for k in ("new", "pool")}), flush=True)
    RESULTS.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
