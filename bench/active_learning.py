"""Active learning: 5 rounds of `labelseed query` (the default ``abstained``, and
``uncertainty``) against 5 rounds of random picks of the same size, from the same random
seed of 3 labels per class; after each round the picks' true labels are revealed (the
benchmark plays the person) and the labeler is refitted exactly as a user would (every
label spreads and calibrates). Reports coverage at target precision 0.95 and realized
precision of the accepted auto-labels against the hidden truth.

    python bench/active_learning.py --datasets digits fashion --rounds 5 --batch 20 --seeds 5
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, load  # noqa: E402

from labelseed import AutoLabeler  # noqa: E402
from labelseed.datasets import hide_labels  # noqa: E402
from labelseed.graph import build_knn_graph, normalize_rows  # noqa: E402
from labelseed.select import query  # noqa: E402


STRATEGIES = ("abstained", "uncertainty", "random")


def run(X, y, graph, strategy: str, seed: int, rounds: int, batch: int) -> list[dict]:
    labels = hide_labels(y, 3, seed)
    classes = np.unique(y)
    rng = np.random.default_rng(1000 + seed)
    out = []
    for rnd in range(rounds + 1):
        m = AutoLabeler(target_precision=0.95, random_state=seed).fit(X, labels, graph=graph)
        r = m.result_
        a = r.accepted
        out.append(dict(round=rnd, n_labeled=int((labels != None).sum()), coverage=r.coverage,  # noqa: E711
                        realized=float((r.labels[a] == y[a]).mean()) if len(a) else None))
        if rnd == rounds:
            break
        codes = np.full(len(y), -1)
        lab = labels != None  # noqa: E711
        codes[lab] = np.searchsorted(classes, labels[lab].astype(str))
        if strategy == "random":
            picks = rng.choice(np.flatnonzero(~lab), batch, replace=False)
        else:
            accepted = np.zeros(len(y), dtype=bool)
            accepted[a] = True
            picks = query(X, m.label_distributions_, codes, batch, strategy, accepted=accepted,
                          random_state=100 * seed + rnd).rows
        labels[picks] = y[picks]  # the person's answer
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", nargs="+", default=["digits", "fashion"])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--seeds", type=int, default=5)
    a = p.parse_args()
    results = {}
    for ds in a.datasets:
        X, y = load(ds, a.n)
        X = normalize_rows(np.asarray(X, dtype=np.float32))
        graph = build_knn_graph(X, 10, normalized=True)
        for strategy in STRATEGIES:
            runs = [run(X, y, graph, strategy, s, a.rounds, a.batch) for s in range(a.seeds)]
            results[f"{ds}/{strategy}"] = runs
            cov = np.array([[r["coverage"] for r in rs] for rs in runs]).mean(axis=0)
            print(ds, strategy, "coverage by round:", np.round(cov, 3).tolist(), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "active_learning.json").write_text(json.dumps(results, indent=1))
    print(table(results))
    plot(results, RESULTS / "active_learning.png")


def table(results: dict) -> str:
    lines = ["| data / strategy | " + " | ".join(f"round {i}" for i in range(len(next(iter(results.values()))[0]))) + " |"]
    lines.append("|---" * (1 + len(next(iter(results.values()))[0])) + "|")
    for key, runs in results.items():
        cells = []
        for i in range(len(runs[0])):
            cov = np.mean([rs[i]["coverage"] for rs in runs])
            right = [rs[i]["realized"] for rs in runs if rs[i]["realized"] is not None]
            cells.append(f"{cov:.3f} ({np.mean(right):.3f})" if right else f"{cov:.3f} (-)")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({k.split("/")[0] for k in results})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for strategy in STRATEGIES:
            runs = results[f"{ds}/{strategy}"]
            x = np.mean([[r["n_labeled"] for r in rs] for rs in runs], axis=0)
            cov = np.array([[r["coverage"] for r in rs] for rs in runs])
            ax.plot(x, cov.mean(axis=0), marker="o", label="random picks" if strategy == "random" else f"{strategy} queries")
            ax.fill_between(x, cov.min(axis=0), cov.max(axis=0), alpha=0.15)
        ax.set_title(f"{ds}: coverage at target precision 0.95")
        ax.set_xlabel("labeled rows")
        ax.set_ylabel("auto-labeled share of the pool")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
