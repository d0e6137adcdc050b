"""Is the precision labelseed reports the precision a user gets?

For each data set x labeling scheme, many repetitions with fresh labels: fit at target 0.95,
then compare what was reported (expected precision, its interval) with the precision measured
against the hidden truth on the accepted pool rows, per class and pooled.

    python bench/honesty.py                       # every data set and scheme, 20 repetitions
    python bench/honesty.py --datasets digits gaussians --reps 5

Labeling schemes (the same total budget, 10 labels per class):
- ``random``: uniformly random rows of the pool (a class gets labels in proportion to its size);
- ``per_class``: a fixed number of random rows in each class;
- ``loop``: the default ``select`` (4 per class), then 3 ``query`` rounds (2 per class each),
  the truth revealed for every pick; these labels are *picked*, so they may not calibrate;
- ``drawn``: the same loop drawn at random with known probabilities (``select --strategy
  stratified``, then ``query --strategy sampled``): every label calibrates, weighted by 1 / its
  probability of being drawn;
- each of these ``+audit``: then a stratified audit of 50 accepted rows per class, verified,
  and thresholds certified by the audit (``AutoLabeler.certify_with_audit``).

Writes ``bench/results/honesty.json`` and prints the table for bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, load  # noqa: E402

from labelseed import AutoLabeler  # noqa: E402
from labelseed.graph import build_knn_graph  # noqa: E402
from labelseed.space import fit_space_map  # noqa: E402

SCHEMES = ["random", "per_class", "loop", "drawn", "random+audit", "per_class+audit", "loop+audit", "drawn+audit"]
DATASETS = ["digits", "gaussians", "fashion", "imbalanced", "wordnet"]
PER_CLASS = 10
AUDIT_PER_CLASS = 50
METHOD = "ensemble"  # --method
SPACE = "raw"  # --graph-space
FIT_GRAPH = None  # what every fit gets: the graph of SPACE, or both graphs by space (auto)
SPACE_MAP = None  # the whitened map (labelseed.space.SpaceMap) of the data set being run
IMBALANCED_SHARES = [0.40, 0.20, 0.10, 0.10, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01]


def gaussians(n_per: int = 1000, dim: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping Gaussian classes (about 7% of rows lie nearer another class's mean)."""
    rng = np.random.default_rng(seed)
    centers = 0.8 * rng.standard_normal((3, dim))
    X = np.concatenate([c + rng.standard_normal((n_per, dim)) for c in centers]).astype(np.float32)
    return X, np.repeat(np.array(["a", "b", "c"]), n_per)


