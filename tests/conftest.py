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


#: three classes of texts with disjoint vocabularies (the README and page tests' pools)
WORDS = {"animal": "dog cat horse cow sheep goat lion tiger wolf bear",
         "food": "bread cheese apple rice soup pasta salad butter honey plum",
         "tool": "hammer wrench saw drill chisel pliers shovel rake axe file"}


def write_text_pool(path: Path, n: int, words: int, suffix: str = "", first_prefix: str = "") -> dict[str, str]:
    """A CSV (id,text) of `n` texts "a W and W ...`suffix`", classes in turn, each text `words`
    words of its class (the first text prefixed with `first_prefix`); returns each id's class."""
    import csv

    rng = np.random.default_rng(0)
    truth = {}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        for i in range(n):
            label = list(WORDS)[i % 3]
            text = f"a {' and '.join(rng.choice(WORDS[label].split(), words))}{suffix}"
            w.writerow([f"t{i}", (first_prefix if i == 0 else "") + text])
            truth[f"t{i}"] = label
    return truth


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
