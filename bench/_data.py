"""Real and synthetic data sets for the benchmarks (all offline)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
WORDNET_DIR = Path("/usr/share/wordnet")


def synthetic_clustered(n: int, d: int, seed: int = 0, n_classes: int = 20,
                        clusters_per_class: int = 50, noise: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Hierarchical Gaussian clusters in float32: classes made of many sub-clusters."""
    rng = np.random.default_rng(seed)
    class_centers = rng.standard_normal((n_classes, d)).astype(np.float32)
    sub = class_centers.repeat(clusters_per_class, 0) + 0.8 * rng.standard_normal(
        (n_classes * clusters_per_class, d)).astype(np.float32)
    which = rng.integers(0, len(sub), n)
    X = np.empty((n, d), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):
        w = which[s:s + step]
        X[s:s + step] = sub[w] + noise * rng.standard_normal((len(w), d), dtype=np.float32)
    return X, (which // clusters_per_class).astype(np.int64)


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 Fashion-MNIST images (uint8, 28x28) and labels, from Debian's package."""
    if not FASHION_DIR.exists():
        raise FileNotFoundError("Fashion-MNIST not found; run `apt-get install -y dataset-fashion-mnist`.")
    imgs = np.concatenate([_idx(FASHION_DIR / "train-images-idx3-ubyte.gz"),
                           _idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz")])
    labels = np.concatenate([_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz"),
                             _idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz")])
    return imgs, labels.astype(np.int64)


def fashion_mnist_vectors(dim: int = 384) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST pixels, centred and PCA-projected to `dim` dims (float32)."""
    from sklearn.decomposition import PCA
    imgs, y = fashion_mnist_raw()
    X = imgs.reshape(len(imgs), -1).astype(np.float32) / 255.0
    X = PCA(dim, random_state=0, svd_solver="randomized").fit_transform(X).astype(np.float32)
    return X, y
