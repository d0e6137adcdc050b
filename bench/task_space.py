"""Does a space adapted to the task give the kNN graph better scores? (issue 11, Build 1)

Each variant maps the embeddings before the graph is built. A map learned from labels is
fitted inside cross-validation: every label vector (each fold's training labels, then all
labels) gets its own map, fitted on its own labels only, and its own graph, so no fold's
scores see the rows it hides. Maps that use no labels are fitted once on the pool. Scores go
through labelseed's own per-class thresholds (target 0.95), as ``lr honest`` in
bench/label_efficiency.py does; ``raw`` is the same pipeline on the unmapped graph.

Variants:
- ``within``: within-class whitening, ``X -> X Sw^(-strength/2)``, with Sw the Ledoit-Wolf
  shrunk covariance of the labeled rows' residuals from their class means (labels, in fold);
- ``lda``: shrinkage LDA's discriminant coordinates appended to the unit rows, weight
  `strength` (labels, in fold);
- ``total``: whitening by the pool's covariance (no labels);
- ``cluster``: whitening by the covariance of rows around their k-means centre, 100 clusters
  (no labels).
Each variant is scored by spreading alone (``--mix 0``) and by spreading mixed half and half with
a logistic regression on the unmapped rows (``--mix 0.5``, the first of the default engine's
candidate weights). Columns: certified coverage of the unlabeled pool, its realized precision against
the hidden truth (coverage-weighted over draws), and the hindsight ceiling (the best single
confidence cut on the final scores at precision >= 0.95, found with the truth).

    python bench/task_space.py                      # about 25 minutes here
    python bench/task_space.py --datasets digits --variants within --mix 0
    python bench/task_space.py --choose total --mix 0.5 --out bench/results/task_space_choose.json
    python bench/task_space.py --choose total --nested --mix 0.5 --out bench/results/task_space_nested.json
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
from _common import RESULTS, hindsight_cut, load, load_named, per_class_labels, thresholded  # noqa: E402

from labelseed.graph import build_knn_graph, normalize_rows  # noqa: E402
from labelseed.spreading import Scores, fit_linear, mix_scores, normalized_affinity, spread, spread_many  # noqa: E402

TARGET = 0.95
VARIANTS = {"within": 0.5, "lda": 1.0, "total": 0.5, "cluster": 0.5}  # variant -> strength
LABEL_FREE = ("total", "cluster")
BUDGETS = {"digits": [5, 10], "fashion20k": [10, 40], "wordnet": [10, 40], "fashion70k": [10], "imbalanced": [10],
           "effnet3k": [5, 10, 20]}
SEEDS = {"digits": 6, "fashion20k": 5, "wordnet": 5, "fashion70k": 3, "imbalanced": 10, "effnet3k": 8}
DEFAULT_DATASETS = ["digits", "fashion20k", "wordnet"]


def data(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "wordnet":
        return load("wordnet", per_class=600)  # 13,899 noun glosses, 26 classes, MiniLM
    if name == "effnet3k":  # the 3,000 Fashion-MNIST images of `make demo`'s image loop, EfficientNet-Lite0 (96 px)
        return demo_images()
    if name == "imbalanced":  # Fashion-MNIST resampled to 40/20/10/10/5/5/4/3/2/1 % (bench/honesty.py)
        from honesty import imbalanced

        return imbalanced()
    return load_named(name)


def prepared(name: str) -> tuple[np.ndarray, int, np.ndarray]:
    """A data set's true class codes, its number of classes and its unit rows."""
    X, y = data(name)
    classes, truth = np.unique(y, return_inverse=True)
    return truth, len(classes), normalize_rows(X.astype(np.float32))


def draws(name: str, truth: np.ndarray, k: int):
    """Every (labels per class, draw) of a data set: its label codes and unlabeled rows."""
    for m in BUDGETS[name]:
        for seed in range(SEEDS[name]):
            codes = per_class_labels(truth, k, m, np.random.default_rng([seed, m]))
            yield m, seed, codes, np.flatnonzero(codes < 0)


def demo_images(project: str = "out/demo/loop/fashion-images/project") -> tuple[np.ndarray, np.ndarray]:
    """The image loop's vectors (`make demo` first) and each image's true class: the demo names
    each file by its index into Fashion-MNIST."""
    import sqlite3

    from labelseed import datasets

    folder = Path(project)
    if not (folder / "embeddings.npy").exists():
        raise FileNotFoundError(f"{folder}/embeddings.npy is missing: run `make demo` first")
    X = np.load(folder / "embeddings.npy")
    with sqlite3.connect(folder / "labelseed.db") as db:
        ids = [i for (i,) in db.execute("SELECT id FROM items ORDER BY row")]
    _, y = datasets.fashion_mnist_images()
    return X, np.asarray([datasets.FASHION_CLASSES[y[int(i.split(".")[0])]] for i in ids])


