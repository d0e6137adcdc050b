"""How much of the pool is certified per human label, side by side, in one run.

For each data set x budget (labels per class, drawn at random within each class) x seed:
- ``default``: labelseed's default engine (label spreading mixed with a linear classifier);
- ``previous``: the previous default (label spreading alone, per-class thresholds);
- ``whitened``: the default engine on a graph built in the pool-whitened space
  (``graph_space="whitened"``, :mod:`labelseed.space`; no labels used by the map);
- ``auto``: both graphs, each fold's and the final one chosen by nested out-of-fold log-loss
  (``graph_space="auto"``);
- ``lr honest``: a logistic regression's scores through labelseed's own (honest) thresholds;
- ``lr naive``: logistic regression + one cross-validated cut (the lowest cut whose out-of-fold
  precision meets the target), the usual baseline; its estimate is its out-of-fold precision;
- ``talk``: the talk's self-training SVC with both bugs fixed (digits only: it does not finish
  in reasonable time on the larger sets);
- ``loop`` / ``random``: :func:`labelseed.simulate.simulate` with the same total budget, 3 rounds
  (cold-start select, then queries, with the default strategies: drawn at random with known
  probabilities, so every label calibrates, weighted), against the same number of uniformly
  random labels;
- ``loop picked``: the previous loop (k-means medoids, then ``abstained`` queries; half of each
  round's labels uniformly random, as picks may not calibrate).
Columns: certified coverage of the unlabeled pool, realized precision (hidden truth), expected
precision, seconds; and for default/previous the certification efficiency: coverage divided by
the coverage of the best single cut on the same scores, found with the hidden truth.

    python bench/label_efficiency.py                          # everything (about 30 min here)
    python bench/label_efficiency.py --datasets digits --seeds 1
    python bench/label_efficiency.py --methods default whitened auto lr --out bench/results/label_efficiency_space.json

Writes ``bench/results/label_efficiency.json`` and ``bench/label_efficiency.png``.
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
from _common import (RESULTS, hindsight_cut, load, load_named, per_class_labels, talk_method,  # noqa: E402
                     thresholded)

from labelseed import AutoLabeler  # noqa: E402
from labelseed.graph import build_knn_graph, normalize_rows  # noqa: E402
from labelseed.simulate import simulate  # noqa: E402
from labelseed.space import fit_space_map  # noqa: E402
from labelseed.spreading import Scores, fit_linear  # noqa: E402

TARGET = 0.95
BUDGETS = [5, 10, 20, 40]
DATASETS = ["digits", "fashion20k", "fashion70k", "wordnet"]


def data(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "wordnet":
        return load("wordnet", per_class=100_000)  # all 82,115 nouns
    return load_named(name)


def outcome(accepted: np.ndarray, labels: np.ndarray, truth: np.ndarray, n_pool: int, expected: float,
            seconds: float) -> dict:
    right = labels == truth[accepted]
    return {"coverage": len(accepted) / n_pool, "realized": float(right.mean()) if len(accepted) else None,
            "expected": None if not np.isfinite(expected) else float(expected), "seconds": round(seconds, 2),
            "classes": int(len(np.unique(labels))) if len(accepted) else 0}


def lr_naive(Xn: np.ndarray, codes: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    from sklearn.model_selection import StratifiedKFold

    lab = np.flatnonzero(codes >= 0)
    n_splits = int(min(5, np.bincount(codes[lab]).min()))
    oof = np.zeros((len(lab), k), dtype=np.float32)
    for tr, te in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(lab, codes[lab]):
        c = np.full(len(codes), -1)
        c[lab[tr]] = codes[lab[tr]]
        oof[te] = fit_linear(Xn, c, k, random_state=seed).probabilities(Xn[lab[te]])
    conf, pred = oof.max(1), oof.argmax(1)
    best, best_prec = 1.0, float("nan")
    for t in np.unique(conf)[::-1]:  # from the top: the lowest cut whose OOF precision meets the target
        m = conf >= t
        prec = float((pred[m] == codes[lab][m]).mean())
        if prec >= TARGET:
            best, best_prec = float(t), prec
    P = fit_linear(Xn, codes, k, random_state=seed).probabilities(Xn)
    unl = np.flatnonzero(codes < 0)
    acc = unl[P[unl].max(1) >= best] if np.isfinite(best_prec) else unl[:0]
    return acc, P[acc].argmax(1), best_prec


def run_one(name: str, X: np.ndarray, truth: np.ndarray, graph, m: int, seed: int, white=None,
            methods: tuple[str, ...] = ("default", "previous", "whitened", "auto", "lr", "talk", "loop")) -> dict:
    """One draw of `m` labels per class, every method of `methods` (lr: both logistic
    regressions, loop: the three simulated loops); `white` is the whitened graph and its map."""
    k = int(truth.max()) + 1
    rng = np.random.default_rng([seed, m])
    codes = per_class_labels(truth, k, m, rng)
    unl = np.flatnonzero(codes < 0)
    row: dict = {"data": name, "per_class": m, "seed": seed, "n_labels": int((codes >= 0).sum())}
    engines = (("default", {}, graph, None), ("previous", {"method": "spreading", "per_class": True}, graph, None),
               ("whitened", {"graph_space": "whitened"}, *(white or (None, None))),
               ("auto", {"graph_space": "auto"}, {"raw": graph, **({"whitened": white[0]} if white else {})},
                white[1] if white else None))
    for key, params, g, space in engines:
        if key not in methods:
            continue
        t = time.perf_counter()
        model = AutoLabeler(random_state=seed, **params).fit(X, codes, graph=g, space_map=space)
        r = model.result_
        o = outcome(r.accepted, r.labels[r.accepted].astype(int), truth, len(unl), r.expected_precision,
                    time.perf_counter() - t)
        final = model.cv_scores_.final
        o["ceiling"] = hindsight_cut(final, truth, unl, TARGET)
        o["efficiency"] = o["coverage"] / o["ceiling"] if o["ceiling"] > 0 else None
        o["mode"] = r.thresholds.mode
        o["linear_weight"] = float(getattr(model, "linear_weight_", 0.0))
        o["graph_space"] = model.graph_space_
        row[key] = o
    if "lr" not in methods:
        return _loops(row, name, X, truth, graph, codes, m, seed, methods)
    Xn = normalize_rows(X)

    def lr_scorer(code_sets):
        return [Scores.from_unnormalized(fit_linear(Xn, c, k, random_state=seed).probabilities(Xn)) for c in code_sets]

    t = time.perf_counter()
    o = thresholded(lr_scorer, codes, np.arange(k), TARGET, seed)
    row["lr honest"] = outcome(o.accepted, o.labels.astype(int), truth, len(unl), o.expected_precision,
                               time.perf_counter() - t)
    t = time.perf_counter()
    acc, lab, est = lr_naive(Xn, codes, k, seed)
    row["lr naive"] = outcome(acc, lab, truth, len(unl), est, time.perf_counter() - t)
    return _loops(row, name, X, truth, graph, codes, m, seed, methods)


def _loops(row: dict, name: str, X: np.ndarray, truth: np.ndarray, graph, codes: np.ndarray, m: int, seed: int,
           methods) -> dict:
    """The talk's method (digits) and the simulated loops of `run_one`'s draw."""
    k = int(truth.max()) + 1
    unl = np.flatnonzero(codes < 0)
    if name == "digits" and "talk" in methods:
        t = time.perf_counter()
        o = talk_method(X, codes, np.arange(k), TARGET)
        row["talk"] = outcome(o.accepted, o.labels.astype(int), truth, len(unl), o.expected_precision,
                              time.perf_counter() - t)
    if "loop" not in methods:
        return row
    t = time.perf_counter()
    sim = simulate(X, truth, m * k, 3, random_state=seed, graph=graph)
    last = {r.scheme: r for r in sim.records if r.round == 3}
    t2 = time.perf_counter()
    old = simulate(X, truth, m * k, 3, random_state=seed, graph=graph, select_strategy="kmeans",
                   query_strategy="abstained", random_share=0.5, compare_random=False)
    last["loop picked"] = old.records[-1]
    spent = {"loop": (t2 - t) / 2, "random": (t2 - t) / 2, "loop picked": time.perf_counter() - t2}
    for scheme in ("loop", "random", "loop picked"):
        r = last[scheme]
        row[scheme] = {"coverage": r.coverage, "realized": None if not np.isfinite(r.realized_precision)
                       else r.realized_precision, "expected": None if not np.isfinite(r.expected_precision)
                       else r.expected_precision, "classes": r.classes_certified, "n_labels": r.n_labels,
                       "seconds": round(spent[scheme], 2)}
    return row


METHODS = ["default", "previous", "whitened", "auto", "lr honest", "lr naive", "talk", "loop", "loop picked", "random"]


def table(rows: list[dict]) -> str:
    methods = [m for m in METHODS if any(m in r for r in rows)]
    engines = [m for m in ("default", "previous", "whitened", "auto") if m in methods]
    out = ["| data | labels/class | " + " | ".join(methods) + f" | efficiency {' / '.join(engines)} (ceiling) |",
           "|---|---|" + "---|" * len(methods) + "---|"]
    keys = sorted({(r["data"], r["per_class"]) for r in rows}, key=lambda x: (DATASETS.index(x[0]), x[1]))
    for name, m in keys:
        rs = [r for r in rows if r["data"] == name and r["per_class"] == m]
        cells = []
        for meth in methods:
            got = [r[meth] for r in rs if meth in r]
            if not got:
                cells.append("")
                continue
            cov = np.mean([g["coverage"] for g in got])
            real = [g["realized"] for g in got if g["realized"] is not None]
            exp = [g["expected"] for g in got if g["expected"] is not None]
            cells.append(f"{cov:.3f} ({np.mean(real):.3f} / {np.mean(exp):.3f}) {np.mean([g['seconds'] for g in got]):.1f}s"
                         if real else f"{cov:.3f} (- / -)")
        eff = []
        for meth in engines:
            ce = np.mean([r[meth]["ceiling"] for r in rs])
            ef = [r[meth]["efficiency"] for r in rs if r[meth]["efficiency"] is not None]
            eff.append(f"{np.mean(ef):.2f} ({ce:.3f})" if ef else f"- ({ce:.3f})")
        out.append(f"| {name} | {m} | " + " | ".join(cells) + " | " + " / ".join(eff) + " |")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [d for d in DATASETS if any(r["data"] == d for r in rows)]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        for meth in ("default", "previous", "whitened", "auto", "lr honest", "loop", "loop picked", "random"):
            if not any(meth in r for r in rows if r["data"] == name):
                continue
            xs = sorted({r["per_class"] for r in rows if r["data"] == name})
            ys = [np.mean([r[meth]["coverage"] for r in rows if r["data"] == name and r["per_class"] == m]) for m in xs]
            ax.plot(xs, ys, marker="o", label=meth)
        ax.set_title(name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("human labels per class")
        ax.set_ylabel(f"certified coverage at {TARGET}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    p.add_argument("--budgets", nargs="+", type=int, default=BUDGETS)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=["default", "previous", "whitened", "auto", "lr", "talk", "loop"],
                   choices=["default", "previous", "whitened", "auto", "lr", "talk", "loop"])
    p.add_argument("--out", default=str(RESULTS / "label_efficiency.json"))
    a = p.parse_args()
    out = Path(a.out)
    rows = [r for r in (json.loads(out.read_text()) if out.exists() else []) if r["data"] not in a.datasets]
    for name in a.datasets:
        X, y = data(name)
        classes, truth = np.unique(y.astype(str), return_inverse=True)
        t = time.perf_counter()
        graph = build_knn_graph(X, 10, random_state=0)
        print(f"{name}: {X.shape}, {len(classes)} classes, graph {time.perf_counter() - t:.1f} s", flush=True)
        white = None
        if {"whitened", "auto"} & set(a.methods):  # the map and its graph use no labels: one per data set, as `graph`
            t = time.perf_counter()
            space = fit_space_map(X, "whitened")
            white = (build_knn_graph(space.transform(X), 10, random_state=0, normalized=True), space)
            print(f"  whitened graph {time.perf_counter() - t:.1f} s", flush=True)
        for m in a.budgets:
            for seed in range(a.seeds):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rows.append(run_one(name, X, truth, graph, m, seed, white, tuple(a.methods)))
                r = rows[-1]
                print(f"  {m}/class seed {seed}: " + ", ".join(
                    f"{k} {r[k]['coverage']:.3f}/{r[k]['realized'] or float('nan'):.3f}" for k in METHODS if k in r),
                    flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1))
    print(table(rows))
    default_out = out.resolve() == (RESULTS / "label_efficiency.json").resolve()
    # the README's figure comes from the full run; another --out gets its figure beside it
    plot(rows, Path(__file__).parent / "label_efficiency.png" if default_out else out.with_suffix(".png"))


if __name__ == "__main__":
    main()
