from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

EXE = Path(sys.executable).parent / "labelseed"
CLI_CACHE = Path(tempfile.mkdtemp(prefix="labelseed-test-cache-"))


def run_cli(*args: str, cache: Path = CLI_CACHE) -> subprocess.CompletedProcess:
    """The installed `labelseed` entry point, with a private graph cache (never the user's)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=300, env=env)


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
