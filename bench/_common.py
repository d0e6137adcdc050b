"""Shared pieces of the benchmarks: data, baselines, and measuring time and memory."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE = Path(__file__).parent / "cache"
RESULTS = Path(__file__).parent / "results"


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


def load(name: str, n: int | None = None, seed: int = 0, per_class: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Real data sets by name: digits, fashion (PCA-384 pixels), wordnet (MiniLM glosses, at most
    `per_class` per class: 600 gives 13,899 glosses, 100000 all 82,115 nouns)."""
    from labelseed import datasets

    if name == "digits":
        X, y = datasets.digits()
    elif name == "fashion":
        X, y = datasets.fashion_mnist_vectors(n=n, random_state=seed)
        return X, y
    elif name == "wordnet":
        path = CACHE / f"wordnet_minilm_{per_class}.npz"
        if not path.exists():
            raise FileNotFoundError(f"run `python bench/embed_wordnet.py --per-class {per_class}` first "
                                    "(needs labelseed[bench] + torch)")
        z = np.load(path, allow_pickle=True)
        X, y = z["X"], z["y"].astype(str)
    else:
        raise ValueError(name)
    if n is not None and n < len(y):
        take = np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))
        X, y = X[take], y[take]
    return X, y


def load_named(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The label-efficiency benchmarks' image data sets by name: digits, fashion20k (Fashion-MNIST,
    20,000 rows), fashion70k (all 70,000)."""
    if name == "digits":
        return load("digits")
    if name == "fashion20k":
        return load("fashion", n=20_000)
    if name == "fashion70k":
        return load("fashion")
    raise ValueError(name)


def per_class_labels(truth: np.ndarray, k: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Class codes of `m` rows drawn at random within each of the `k` classes of `truth`; -1 elsewhere."""
    codes = np.full(len(truth), -1, dtype=np.int64)
    for c in range(k):
        idx = np.flatnonzero(truth == c)
        codes[rng.choice(idx, min(m, len(idx)), replace=False)] = c
    return codes


def hindsight_cut(scores, truth: np.ndarray, rows: np.ndarray, target: float = 0.95) -> float:
    """Largest share of `rows` one confidence cut could label at precision >= `target`, knowing the truth."""
    c, p = scores.confidence[rows], scores.predicted[rows]
    o = np.argsort(-c, kind="stable")
    prec = np.cumsum(p[o] == truth[rows][o]) / np.arange(1, len(o) + 1)
    ok = np.flatnonzero(prec >= target)
    return float((ok[-1] + 1) / len(rows)) if len(ok) else 0.0


def reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark for this process (Linux: clear_refs 5); return current RSS in KiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_kib("VmRSS")


def peak_rss_kib() -> int:
    """Peak resident memory since the last reset (VmHWM), in KiB."""
    return _status_kib("VmHWM")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Outcome:
    accepted: np.ndarray  # row numbers auto-labeled
    labels: np.ndarray  # their labels
    expected_precision: float = float("nan")