def _inverse_sqrt(C: np.ndarray, strength: float) -> np.ndarray:
    w, V = np.linalg.eigh(C)
    return ((V * (np.maximum(w, 1e-12) ** (-0.5 * strength))) @ V.T).astype(np.float32)


def label_map(Xn: np.ndarray, codes: np.ndarray, k: int, variant: str, strength: float) -> np.ndarray:
    """The rows mapped by a map fitted on the labeled rows of `codes` only."""
    from sklearn.covariance import ledoit_wolf

    lab = np.flatnonzero(codes >= 0)
    Xl, yl = Xn[lab], codes[lab]
    if variant == "within":
        mu = np.stack([Xl[yl == c].mean(axis=0) for c in range(k)])
        Sw, _ = ledoit_wolf(Xl - mu[yl], assume_centered=True)
        return normalize_rows(Xn @ _inverse_sqrt(Sw, strength))
    if variant == "lda":
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        L = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(Xl, yl).transform(Xn)
        return normalize_rows(np.hstack([Xn, strength * normalize_rows(L.astype(np.float32))]))
    raise ValueError(variant)


def pool_map(Xn: np.ndarray, variant: str, strength: float) -> np.ndarray:
    """The rows mapped by a map fitted on a sample of the pool, no labels."""
    import faiss
    from sklearn.covariance import ledoit_wolf

    sample = Xn[np.random.default_rng(0).choice(len(Xn), min(len(Xn), 20_000), replace=False)]
    if variant == "total":
        C, _ = ledoit_wolf(sample)
        return normalize_rows((Xn - sample.mean(axis=0)) @ _inverse_sqrt(C, strength))
    km = faiss.Kmeans(sample.shape[1], 100, niter=20, seed=1, spherical=True)
    km.train(np.ascontiguousarray(sample))
    _, a = km.index.search(np.ascontiguousarray(sample), 1)
    C, _ = ledoit_wolf(sample - km.centroids[a[:, 0]], assume_centered=True)
    return normalize_rows(Xn @ _inverse_sqrt(C, strength))


def affinity(Z: np.ndarray):
    return normalized_affinity(build_knn_graph(Z, 10, random_state=0).affinity())


def run(name: str, variants: list[str], mixes: list[float]) -> list[dict]:
    truth, k, Xn = prepared(name)
    S_raw = affinity(Xn)
    S_free = {v: affinity(pool_map(Xn, v, VARIANTS[v])) for v in variants if v in LABEL_FREE}
    out = []
    for m, seed, codes, unl in draws(name, truth, k):
        for mix in mixes:
            row: dict = {"data": name, "per_class": m, "seed": seed, "mix": mix}
            for variant in ["raw", *variants]:
                final: dict = {}

                def scorer(code_sets: list[np.ndarray]) -> list[Scores]:
                    if variant == "raw":
                        out_ = spread_many(S_raw, code_sets, k)
                    elif variant in LABEL_FREE:
                        out_ = spread_many(S_free[variant], code_sets, k)
                    else:  # one map and one graph per label vector, from its own labels
                        out_ = [spread(affinity(label_map(Xn, cs, k, variant, VARIANTS[variant])), cs, k)
                                for cs in code_sets]
                    if mix:
                        out_ = [mix_scores(s, fit_linear(Xn, cs, k, random_state=seed).probabilities(Xn), mix)
                                for s, cs in zip(out_, code_sets)]
                    final["scores"] = out_[-1]
                    return out_

                t = time.perf_counter()
                o = thresholded(scorer, codes, np.arange(k), TARGET, seed)
                acc = o.accepted
                row[variant] = {
                    "coverage": len(acc) / len(unl),
                    "realized": float((o.labels.astype(int) == truth[acc]).mean()) if len(acc) else None,
                    "ceiling": hindsight_cut(final["scores"], truth, unl, TARGET),
                    "seconds": round(time.perf_counter() - t, 2),
                }
            print(json.dumps(row), flush=True)
            out.append(row)
    return out


