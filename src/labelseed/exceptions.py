"""Error and warning types raised by labelseed.

Every error about the caller's input is an :class:`InputError`, a ``ValueError``
subclass, so ``except ValueError`` keeps working for scikit-learn users while the
CLI can map all of them to exit code 2 with a one-line message.
"""
from __future__ import annotations


class LabelseedError(Exception):
    """Base class for every error labelseed raises on purpose."""


class InputError(LabelseedError, ValueError):
    """The caller's data or parameters are invalid; the message says how to fix them."""


class MissingDependencyError(LabelseedError, ImportError):
    """An optional dependency a step needs is not installed; the message names the
    ``pip install 'labelseed[extra]'`` line (the CLI prints it as one line, exit code 2)."""


class OutputExistsError(InputError):
    """An output path exists and overwriting it was not asked for."""


class NotFittedError(LabelseedError, AttributeError):
    """An estimator was used before ``fit``."""


class FoldFallbackWarning(UserWarning):
    """Fewer cross-validation folds were used than asked, because a class is too small."""


class UntrustedEstimateWarning(UserWarning):
    """The precision estimate rests on labels that were not drawn at random (picked by the tool)."""
