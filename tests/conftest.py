from __future__ import annotations

import numpy as np
import pytest


def blobs(n_per: int = 40, n_classes: int = 3, dim: int = 8, spread: float = 0.3, seed: int = 0):
    """Well separated clusters on the sphere, with their true classes."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_classes, dim)) * 3
    X = np.concatenate([c + spread * rng.standard_normal((n_per, dim)) for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(n_classes), n_per)
    return X, y


def seed_labels(y: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.full(len(y), -1)
    for c in np.unique(y):
        pick = rng.choice(np.flatnonzero(y == c), per_class, replace=False)
        out[pick] = y[pick]
    return out


@pytest.fixture
def small():
    X, y = blobs()
    return X, y, seed_labels(y, 6)
