"""Honest estimates on real data from Debian's Fashion-MNIST (skipped where it is not installed)."""
from __future__ import annotations

import numpy as np
import pytest

from labelseed import AutoLabeler, datasets

pytestmark = pytest.mark.skipif(
    not datasets.FASHION_DIR.exists(),
    reason="Debian package dataset-fashion-mnist is not installed (apt-get install -y dataset-fashion-mnist)",
)


@pytest.mark.parametrize("method", ["spreading", "ensemble"])
def test_fashion_mnist_estimates_are_honest(method):
    # 8 label draws: over 2 the mean gap is mostly which 2 were drawn (ensemble 0.033 on seeds 0-1,
    # 0.024 on 0-7; spreading 0.026 and 0.022), and a single draw can certify nothing (spreading
    # certified 0 on 2 of these 8), so coverage is judged over the draws, not per draw
    X, y = datasets.fashion_mnist_vectors(n=10_000, random_state=0)
    right = accepted = 0
    gaps, coverage = [], []
    for s in range(8):
        m = AutoLabeler(method=method, target_precision=0.95, random_state=s).fit(X, datasets.hide_labels(y, 10, s))
        r = m.result_
        ok = r.labels[r.accepted] == y[r.accepted]
        right += int(ok.sum())
        accepted += len(ok)
        coverage.append(r.coverage)
        if len(ok):
            gaps.append(abs(ok.mean() - r.expected_precision))
    assert np.mean(coverage) > 0.05  # it does label a real share of the pool
    assert right / accepted >= 0.93
    assert np.mean(gaps) <= 0.03
