"""The page at scale: server time of one page of 50 items, and of a bulk accept of ~100,000 rows,
on a 1,000,000-item project, against the same on a 10,000-item project in the same run (the
ratio shows whether paging and accepting grow with the pool).

Each project: clustered float32 vectors (64 dims, 10 classes), 20 random labels per class,
`fit --fast` + apply; then the Starlette app in-process (the time is the server's, no network).
Pages: /review (a class, random offsets), /label (the latest picks), / (status); median of
--repeats requests after a first (cold) one. Bulk accept: POST /api/review/accept with the
threshold that selects ~10% of the pool, then its undo; median of --repeats accept+undo pairs.

    python bench/serve_big.py --rows 1000000 --repeats 7
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS  # noqa: E402


def make_project(folder: Path, n: int, dim: int = 64, k: int = 10) -> tuple[Path, np.ndarray]:
    from labelseed.ops import FitSettings
    from labelseed.project import Project

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(k, dim)).astype(np.float32)
    y = rng.integers(0, k, n)
    X = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 200_000):
        X[s:s + 200_000] = centers[y[s:s + 200_000]] + 0.9 * rng.normal(size=(len(y[s:s + 200_000]), dim))
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "X.npy", X)
    del X
    proj = folder / "proj"
    t0 = time.perf_counter()
    Project.init(proj, vectors=folder / "X.npy").close()
    picks = np.concatenate([rng.choice(np.flatnonzero(y == c), 20, replace=False) for c in range(k)])
    with open(folder / "seed.csv", "w") as f:
        f.write("id,label\n" + "".join(f"{i},c{y[i]}\n" for i in picks))
    with Project.open(proj) as p:
        p.import_labels(folder / "seed.csv")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = p.fit(FitSettings(method="spreading", target_precision=0.9))
        p.apply(run_id=run["run_id"])
        p.select(50)  # the Label view's page
    print(f"  project of {n:,} items made and fitted in {time.perf_counter() - t0:.1f} s", flush=True)
    return proj, y


def timed(fn, repeats: int) -> tuple[float, float]:
    """(first call, median of the next `repeats`) in milliseconds."""
    t0 = time.perf_counter()
    fn(0)
    first = (time.perf_counter() - t0) * 1000
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(r + 1)
        times.append((time.perf_counter() - t0) * 1000)
    return first, statistics.median(times)


def measure(proj: Path, n: int, repeats: int) -> dict[str, float]:
    from starlette.testclient import TestClient

    from labelseed.web import create_app

    app = create_app(proj, token="t", allowed_hosts={"testserver"}, user="bench")
    c = TestClient(app)
    c.get("/?token=t")
    hdr = {"X-CSRF-Token": app.state.csrf}
    from labelseed.project import Project

    with Project.open(proj) as p:
        summary = p.run()["summary"]
    cls = "c0"
    total = 0  # rows of the class, read from the first page below
    rng = np.random.default_rng(1)
    out: dict[str, float] = {"rows": n}

    def review(i: int) -> None:
        off = int(rng.integers(0, max(total - 50, 1))) if total else 0
        r = c.get(f"/review?cls={cls}&offset={off}")
        assert r.status_code == 200, r.text[:300]

    r = c.get(f"/review?cls={cls}")
    import re

    total = int(re.search(r"(\d+) rows predicted", r.text).group(1))
    for name, fn in (("review_page_ms", review),
                     ("label_page_ms", lambda i: c.get("/label").raise_for_status()),
                     ("home_page_ms", lambda i: c.get("/").raise_for_status())):
        first, med = timed(fn, repeats)
        out[name] = round(med, 1)
        out[name.replace("_ms", "_first_ms")] = round(first, 1)
    # a threshold that accepts ~10% of the pool for the class (~100,000 rows at 1M)
    from labelseed.ops import RunArrays

    ra = RunArrays.load(proj / "runs" / summary_run(proj), summary, "")
    k = ra.class_index(cls)
    order = ra.order(k)
    want = min(n // 10, len(order))
    t = float(ra.confidence[order[want - 1]])
    accepts, undos, sizes = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = c.post("/api/review/accept", json={"cls": cls, "t": t}, headers=hdr)
        accepts.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text
        sizes.append(r.json()["n_rows"])
        t0 = time.perf_counter()
        u = c.post("/api/review/undo", json={"batch": r.json()["batch"]}, headers=hdr)
        undos.append((time.perf_counter() - t0) * 1000)
        assert u.status_code == 200 and u.json()["n_rows"] == sizes[-1]
    out.update(bulk_rows=int(statistics.median(sizes)), bulk_threshold=round(t, 4),
               bulk_accept_ms=round(statistics.median(accepts), 1), bulk_undo_ms=round(statistics.median(undos), 1))
    return out


def summary_run(proj: Path) -> str:
    from labelseed.project import Project

    with Project.open(proj) as p:
        return p.run()["run_id"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--work", default="/tmp/labelseed-serve-bench")
    args = ap.parse_args()
    import shutil

    results = []
    for n in (args.small, args.rows):
        folder = Path(args.work) / f"n{n}"
        shutil.rmtree(folder, ignore_errors=True)
        proj, _ = make_project(folder, n)
        res = measure(proj, n, args.repeats)
        print(json.dumps(res), flush=True)
        results.append(res)
        shutil.rmtree(folder, ignore_errors=True)
    small, big = results
    ratios = {k: round(big[k] / small[k], 2) for k in big if k.endswith("_ms") and small.get(k)}
    print("ratios 1M / small:", json.dumps(ratios))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_big.json").write_text(json.dumps({"small": small, "big": big, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