def choose(name: str, variant: str, mix: float) -> list[dict]:
    """Raw or a label-free map, chosen per draw by the out-of-fold log-loss of the true labels
    (mixed scores as above): which one is picked, and what each certifies."""
    from labelseed.autolabeler import _decide
    from labelseed.thresholds import choose_thresholds, cross_val_scores

    truth, k, Xn = prepared(name)
    graphs = {"raw": affinity(Xn), variant: affinity(pool_map(Xn, variant, VARIANTS[variant]))}
    out = []
    for m, seed, codes, unl in draws(name, truth, k):
        row: dict = {"data": name, "per_class": m, "seed": seed, "mix": mix}
        for v, S in graphs.items():
            def scorer(code_sets: list[np.ndarray], S=S) -> list[Scores]:
                runs = spread_many(S, code_sets, k)
                if not mix:
                    return runs
                return [mix_scores(s, fit_linear(Xn, cs, k, random_state=seed).probabilities(Xn), mix)
                        for s, cs in zip(runs, code_sets)]

            cv = cross_val_scores(scorer, codes, k, int(min(5, np.bincount(codes[codes >= 0]).min())), seed)
            p_true = cv.oof.distribution[np.arange(len(cv.y_true)), cv.y_true]
            th = choose_thresholds(cv, np.arange(k), target_precision=TARGET, random_state=seed)
            acc = _decide(codes, np.arange(k), cv.final, th).accepted
            row[v] = {"log_loss": float(-np.log(np.clip(p_true, 1e-6, 1.0)).mean()),
                      "coverage": len(acc) / len(unl),
                      "realized": float((cv.final.predicted[acc] == truth[acc]).mean()) if len(acc) else None}
        row["pick"] = min(graphs, key=lambda v: row[v]["log_loss"])
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


class NestedChoice:
    """Scores for cross-validation sets whose graph (one of `graphs`, built without labels) is
    chosen as the default engine chooses its linear weight: fold f's graph by the log-loss of
    the other folds' rows, each scored with folds f and g hidden (spreading is linear in the
    labels, so those are sums of each graph's per-fold solutions; one logistic regression per
    pair of folds), so no fold's choice sees its own labels; the final set's graph by every
    fold's out-of-fold rows. Mixed with the logistic regression at weight `mix`."""

    def __init__(self, graphs: dict[str, object], Xn: np.ndarray, k: int, mix: float, seed: int) -> None:
        self.graphs, self.Xn, self.k, self.mix, self.seed = graphs, Xn, k, mix, seed
        self.picks: list[str] = []

    def __call__(self, code_sets: list[np.ndarray]) -> list[Scores]:
        from labelseed.spreading import spread_groups, spread_without

        Xn, k, final = self.Xn, self.k, code_sets[-1]
        n_folds = len(code_sets) - 1
        hidden = [np.flatnonzero((final >= 0) & (c < 0)) for c in code_sets[:-1]]
        groups = {v: spread_groups(S, code_sets, k) for v, S in self.graphs.items()}

        def lr(drop: tuple[int, ...]):
            codes = final.copy()
            for f in drop:
                codes[hidden[f]] = -1
            return fit_linear(Xn, codes, k, random_state=self.seed)

        single = {f: lr((f,)) for f in range(n_folds)}
        pair = {(f, g): lr((f, g)) for f in range(n_folds) for g in range(f + 1, n_folds)}

        def mixed(v: str, drop: tuple[int, ...], rows: np.ndarray | None, model) -> Scores:
            F = spread_without(groups[v], drop, rows)
            P = model.probabilities(Xn if rows is None else Xn[rows])
            return mix_scores(Scores.from_unnormalized(F), P, self.mix) if self.mix else Scores.from_unnormalized(F)

        def loss(v: str, keys: list[tuple[int, int]]) -> float:
            ll = []
            for f, g in keys:  # fold g's rows with folds f and g hidden (f == g: g alone)
                rows = hidden[g]
                model = single[g] if f == g else pair[(min(f, g), max(f, g))]
                d = mixed(v, tuple(sorted({f, g})), rows, model).distribution
                ll.append(-np.log(np.clip(d[np.arange(len(rows)), final[rows]], 1e-6, 1.0)))
            return float(np.concatenate(ll).mean())

        out = []
        self.picks = []
        for f in range(n_folds):
            keys = [(f, g) for g in range(n_folds) if g != f and len(hidden[g])]
            v = min(self.graphs, key=lambda v: loss(v, keys))
            self.picks.append(v)
            out.append(mixed(v, (f,), None, single[f]))
        v = min(self.graphs, key=lambda v: loss(v, [(g, g) for g in range(n_folds) if len(hidden[g])]))
        self.picks.append(v)
        out.append(mixed(v, (), None, lr(())))
        return out


def choose_nested(name: str, variant: str, mix: float) -> list[dict]:
    """:class:`NestedChoice` between the raw graph and a label-free map's, through labelseed's
    thresholds, beside the raw graph alone."""
    truth, k, Xn = prepared(name)
    graphs = {"raw": affinity(Xn), variant: affinity(pool_map(Xn, variant, VARIANTS[variant]))}
    out = []
    for m, seed, codes, unl in draws(name, truth, k):
        row: dict = {"data": name, "per_class": m, "seed": seed, "mix": mix}
        for key, scorer in (("raw", NestedChoice({"raw": graphs["raw"]}, Xn, k, mix, seed)),
                            ("chosen", NestedChoice(graphs, Xn, k, mix, seed))):
            o = thresholded(scorer, codes, np.arange(k), TARGET, seed)
            acc = o.accepted
            row[key] = {"coverage": len(acc) / len(unl),
                        "realized": float((o.labels.astype(int) == truth[acc]).mean()) if len(acc) else None,
                        "expected": float(o.expected_precision) if len(acc) else None,
                        "picks": scorer.picks}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def weighted_realized(cells: list[dict]) -> float:
    """Realized precision of several draws' cells, each weighted by its coverage (NaN: none certified)."""
    kept = [c for c in cells if c["realized"] is not None]
    w = sum(c["coverage"] for c in kept)
    return sum(c["coverage"] * c["realized"] for c in kept) / w if w else float("nan")


