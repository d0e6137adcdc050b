"""labelseed: grow a small labeled seed into a large, reliably labeled dataset."""
from __future__ import annotations

from .autolabeler import AutoLabeler, AutoLabelResult
from .exceptions import (
    FoldFallbackWarning,
    InputError,
    LabelseedError,
    MissingDependencyError,
    NotFittedError,
    OutputExistsError,
    UntrustedEstimateWarning,
)
from .graph import KnnGraph, build_knn_graph
from .spreading import Scores, propagate, self_train, spread
from .thresholds import ClassThreshold, ThresholdResult, choose_thresholds, cross_val_scores

__all__ = [
    "AutoLabeler", "AutoLabelResult", "ClassThreshold", "FoldFallbackWarning", "InputError", "KnnGraph",
    "LabelseedError", "MissingDependencyError", "NotFittedError", "OutputExistsError", "Scores", "ThresholdResult",
    "build_knn_graph",
    "UntrustedEstimateWarning", "choose_thresholds", "cross_val_scores", "propagate", "self_train", "spread",
]
__version__ = "0.1.0"
