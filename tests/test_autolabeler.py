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


@pytest.mark.parametrize("n_per", [400, 2500])  # the exact graph, and the IVF index with its nprobe tuning
def test_every_stage_of_a_fit_reports_progress_to_its_end(n_per):
    """The CLI draws a bar (count and time left) per stage the fit reports: every long stage
    reports, each report stays within its total, and each stage's last report is its total, so
    no bar stops part way (spreading once reported CG iterations out of max_iter, 9 of 1,000,
    and the nprobe tuning the step it stopped at)."""
    X, y = blobs(n_per=n_per, n_classes=4, dim=32, spread=1.0)
    codes = seed_labels(y, 10)
    seen: list[tuple[str, int, int]] = []
    AutoLabeler(random_state=0).fit(X, codes, progress=lambda stage, done, total: seen.append((stage, done, total)))
    stages = list(dict.fromkeys(s for s, _, _ in seen))
    graph = ["knn graph (exact)"] if n_per * 4 <= 5_000 else ["knn graph (index)", "knn graph (tuning)",
                                                               "knn graph (search)"]
    assert stages == graph + ["label spreading", "linear classifier", "thresholds", "new-item thresholds"], stages
    for stage in stages:
        reports = [(d, t) for s, d, t in seen if s == stage]
        assert all(0 <= d <= t and t > 0 for d, t in reports), (stage, reports)
        assert reports[-1][0] == reports[-1][1], (stage, reports[-1])
