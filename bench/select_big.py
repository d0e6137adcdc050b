"""`labelseed select` at n = 1,000,000 x 384 with a budget of 1,000, through the real CLI in a
child process: wall time and peak memory (the child's max RSS from the OS), per strategy.

The vectors are synthetic (hierarchical Gaussian clusters, bench/_common.py): no labeled data
set of a million rows installs offline. They are written once to bench/cache/ as .npy.

    python bench/select_big.py --n 1000000 --budget 1000 --strategies kmeans stratified
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import CACHE, RESULTS, synthetic_clustered  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--strategies", nargs="+", default=["kmeans", "stratified"])
    a = p.parse_args()
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"select_big_{a.n}_{a.dim}.npy"
    if not path.exists():
        X, _ = synthetic_clustered(a.n, a.dim)
        np.save(path, X)
        del X
    exe = str(Path(sys.executable).with_name("labelseed"))
    results = []
    for strategy in a.strategies:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "to_label.csv"
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t = time.perf_counter()
            proc = subprocess.run([exe, "select", "--embeddings", str(path), "--budget", str(a.budget),
                                   "--strategy", strategy, "--out", str(out)],
                                  capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
            secs = time.perf_counter() - t
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, max over children so far
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            n_rows = sum(1 for _ in out.open()) - 1
        row = dict(strategy=strategy, n=a.n, dim=a.dim, budget=a.budget, seconds=round(secs, 1),
                   peak_rss_gib=round(max(peak, before) / 2**20, 2), picked=n_rows)
        results.append(row)
        print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "select_big.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
