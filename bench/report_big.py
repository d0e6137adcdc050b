"""`labelseed report` for a run over 1,000,000 rows: wall time of the real CLI in a child
process (median of --repeats), and its peak memory.

The run itself (`labelseed autolabel` on 1,000,000 x 384 synthetic clustered vectors, 20
classes, 10 labels per class) is made once and kept under bench/cache/ (about 3 minutes).

    python bench/report_big.py --n 1000000 --repeats 3
"""
from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import CACHE, RESULTS, synthetic_clustered  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    CACHE.mkdir(exist_ok=True)
    exe = str(Path(sys.executable).with_name("labelseed"))
    X_path = CACHE / f"select_big_{a.n}_{a.dim}.npy"  # the same vectors as bench/select_big.py
    run = CACHE / f"report_big_run_{a.n}"
    if not (run / "report_data.npz").exists():
        X, y = synthetic_clustered(a.n, a.dim)
        if not X_path.exists():
            np.save(X_path, X)
        del X
        rng = np.random.default_rng(0)
        seed_csv = CACHE / f"report_big_seed_{a.n}.csv"
        with open(seed_csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "label"])
            for c in np.unique(y):
                for i in rng.choice(np.flatnonzero(y == c), 10, replace=False):
                    w.writerow([int(i), f"class-{c}"])
        t = time.perf_counter()
        subprocess.run([exe, "autolabel", "--embeddings", str(X_path), "--labels", str(seed_csv), "--out", str(run),
                        "--quiet", "--force", "--no-cache"], check=True)
        print(f"made the run in {time.perf_counter() - t:.0f} s", flush=True)
    times = []
    for i in range(a.repeats):
        out = CACHE / "report_big_out"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run([exe, "report", "--run", str(run), "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
        print(f"report {i + 1}: {times[-1]:.1f} s", flush=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    rec = json.loads((out / "report.json").read_text())
    res = {"n": a.n, "seconds": [round(x, 1) for x in times], "median_s": round(float(np.median(times)), 1),
           "peak_rss_gib_children": round(peak, 2), "map": rec["map"], "auto": rec["summary"]["auto"],
           "gaps": len(rec["gaps"] or [])}
    print(json.dumps(res))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report_big.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
