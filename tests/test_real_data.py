"""Honest estimates on real data from Debian's Fashion-MNIST (skipped where it is not installed)."""
from __future__ import annotations

import numpy as np
import pytest

from labelseed import AutoLabeler, datasets

pytestmark = pytest.mark.skipif(
    not datasets.FASHION_DIR.exists(),
    reason="Debian package dataset-fashion-mnist is not installed (apt-get install -y dataset-fashion-mnist)",
)


def test_fashion_mnist_estimates_are_honest():
    X, y = datasets.fashion_mnist_vectors(n=10_000, random_state=0)
    right = accepted = 0
    gaps = []
    for s in range(2):
        m = AutoLabeler(target_precision=0.95, random_state=s).fit(X, datasets.hide_labels(y, 10, s))
        r = m.result_
        ok = r.labels[r.accepted] == y[r.accepted]
        right += int(ok.sum())
        accepted += len(ok)
        gaps.append(abs(ok.mean() - r.expected_precision))
        assert r.coverage > 0.05  # it does label a real share of the pool
    assert right / accepted >= 0.93
    assert np.mean(gaps) <= 0.03
