"""Coverage at matched precision: labelseed's precision target swept on digits, 10 labels
per class, seeds 0-2 (the seeds the talk method ran on in quality.py), so its coverage can
be read at the talk method's realized precision.

    python bench/matched.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import load  # noqa: E402

from labelseed import AutoLabeler  # noqa: E402
from labelseed.datasets import hide_labels  # noqa: E402
from labelseed.graph import normalize_rows  # noqa: E402


def main() -> None:
    X, y = load("digits")
    X = normalize_rows(X)
    print("| target | confidence_level | realized precision (pooled) | expected | coverage |")
    print("|---|---|---|---|---|")
    for target in (0.95, 0.93, 0.9):
        for level in (0.8, 0.5):
            right = acc = 0
            cov, exp = [], []
            for seed in range(3):
                m = AutoLabeler(target_precision=target, confidence_level=level, random_state=seed)
                r = m.fit(X, hide_labels(y, 10, seed)).result_
                right += int((r.labels[r.accepted] == y[r.accepted]).sum())
                acc += len(r.accepted)
                cov.append(r.coverage)
                exp.append(r.expected_precision)
            print(f"| {target} | {level} | {right / acc:.3f} | {np.mean(exp):.3f} | {np.mean(cov):.3f} |")


if __name__ == "__main__":
    main()
