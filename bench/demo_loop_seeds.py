"""The demo's image loop over many random seeds: is its estimate optimistic on average, or was
the demo's one run unlucky?

Run after `make demo` (it reads the demo's embedded image project). For each seed: `select`
stratified 50, reveal, fit, `query` sampled 50, reveal, fit (target 0.9), as the demo's loop
does; prints the estimate, its lower bound, the realized precision and coverage per seed, then
the mean bias and how often the realized precision fell below the lower bound. Then, as the demo
does, an audit of 30 accepted rows per class certifies the run (``certify_with_audit``), and the
same is reported for the audit-certified estimate.

    python bench/demo_loop_seeds.py [--project out/demo/loop/fashion-images/project] [--seeds 12]
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np

from labelseed import datasets
from labelseed.autolabeler import AutoLabeler, query_next
from labelseed.graph import build_knn_graph
from labelseed.project import Project
from labelseed.select import select
from labelseed.thresholds import design_weights


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--project", default="out/demo/loop/fashion-images/project")
    p.add_argument("--seeds", type=int, default=12)
    a = p.parse_args()
    warnings.simplefilter("ignore")
    proj = Project.open(a.project, read_only=True)
    rows, X = proj.vectors()
    ids = proj.store.ids()
    _, y_all = datasets.fashion_mnist_images()
    truth = np.array([datasets.FASHION_CLASSES[y_all[int(ids[r][:5])]] for r in rows])  # ids: 00123.png
    graph = build_knn_graph(X, 10, random_state=0)
    n, out, certified = len(X), [], []
    for seed in range(a.seeds):
        y = np.full(n, None, dtype=object)
        w = np.ones(n)
        sel = select(X, 50, "stratified", random_state=seed)
        y[sel.rows], w[sel.rows] = truth[sel.rows], design_weights(sel.extra["inclusion"])
        m = AutoLabeler(target_precision=0.9, random_state=seed).fit(X, y, graph=graph, calibrate=y != None,  # noqa: E711
                                                                      design_weight=w)
        q = query_next(m, X, y, 50, "sampled", random_state=seed)
        y[q.rows], w[q.rows] = truth[q.rows], design_weights(q.extra["inclusion"])
        m = AutoLabeler(target_precision=0.9, random_state=seed).fit(X, y, graph=graph, calibrate=y != None,  # noqa: E711
                                                                      design_weight=w)
        r, th = m.result_, m.result_.thresholds
        real = float((r.labels[r.accepted].astype(str) == truth[r.accepted]).mean()) if len(r.accepted) else np.nan
        out.append((th.expected_precision, th.precision_low, real, th.coverage))
        cert = (np.nan,) * 4
        if len(r.accepted):  # the demo's audit: 30 accepted rows of each predicted class, verified
            rng = np.random.default_rng(seed)
            lab = r.labels[r.accepted].astype(str)
            audit = np.concatenate([rng.choice(r.accepted[lab == c], min(30, int((lab == c).sum())), replace=False)
                                    for c in np.unique(lab)])
            ca = m.certify_with_audit(audit, truth[audit])
            creal = float((ca.labels[ca.accepted].astype(str) == truth[ca.accepted]).mean()) if len(ca.accepted) \
                else np.nan
            cert = (ca.thresholds.expected_precision, ca.thresholds.precision_low, creal, ca.thresholds.coverage)
        certified.append(cert)
        print(f"seed {seed}: {th.mode}, expected {th.expected_precision:.3f} [low {th.precision_low:.3f}], "
              f"realized {real:.3f}, coverage {th.coverage:.3f}; audit-certified: expected {cert[0]:.3f} "
              f"[low {cert[1]:.3f}], realized {cert[2]:.3f}, coverage {cert[3]:.3f}", flush=True)
    for name, rows in (("before the audit", out), ("audit-certified", certified)):
        v = np.array(rows, dtype=float)
        ok = ~np.isnan(v[:, 2])
        print(f"{name}: bias {np.mean(v[ok, 0] - v[ok, 2]):+.3f}, realized below the lower bound in "
              f"{np.mean(v[ok, 2] < v[ok, 1]):.0%} of {ok.sum()} runs, mean coverage {np.nanmean(v[:, 3]):.3f}")


if __name__ == "__main__":
    main()
