"""Scale on data shaped like real embeddings (issue 14): the whole run and labeling new items.

For each data kind and size: generate the pool plus held-out new items of the same kind, draw
random labels within each class, run ``labelseed autolabel`` (the real entry point, its own
process, graph cache off) and then ``labelseed label`` on the new items. Measured: wall time
and peak memory of each process (``os.wait4``), the run's per-stage seconds and graph recall
(summary.json), realized precision of the accepted pool rows and of the new items' labels
against the hidden truth, beside what the run reported for each.

Data kinds (bench/_common.py):
- ``real``: 20 classes x 50 sub-topics through a power-law spectrum (neighbour class purity
  about 0.95 at k = 10);
- ``iso``: the isotropic hard case (within-class structure is noise).

``--probe-effect`` also measures, at the sizes given, what more IVF probes change in the final
labels: the same fit on the tuned graph and on a graph searched at 4x its nprobe.

    python bench/scale.py --kinds real,iso --sizes 20000,200000,1000000 --new 200000
    python bench/scale.py --kinds real --sizes 200000 --new 50000 --graph-space auto --out bench/results/scale_auto.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, isotropic_hard, real_like  # noqa: E402

EXE = str(Path(sys.executable).parent / "labelseed")


def _timed(args: list[str]) -> dict:
    """Wall seconds and peak memory of one command under /usr/bin/time (its own number, not the max of all)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as f:
        t = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name, EXE, *args], capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if r.returncode != 0:
            raise RuntimeError(f"labelseed {' '.join(args)} failed:\n{r.stderr[-2000:]}")
        peak_kib = int(Path(f.name).read_text().strip().splitlines()[-1])
    return {"seconds": seconds, "peak_gib": peak_kib / 2**20, "stdout": r.stdout, "stderr": r.stderr}


def one(kind: str, n: int, n_new: int, per_class: int, work: Path, seed: int = 0, graph_space: str = "raw") -> dict:
    gen = real_like if kind == "real" else isotropic_hard
    t = time.perf_counter()
    X, y = gen(n + n_new, seed=seed)
    gen_s = time.perf_counter() - t
    pool, new = X[:n], X[n:]
    yp, yn = y[:n], y[n:]
    np.save(work / "pool.npy", pool)
    np.save(work / "new.npy", new)
    del X, pool, new
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.choice(np.flatnonzero(yp == c), per_class, replace=False) for c in np.unique(yp)])
    (work / "labels.csv").write_text("id,label\n" + "".join(f"{r},c{yp[r]}\n" for r in rows))
    run = work / "run"
    fit = _timed(["autolabel", "--embeddings", str(work / "pool.npy"), "--labels", str(work / "labels.csv"),
                  "--out", str(run), "--no-cache", "--quiet", "--force", "--graph-space", graph_space])
    summary = json.loads((run / "summary.json").read_text())
    import pyarrow.parquet as pq

    t_auto = pq.read_table(run / "auto_labels.parquet").to_pydict()
    auto = np.array(t_auto["source"]) == "auto"
    ids = np.asarray(t_auto["id"])[auto]
    got = np.array([int(v[1:]) for v in np.asarray(t_auto["label"])[auto]])
    realized = float(np.mean(got == yp[ids])) if len(ids) else float("nan")
    lab = _timed(["label", "--run", str(run), "--embeddings", str(work / "new.npy"), "--out",
                  str(work / "new_labels.parquet"), "--force", "--quiet"])
    t_new = pq.read_table(work / "new_labels.parquet").to_pydict()
    ok = np.array(t_new["source"]) == "auto"
    got_new = np.array([int(v[1:]) for v in np.asarray(t_new["label"])[ok]])
    realized_new = float(np.mean(got_new == yn[np.asarray(t_new["id"])[ok]])) if ok.any() else float("nan")
    ni = summary.get("new_items") or {}
    out = {
        "kind": kind, "n": n, "n_new": n_new, "graph_space": graph_space, "graph_space_used": summary.get("graph_space"), "labels": int(len(rows)), "generate_s": round(gen_s, 1),
        "run_s": round(fit["seconds"], 1), "run_peak_gib": round(fit["peak_gib"], 2),
        "timings": summary.get("timings"), "graph_recall": summary.get("graph_recall"),
        "graph_nprobe": summary.get("graph_nprobe"), "graph_index": summary.get("graph_index"),
        "coverage": summary.get("coverage"), "expected": summary.get("expected_precision"),
        "expected_interval": summary.get("expected_precision_interval"), "realized": realized,
        "label_s": round(lab["seconds"], 1), "label_items_per_s": round(n_new / lab["seconds"]),
        "label_peak_gib": round(lab["peak_gib"], 2), "new_coverage": float(ok.mean()),
        "new_expected": ni.get("expected_precision"), "new_interval": ni.get("expected_precision_interval"),
        "new_realized": realized_new,
    }
    print(json.dumps(out), flush=True)
    return out


