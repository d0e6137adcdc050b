"""`make demo`: the whole method end to end on real labeled data, through the CLI.

For each data set (scikit-learn's digits; Fashion-MNIST where Debian's package is
installed) it writes the vectors and a seed of 10 random labels per class, runs
``labelseed autolabel``, and checks the accepted auto-labels against the hidden truth.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from . import datasets
from .cli import main as cli_main


def run(name: str, X: np.ndarray, y: np.ndarray, out_root: Path, per_class: int = 10) -> None:
    folder = out_root / name
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "embeddings.npy", X)
    seed = datasets.hide_labels(y, per_class, random_state=0)
    with open(folder / "seed.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        for i in np.flatnonzero(seed != None):  # noqa: E711
            w.writerow([i, seed[i]])
    print(f"\n=== {name}: {len(y)} rows, {len(np.unique(y))} classes, {per_class} labels per class ===")
    out = folder / "run"
    code = cli_main(["autolabel", "--embeddings", str(folder / "embeddings.npy"), "--labels", str(folder / "seed.csv"),
                     "--target-precision", "0.95", "--out", str(out), "--force"])
    if code != 0:
        raise SystemExit(code)
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader(open(out / "auto_labels.csv")))
    auto = [(int(r["id"]), r["label"]) for r in rows if r["source"] == "auto"]
    right = sum(y[i] == lab for i, lab in auto)
    realized = right / len(auto) if auto else float("nan")
    print("hidden-truth check, per class (expected -> realized precision of the auto-labels):")
    for row in summary["classes"]:
        mine = [y[i] == lab for i, lab in auto if lab == row["label"]]
        got = f"{np.mean(mine):.3f}" if mine else "-"
        exp = f"{row['expected_precision']:.3f}" if row["expected_precision"] is not None else "-"
        print(f"  {row['label']:>12}: {len(mine):6d} auto-labels, expected {exp} -> realized {got}")
    exp_all = summary["expected_precision"]
    print(f"overall: {len(auto)} auto-labels, realized precision {realized:.3f} vs expected "
          f"{exp_all if exp_all is None else round(exp_all, 3)}; coverage {summary['coverage']:.3f}")


def main() -> None:
    out_root = Path("out/demo")
    X, y = datasets.digits()
    run("digits", X, y, out_root)
    try:
        Xf, yf = datasets.fashion_mnist_vectors()
    except datasets.DatasetMissing as exc:
        print(f"\n(skipping Fashion-MNIST: {exc})")
    else:
        run("fashion-mnist", Xf, yf, out_root)
    print(f"\nOutputs are in {out_root}/")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