def codes_of(seed_labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    codes = np.full(len(seed_labels), -1, dtype=np.int64)
    lab = np.flatnonzero(seed_labels != None)  # noqa: E711
    codes[lab] = np.searchsorted(classes, seed_labels[lab].astype(str))
    return codes


def sklearn_spreading_scorer(X: np.ndarray, kernel: str, n_classes: int, **kw: object):
    """Scores from scikit-learn's LabelSpreading, one fit per label set (its own graph each time)."""
    import warnings

    from sklearn.semi_supervised import LabelSpreading

    from labelseed.spreading import Scores

    def scorer(code_sets):
        out = []
        for codes in code_sets:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = LabelSpreading(kernel=kernel, **kw).fit(X, codes)
            D = np.nan_to_num(m.label_distributions_, nan=0.0)
            full = np.zeros((len(X), n_classes), dtype=np.float32)
            full[:, m.classes_[m.classes_ >= 0]] = D[:, m.classes_ >= 0]
            out.append(Scores.from_unnormalized(full))
        return out

    return scorer


def thresholded(scorer, codes: np.ndarray, classes: np.ndarray, target: float, seed: int) -> Outcome:
    """labelseed's cross-validated per-class thresholding applied to any scorer's scores."""
    from labelseed.autolabeler import _decide
    from labelseed.thresholds import choose_thresholds, cross_val_scores

    n_splits = int(min(5, np.bincount(codes[codes >= 0]).min()))
    cv = cross_val_scores(scorer, codes, len(classes), n_splits, seed)
    th = choose_thresholds(cv, classes, target_precision=target, random_state=seed)
    r = _decide(codes, classes, cv.final, th)
    return Outcome(r.accepted, r.labels[r.accepted].astype(str), th.expected_precision)


def talk_method(X: np.ndarray, codes: np.ndarray, classes: np.ndarray, target: float, dth: float = 0.1,
                n_splits: int = 5) -> Outcome:
    """The talk's SelfTrainingClassifier(SVC(kernel='linear', probability=True)) method, both bugs fixed.

    Fix 1: a fresh StratifiedKFold split for every threshold (the talk's generator
    was used up after the first one, making every later score NaN).
    Fix 2: held-out and pool rows are scored by what self-training actually
    accepted (``transduction_``), -1 where it never did; ``predict`` labels every row.
    The threshold kept is the lowest whose mean out-of-fold precision meets the
    target (the largest coverage), else the one with the best precision.
    """
    import warnings

    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold
    from sklearn.semi_supervised import SelfTrainingClassifier
    from sklearn.svm import SVC

    base = SVC(kernel="linear", probability=True, random_state=108)
    lab = np.flatnonzero(codes >= 0)
    unl = np.flatnonzero(codes < 0)
    Xl, yl, Xu = X[lab], codes[lab], X[unl]
    n_splits = int(min(n_splits, np.bincount(yl).min()))
    thresholds = np.arange(dth, 1.0, dth)
    cv_prec = []
    for th in thresholds:
        scores = []
        for tr, te in StratifiedKFold(n_splits=n_splits, random_state=108, shuffle=True).split(Xl, yl):
            m = SelfTrainingClassifier(clone(base), threshold=th)
            Xf = np.concatenate([Xl[tr], Xl[te], Xu])
            yf = np.concatenate([yl[tr], np.full(len(te) + len(Xu), -1)])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.fit(Xf, yf)
            pred = m.transduction_[len(tr):len(tr) + len(te)]
            acc = pred != -1
            scores.append((pred[acc] == yl[te][acc]).mean() if acc.any() else np.nan)
        cv_prec.append(np.nanmean(scores) if not np.isnan(scores).all() else np.nan)
    cv_prec = np.array(cv_prec)
    ok = np.flatnonzero(cv_prec >= target)
    th = thresholds[ok[0]] if len(ok) else thresholds[np.nanargmax(cv_prec)]
    m = SelfTrainingClassifier(clone(base), threshold=th)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(np.concatenate([Xl, Xu]), np.concatenate([yl, np.full(len(Xu), -1)]))
    pred = m.transduction_[len(lab):]
    acc = pred != -1
    return Outcome(unl[acc], classes[pred[acc]], float(cv_prec[thresholds == th][0]))


def real_like(n: int, d: int = 384, n_classes: int = 20, subtopics: int = 50, sub_scale: float = 0.7,
              decay: float = 0.8, seed: int = 0, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Issue 14's embeddings shaped like real ones: with B an orthonormal basis scaled by a
    power-law spectrum s_i ~ i^-decay (unit norm), row = c_y B + sub_scale u_{y,s} B + e B
    for standard normal c, u, e, then L2-normalised (neighbour class purity about 0.9)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.arange(1, d + 1) ** -float(decay)
    B = (Q * (s / np.linalg.norm(s))[:, None]).astype(np.float32)  # row i of B: basis vector i, scaled by s_i
    c = rng.standard_normal((n_classes, d)).astype(np.float32)
    u = rng.standard_normal((n_classes, subtopics, d)).astype(np.float32)
    y = rng.integers(0, n_classes, n)
    sub = rng.integers(0, subtopics, n)
    X = np.empty((n, d), dtype=np.float32)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        Z = c[y[a:b]] + sub_scale * u[y[a:b], sub[a:b]] + rng.standard_normal((b - a, d), dtype=np.float32)
        Xb = Z @ B
        Xb /= np.linalg.norm(Xb, axis=1, keepdims=True)
        X[a:b] = Xb
    return X, y.astype(np.int64)


def isotropic_hard(n: int, d: int = 384, n_classes: int = 20, signal: float = 0.3, seed: int = 0,
                   chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Issue 14's isotropic hard case: row = signal c_y + 4 e / sqrt(d), normalised; the
    within-class structure is noise, so no index finds neighbours cheaply."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n_classes, d)).astype(np.float32)
    y = rng.integers(0, n_classes, n)
    X = np.empty((n, d), dtype=np.float32)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        Xb = signal * c[y[a:b]] + 4 * rng.standard_normal((b - a, d), dtype=np.float32) / np.sqrt(d)
        Xb /= np.linalg.norm(Xb, axis=1, keepdims=True)
        X[a:b] = Xb
    return X.astype(np.float32, copy=False), y.astype(np.int64)
