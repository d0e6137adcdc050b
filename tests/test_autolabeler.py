from __future__ import annotations

import numpy as np
import pytest

from labelseed import AutoLabeler
from labelseed.exceptions import FoldFallbackWarning

from conftest import blobs, seed_labels


def test_a_class_with_one_label_spreads_but_gets_no_auto_labels():
    X, y = blobs(n_per=60, n_classes=4, dim=8, spread=0.6, seed=3)
    codes = seed_labels(y, 6)
    only = np.flatnonzero((codes == 3))
    codes[only[1:]] = -1  # class 3 keeps a single label
    with pytest.warns(FoldFallbackWarning, match="single labeled row"):
        m = AutoLabeler(target_precision=0.9).fit(X, codes)
    assert np.isinf(m.thresholds_[3])
    r = m.result_
    assert not (r.labels[r.accepted] == 3).any()
    assert len(r.accepted) > 0  # the other classes are still auto-labeled
    # class 3's rows are not swallowed by the others: its lone label still spreads
    blob3 = (y == 3) & (codes == -1)
    assert (m.label_distributions_[blob3].argmax(axis=1) == 3).mean() > 0.9
