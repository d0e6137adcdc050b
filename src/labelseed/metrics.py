"""Business metrics for auto-labeling.

A metric is any callable ``metric(y_true, y_pred) -> float`` over the labeled
seed's out-of-fold predictions, where ``y_pred`` is -1 for a row the labeler
abstained on. Higher is better. The built-ins:

- ``precision``: share of accepted rows whose label is right.
- ``recall``: share of all rows accepted with the right label.
- ``f1``, ``f0.5``, ``f2`` (or :func:`fbeta`): the F-beta of those two.
- ``accuracy``: share of rows whose output equals the truth (an abstention is
  a wrong answer, so on seed rows this equals recall; kept for familiarity).
- ``target_precision``: not a score but a constraint: meet the precision target
  (per class or overall) with the largest coverage of the pool.
"""
from __future__ import annotations

from typing import Callable, Union

import numpy as np
from numpy.typing import NDArray

from .exceptions import InputError

Metric = Callable[[NDArray[np.int64], NDArray[np.int64]], float]
MetricSpec = Union[str, Metric]

TARGET_PRECISION = "target_precision"


def _counts(y_true: NDArray[np.int64], y_pred: NDArray[np.int64]) -> tuple[int, int, int]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    accepted = y_pred != -1
    correct = int(np.count_nonzero(accepted & (y_pred == y_true)))
    return correct, int(np.count_nonzero(accepted)), len(y_true)


def precision(y_true: NDArray[np.int64], y_pred: NDArray[np.int64]) -> float:
    """Share of accepted rows labeled correctly; NaN when nothing is accepted."""
    correct, accepted, _ = _counts(y_true, y_pred)
    return correct / accepted if accepted else float("nan")


def recall(y_true: NDArray[np.int64], y_pred: NDArray[np.int64]) -> float:
    """Share of all rows accepted with the correct label."""
    correct, _, n = _counts(y_true, y_pred)
    return correct / n if n else float("nan")


def accuracy(y_true: NDArray[np.int64], y_pred: NDArray[np.int64]) -> float:
    """Share of rows whose output equals the truth; abstaining counts as wrong."""
    return recall(y_true, y_pred)


def fbeta(beta: float) -> Metric:
    """F-beta of :func:`precision` and :func:`recall` (beta > 1 favours recall)."""
    if not beta > 0:
        raise InputError(f"`beta` must be > 0; got {beta!r}.")

    def metric(y_true: NDArray[np.int64], y_pred: NDArray[np.int64]) -> float:
        correct, accepted, n = _counts(y_true, y_pred)
        if correct == 0:
            return 0.0
        p, r = correct / accepted, correct / n
        b2 = beta * beta
        return (1 + b2) * p * r / (b2 * p + r)

    metric.__name__ = f"f{beta:g}"
    return metric


BUILTIN: dict[str, Metric] = {
    "precision": precision,
    "recall": recall,
    "accuracy": accuracy,
    "f1": fbeta(1.0),
    "f0.5": fbeta(0.5),
    "f2": fbeta(2.0),
}


def resolve_metric(metric: MetricSpec) -> tuple[str, Metric | None]:
    """Return ``(name, callable)``; the callable is None for ``target_precision``."""
    if callable(metric):
        return getattr(metric, "__name__", "custom"), metric
    if metric == TARGET_PRECISION:
        return TARGET_PRECISION, None
    if isinstance(metric, str) and metric in BUILTIN:
        return metric, BUILTIN[metric]
    if isinstance(metric, str) and metric.startswith("f"):
        try:
            beta = float(metric[1:])
        except ValueError:
            beta = -1.0
        if beta > 0:
            return metric, fbeta(beta)
    choices = ", ".join([TARGET_PRECISION, *BUILTIN, "f<beta>"])
    raise InputError(f"`metric` must be one of {choices} or a callable metric(y_true, y_pred); got {metric!r}.")