def imbalanced(n: int = 14_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST resampled to class shares 40/20/10/10/5/5/4/3/2/1 %."""
    X, y = load("fashion")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    take = np.concatenate([rng.choice(np.flatnonzero(y == c), int(round(s * n)), replace=False)
                           for c, s in zip(classes, IMBALANCED_SHARES)])
    take.sort()
    return X[take], y[take]


def dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "gaussians":
        return gaussians()
    if name == "imbalanced":
        return imbalanced()
    if name == "fashion":
        return load("fashion", n=20_000)
    if name == "wordnet":  # all 82,115 noun glosses, 26 classes (python bench/embed_wordnet.py --per-class 100000)
        return load("wordnet", per_class=100_000)
    return load(name)


def draw_labels(scheme: str, truth: np.ndarray, X: np.ndarray, graph, rng: np.random.Generator,
                rep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Human labels (None = unlabeled), which of them may calibrate, and their design weights."""
    classes = np.unique(truth)
    n, k = len(truth), len(classes)
    y = np.full(n, None, dtype=object)
    if scheme == "random":
        rows = rng.choice(n, PER_CLASS * k, replace=False)
        y[rows] = truth[rows]
        return y, y != None, None  # noqa: E711
    if scheme == "per_class":
        for c in classes:
            rows = rng.choice(np.flatnonzero(truth == c), min(PER_CLASS, int((truth == c).sum())), replace=False)
            y[rows] = truth[rows]
        return y, y != None, None  # noqa: E711
    if scheme == "drawn":  # the loop drawn with known probabilities: every label calibrates, weighted
        from labelseed.autolabeler import query_next
        from labelseed.select import select
        from labelseed.thresholds import design_weights

        weight = np.ones(n)
        sel = select(X, 4 * k, "stratified", random_state=rep)
        y[sel.rows] = truth[sel.rows]
        weight[sel.rows] = design_weights(sel.extra["inclusion"])
        for _ in range(3):
            model = fit(X, y, y != None, rep, weight)  # noqa: E711
            if model is None:
                break
            q = query_next(model, X, y, 2 * k, "sampled", random_state=rep)
            y[q.rows] = truth[q.rows]
            weight[q.rows] = design_weights(q.extra["inclusion"])
        return y, y != None, weight  # noqa: E711
    # the loop: default cold-start picks, then query rounds against fresh fits
    from labelseed.autolabeler import query_next
    from labelseed.select import select

    sel = select(X, 4 * k, "kmeans", random_state=rep)
    y[sel.rows] = truth[sel.rows]
    for _ in range(3):
        model = fit(X, y, None, rep)
        if model is None:
            break
        q = query_next(model, X, y, 2 * k, "abstained", random_state=rep)
        y[q.rows] = truth[q.rows]
    return y, np.zeros(n, dtype=bool), None


def fit(X, y, calibrate, rep, weight=None) -> AutoLabeler | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # spreading = the previous default: spreading alone with per-class thresholds
            params = {"method": "spreading", "per_class": True} if METHOD == "spreading" else {}
            return AutoLabeler(random_state=rep, graph_space=SPACE, **params).fit(
                X, y, graph=FIT_GRAPH, calibrate=calibrate, design_weight=weight, space_map=SPACE_MAP)
        except ValueError as e:  # e.g. too few labels of a class for any fold
            print(f"    fit refused: {e}", file=sys.stderr)
            return None


def measure(result, truth: np.ndarray, classes: np.ndarray) -> dict:
    """Reported vs realized precision, per class and pooled, for one fitted (or audited) result."""
    th = result.thresholds
    acc = result.accepted
    got = result.labels[acc].astype(str)
    right = got == truth[acc]
    per = []
    for row in th.per_class:
        m = got == str(row.label)
        if not m.any():
            continue
        per.append({"label": str(row.label), "expected": row.expected_precision, "low": row.precision_low,
                    "high": row.precision_high, "realized": float(right[m].mean()), "n": int(m.sum()),
                    "meets": bool(row.meets_target)})
    return {"expected": th.expected_precision, "low": th.precision_low, "high": th.precision_high,
            "realized": float(right.mean()) if len(acc) else math.nan, "coverage": th.coverage,
            "trusted": bool(getattr(th, "trusted", True)), "classes": per}


def audit(model: AutoLabeler, truth: np.ndarray, rng: np.random.Generator, rep: int):
    r = model.result_
    lab = r.labels[r.accepted].astype(str)
    rows = []
    for c in np.unique(lab):
        members = r.accepted[lab == c]
        rows.append(rng.choice(members, min(AUDIT_PER_CLASS, len(members)), replace=False))
    rows = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    return model.certify_with_audit(rows, truth[rows])


def summarise(records: list[dict]) -> dict:
    pooled = [r for r in records if r["coverage"] > 0 and not math.isnan(r["expected"])]
    per = [c for r in records for c in r["classes"]]
    cert = [c for c in per if c["meets"]]

    def stats(rows):
        if not rows:
            return {"n": 0}
        e = np.array([x["expected"] for x in rows]) - np.array([x["realized"] for x in rows])
        below = np.array([x["realized"] < x["low"] for x in rows])
        return {"n": len(rows), "bias": float(e.mean()), "rmse": float(np.sqrt((e ** 2).mean())),
                "below_low": float(below.mean()),
                "realized": float(np.mean([x["realized"] for x in rows]))}

    # per class over the repetitions: a class reported >= 0.95 on average must not realize < 0.90 on average
    by_label: dict[str, list[tuple[float, float]]] = {}
    for c in per:
        by_label.setdefault(c["label"], []).append((c["expected"], c["realized"]))
    means = {k: (float(np.mean([e for e, _ in v])), float(np.mean([r for _, r in v]))) for k, v in by_label.items()}
    high = {k: v for k, v in means.items() if v[0] >= 0.95}
    worst = min(high.items(), key=lambda kv: kv[1][1]) if high else None
    return {"reps": len(records), "coverage": float(np.mean([r["coverage"] for r in records])),
            "worst_high_class": None if worst is None else {"label": worst[0], "mean_expected": worst[1][0],
                                                             "mean_realized": worst[1][1]},
            "untrusted": float(np.mean([not r["trusted"] for r in records])),
            "pooled": stats(pooled), "per_class": stats(per), "certified_classes": stats(cert),
            "seconds": float(np.mean([r["seconds"] for r in records])),
            # each certified class of each run, for analyses beyond these means
            "certified": [{k: c.get(k) for k in ("label", "expected", "low", "realized", "n")} for c in cert]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    p.add_argument("--schemes", nargs="+", default=SCHEMES, choices=SCHEMES)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--method", default="ensemble", choices=["ensemble", "spreading"],
                   help="ensemble: the default engine; spreading: the previous default (spreading alone, "
                        "per-class thresholds)")
    p.add_argument("--graph-space", default="raw", choices=["raw", "whitened", "auto"],
                   help="the space of the graph every fit uses (labelseed.space); picks use the raw graph")
    p.add_argument("--out", default=str(RESULTS / "honesty.json"))
    a = p.parse_args()
    global METHOD, SPACE, FIT_GRAPH, SPACE_MAP
    METHOD = a.method
    out_path = Path(a.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for name in a.datasets:
        X, truth = dataset(name)
        truth = truth.astype(str)
        classes = np.unique(truth)
        t = time.perf_counter()
        SPACE = a.graph_space
        graph = build_knn_graph(X, 10, random_state=0)  # picks (select, query) use the raw graph, as the CLI's
        FIT_GRAPH = graph
        if SPACE != "raw":  # no labels: one map and one whitened graph per data set
            SPACE_MAP = fit_space_map(X, "whitened")
            white = build_knn_graph(SPACE_MAP.transform(X), 10, random_state=0, normalized=True)
            FIT_GRAPH = white if SPACE == "whitened" else {"raw": graph, "whitened": white}
        print(f"{name}: {X.shape}, {len(classes)} classes, graph {time.perf_counter() - t:.1f} s", flush=True)
        base_schemes = sorted({s.split("+")[0] for s in a.schemes}, key=SCHEMES.index)
        recs: dict[str, list[dict]] = {s: [] for s in a.schemes}
        for rep in range(a.reps):
            for base in base_schemes:
                rng = np.random.default_rng([rep, SCHEMES.index(base)])
                t = time.perf_counter()
                y, calibrate, weight = draw_labels(base, truth, X, graph, rng, rep)
                model = fit(X, y, calibrate, rep, weight)
                if model is None:
                    continue
                secs = time.perf_counter() - t
                if base in recs:
                    recs[base].append({**measure(model.result_, truth, classes), "seconds": secs})
                if base + "+audit" in recs:
                    res = audit(model, truth, rng, rep) if len(model.result_.accepted) else model.result_
                    recs[base + "+audit"].append({**measure(res, truth, classes), "seconds": secs})
            print(f"  rep {rep + 1}/{a.reps}", flush=True)
        results[name] = {**results.get(name, {}), **{s: summarise(v) for s, v in recs.items() if v}}
        RESULTS.mkdir(exist_ok=True)
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(out_path)
        table(results, [name])


def table(results: dict, names: list[str]) -> None:
    print("| data | labels | coverage | untrusted | pooled bias | pooled RMSE | pooled below low | "
          "per-class bias | per-class RMSE | per-class below low | classes | lowest mean realized of a class "
          "reported >= 0.95 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for s, r in results[name].items():
            po, pc = r["pooled"], r["per_class"]

            def f(d, k):
                return f"{d[k]:+.3f}" if k == "bias" and d.get("n") else (f"{d[k]:.3f}" if d.get("n") else "-")

            w = r.get("worst_high_class")
            worst = "-" if not w else f"{w['mean_realized']:.3f} ({w['label']}, reported {w['mean_expected']:.3f})"
            print(f"| {name} | {s} | {r['coverage']:.3f} | {r['untrusted']:.2f} | {f(po, 'bias')} | {f(po, 'rmse')} | "
                  f"{f(po, 'below_low')} | {f(pc, 'bias')} | {f(pc, 'rmse')} | {f(pc, 'below_low')} | "
                  f"{pc.get('n', 0)} | {worst} |")


if __name__ == "__main__":
    main()
