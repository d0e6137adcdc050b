"""10,000 fuzzed inputs through the real entry point (issue 12), counted instead of stopping at the
first failure: labels CSVs and .npy pools for `autolabel`, Label Studio JSON and CSV for `import`.

    python bench/fuzz.py                 # 10,000 cases (about 5 minutes here)
    python bench/fuzz.py --cases 2000

Writes bench/results/fuzz.json; the generators and the oracle are tests/fuzzing.py's.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from _common import RESULTS  # noqa: E402
from fuzzing import (VALID_LABELS, Outcome, autolabel_case, import_case, label_csv_bytes,  # noqa: E402
                     label_studio_json, npy_array, run_main, valid_pool)

SHARES = {"labels CSV -> autolabel": 0.4, ".npy -> autolabel": 0.25, "Label Studio JSON -> import": 0.2,
          "labels CSV -> import": 0.15}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--out", default=str(RESULTS / "fuzz.json"))
    a = p.parse_args()
    outcomes: list[Outcome] = []
    common = dict(deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        work = root / "work"
        work.mkdir()
        (root / "pool.csv").write_text("id,text\n" + "".join(f"t{i},word{i % 3} thing {i}\n" for i in range(12)))
        code, _, err = run_main(["init", str(root / "proj"), "--data", str(root / "pool.csv"), "--text-column", "text"])
        assert code == 0, err
        t0 = time.perf_counter()
        n = {k: int(round(a.cases * v)) for k, v in SHARES.items()}

        @settings(max_examples=n["labels CSV -> autolabel"], **common)
        @given(labels=label_csv_bytes())
        def labels(labels: bytes) -> None:
            outcomes.append(autolabel_case(work, valid_pool(), labels, "labels CSV -> autolabel"))

        @settings(max_examples=n[".npy -> autolabel"], **common)
        @given(X=npy_array())
        def embeddings(X) -> None:
            outcomes.append(autolabel_case(work, X, VALID_LABELS.encode(), ".npy -> autolabel"))

        @settings(max_examples=n["Label Studio JSON -> import"], **common)
        @given(data=label_studio_json())
        def ls(data: bytes) -> None:
            outcomes.append(import_case(root / "proj", data, ".json", "Label Studio JSON -> import"))

        @settings(max_examples=n["labels CSV -> import"], **common)
        @given(data=label_csv_bytes(id_prefix="t"))
        def csv_import(data: bytes) -> None:
            outcomes.append(import_case(root / "proj", data, ".csv", "labels CSV -> import"))

        for f in (labels, embeddings, ls, csv_import):
            f()
        seconds = time.perf_counter() - t0
    by_case: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures = [o for o in outcomes if o.failure]
    for o in outcomes:
        by_case[o.case]["cases"] += 1
        by_case[o.case][f"exit {o.exit_code}"] += 1
        by_case[o.case]["failures"] += bool(o.failure)
    result = {"cases": len(outcomes), "failures": len(failures), "seconds": round(seconds, 1),
              "by_input": {k: dict(v) for k, v in by_case.items()},
              "failure_examples": sorted({o.failure for o in failures})[:20]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    print("| input -> command | cases | exit 0 (output checked) | exit 2 (one line, nothing written) | failures |")
    print("|---|---|---|---|---|")
    for k, v in by_case.items():
        print(f"| {k} | {v['cases']} | {v['exit 0']} | {v['exit 2']} | {v['failures']} |")
    print(f"total {len(outcomes)} cases in {seconds:.0f} s, {len(failures)} failures")
    for f in result["failure_examples"]:
        print("  ", f)


if __name__ == "__main__":
    main()
