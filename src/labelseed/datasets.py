"""Real labeled data that installs offline: scikit-learn's digits, and Debian's
Fashion-MNIST (``dataset-fashion-mnist``) and WordNet (``wordnet-base``)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
WORDNET_NOUNS = Path("/usr/share/wordnet/data.noun")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


class DatasetMissing(FileNotFoundError):
    """A Debian data package is not installed."""


def digits() -> tuple[NDArray[np.float32], NDArray[np.str_]]:
    """scikit-learn's bundled 8x8 digits: (1797, 64) float32 and labels '0'..'9'."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y.astype(str)


def _idx(path: Path) -> NDArray[np.uint8]:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_images() -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """All 70,000 Fashion-MNIST images (uint8, 28x28) and class codes 0..9."""
    if not FASHION_DIR.exists():
        raise DatasetMissing("Fashion-MNIST is missing; install it with `apt-get install -y dataset-fashion-mnist`.")
    imgs = np.concatenate([_idx(FASHION_DIR / "train-images-idx3-ubyte.gz"), _idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz")])
    labels = np.concatenate([_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz"), _idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz")])
    return imgs, labels.astype(np.int64)


def fashion_mnist_vectors(dim: int = 384, n: int | None = None, random_state: int = 0) -> tuple[NDArray[np.float32], NDArray[np.str_]]:
    """Fashion-MNIST pixels projected by PCA to `dim` dimensions, with class names.

    `n` draws a random subset of that many images first.
    """
    from sklearn.decomposition import PCA

    imgs, y = fashion_mnist_images()
    if n is not None and n < len(y):
        take = np.sort(np.random.default_rng(random_state).choice(len(y), n, replace=False))
        imgs, y = imgs[take], y[take]
    X = imgs.reshape(len(imgs), -1).astype(np.float32) / 255.0
    X = PCA(min(dim, X.shape[1], len(X)), random_state=random_state, svd_solver="randomized").fit_transform(X)
    return X.astype(np.float32), np.asarray(FASHION_CLASSES)[y]


def wordnet_noun_glosses() -> tuple[list[str], NDArray[np.str_]]:
    """WordNet noun synsets: 'lemma: gloss' texts labeled by lexicographer file (e.g. noun.animal)."""
    if not WORDNET_NOUNS.exists():
        raise DatasetMissing("WordNet is missing; install it with `apt-get install -y wordnet-base`.")
    lexnames = {}
    for i, name in enumerate(
        "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
        "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
        "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
        "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time".split()
    ):
        lexnames[i] = name
    texts, labels = [], []
    with open(WORDNET_NOUNS, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):
                continue
            head, _, gloss = line.partition(" | ")
            parts = head.split()
            lemma = parts[4].replace("_", " ")
            texts.append(f"{lemma}: {gloss.strip()}")
            labels.append(lexnames[int(parts[1])])
    return texts, np.asarray(labels)


def hide_labels(y: NDArray[np.str_], per_class: int, random_state: int = 0) -> NDArray[np.object_]:
    """Keep `per_class` random labels of each class, None elsewhere (the seed a person would give)."""
    rng = np.random.default_rng(random_state)
    seed = np.full(len(y), None, dtype=object)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        pick = rng.choice(rows, min(per_class, len(rows)), replace=False)
        seed[pick] = y[pick]
    return seed