def table(rows: list[dict], variants: list[str]) -> str:
    keys = sorted({(r["data"], r["mix"], r["per_class"]) for r in rows}, key=lambda t: (t[0], t[1], t[2]))
    head = "| data | mix | labels/class | " + " | ".join(["raw", *variants]) + " |"
    lines = [head, "|---|---|---|" + "---|" * (len(variants) + 1)]
    for d, mix, m in keys:
        rs = [r for r in rows if (r["data"], r["mix"], r["per_class"]) == (d, mix, m)]
        cells = []
        for v in ["raw", *variants]:
            cov = np.mean([r[v]["coverage"] for r in rs])
            ceil = np.mean([r[v]["ceiling"] for r in rs])
            cells.append(f"{cov:.3f} ({weighted_realized([r[v] for r in rs]):.3f}) / {ceil:.3f}")
        lines.append(f"| {d} | {mix} | {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def choice_summary(rows: list[dict], variant: str) -> str:
    """One line per data set and budget of :func:`choose`'s rows."""
    lines = []
    for name, m in dict.fromkeys((r["data"], r["per_class"]) for r in rows):
        rs = [r for r in rows if (r["data"], r["per_class"]) == (name, m)]
        picked = [r[r["pick"]]["coverage"] for r in rs]
        lines.append(f"{name} {m}/class: {variant} picked in {sum(r['pick'] != 'raw' for r in rs)} of {len(rs)}; "
                     f"coverage raw {np.mean([r['raw']['coverage'] for r in rs]):.3f}, "
                     f"{variant} {np.mean([r[variant]['coverage'] for r in rs]):.3f}, picked {np.mean(picked):.3f}")
    return "\n".join(lines)


def nested_summary(rows: list[dict], variant: str) -> str:
    """One line per data set and budget of :func:`choose_nested`'s rows."""
    lines = []
    for name, m in dict.fromkeys((r["data"], r["per_class"]) for r in rows):
        rs = [r for r in rows if (r["data"], r["per_class"]) == (name, m)]
        final_picks = sum(r["chosen"]["picks"][-1] != "raw" for r in rs)
        fold_picks = sum(p != "raw" for r in rs for p in r["chosen"]["picks"][:-1])
        n_folds = sum(len(r["chosen"]["picks"]) - 1 for r in rs)

        def cell(key: str) -> str:
            # bias: mean(expected - realized) over the draws that certify anything
            d = [r[key]["expected"] - r[key]["realized"] for r in rs if r[key]["realized"] is not None]
            bias = float(np.mean(d)) if d else float("nan")
            return (f"{np.mean([r[key]['coverage'] for r in rs]):.3f} "
                    f"({weighted_realized([r[key] for r in rs]):.3f}; {bias:+.3f})")
        lines.append(f"{name} {m}/class: {variant} picked for the final set in {final_picks} of {len(rs)} draws, "
                     f"for {fold_picks} of {n_folds} folds; coverage (realized; bias) raw {cell('raw')}, "
                     f"chosen {cell('chosen')}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS, choices=list(BUDGETS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--mix", nargs="+", type=float, default=[0.0, 0.5])
    p.add_argument("--choose", choices=LABEL_FREE, help="instead: raw or this label-free map, chosen per draw "
                   "by out-of-fold log-loss (with the first --mix)")
    p.add_argument("--nested", action="store_true", help="with --choose: the choice made per fold, nested "
                   "as the engine's linear weight is (no fold's choice sees its own labels)")
    p.add_argument("--out", default=str(RESULTS / "task_space.json"))
    a = p.parse_args()
    warnings.simplefilter("ignore")
    if a.choose:
        pick = choose_nested if a.nested else choose
        rows = [r for name in a.datasets for r in pick(name, a.choose, a.mix[0])]
    else:
        rows = [r for name in a.datasets for r in run(name, a.variants, a.mix)]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    if a.choose:
        print((nested_summary if a.nested else choice_summary)(rows, a.choose))
    else:
        print(table(rows, a.variants))
        print("cells: certified coverage (realized precision, coverage-weighted) / hindsight ceiling; means over draws")


if __name__ == "__main__":
    main()