def _probe_data(kind: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if kind in ("real", "iso"):
        return (real_like if kind == "real" else isotropic_hard)(n, seed=seed)
    if kind == "noisy":
        from speed import noisy_clusters

        return noisy_clusters(n)
    if kind == "wordnet":
        from speed import wordnet_13899

        return wordnet_13899()
    from _common import load

    return load(kind, n=n)


def probe_effect(kind: str, n: int, per_class: int, seed: int = 0) -> dict:
    """The final labels on the tuned graph against a graph searched with 4x the probes."""
    from labelseed import AutoLabeler
    from labelseed.graph import build_knn_graph

    X, y = _probe_data(kind, n, seed)
    y = np.asarray(y)
    n = len(y)
    rng = np.random.default_rng(seed)
    labels = np.full(n, None, dtype=object)
    for c in np.unique(y):
        labels[rng.choice(np.flatnonzero(y == c), per_class, replace=False)] = f"c{c}"
    out = {"kind": kind, "n": n}
    results = {}
    g = build_knn_graph(X, 10)
    for name, graph in (("tuned", g), ("4x probes", build_knn_graph(X, 10, nprobe=4 * int(g.nprobe or 1)))):
        t = time.perf_counter()
        m = AutoLabeler().fit(X, labels, graph=graph)
        acc = m.result_.accepted
        truth = np.array([f"c{v}" for v in y[acc]])
        results[name] = (m.result_.labels, acc)
        out[name] = {"nprobe": graph.nprobe, "recall": graph.recall_estimate, "coverage": m.result_.coverage,
                     "expected": m.result_.expected_precision,
                     "realized": float(np.mean(m.result_.labels[acc] == truth)) if len(acc) else None,
                     "fit_s": round(time.perf_counter() - t, 1)}
    a, b = results["tuned"][0], results["4x probes"][0]
    out["same_label_or_abstention"] = float(np.mean([u == v for u, v in zip(a, b)]))
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", default="real,iso")
    ap.add_argument("--sizes", default="20000,200000,1000000")
    ap.add_argument("--new", type=int, default=200_000, help="new items labeled against each run")
    ap.add_argument("--per-class", type=int, default=25, help="random labels per class")
    ap.add_argument("--probe-effect", default="", help="sizes at which to compare the tuned graph with 4x probes "
                    "(kinds: real, iso, noisy, fashion, wordnet; WordNet is its 13,899 glosses)")
    ap.add_argument("--graph-space", default="raw", choices=["raw", "whitened", "auto"])
    ap.add_argument("--out", default=str(RESULTS / "scale.json"))
    args = ap.parse_args()
    rows = []
    for kind in args.kinds.split(","):
        for n in [int(v) for v in args.sizes.split(",") if v and kind in ("real", "iso")]:
            with tempfile.TemporaryDirectory(dir=RESULTS) as d:
                rows.append(one(kind, n, args.new, args.per_class, Path(d), graph_space=args.graph_space))
        for n in [int(v) for v in args.probe_effect.split(",") if v]:
            rows.append(probe_effect(kind, n, args.per_class))
    RESULTS.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
