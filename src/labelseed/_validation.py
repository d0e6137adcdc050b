"""Input checks, in one place, with messages that name the parameter, what was
expected and what was received."""
from __future__ import annotations

import math
import numbers
import os
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .exceptions import FoldFallbackWarning, InputError

#: The smallest number of folds that still gives out-of-fold scores.
MIN_FOLDS = 2


def check_embeddings(X: ArrayLike, name: str = "X") -> NDArray[np.float32]:
    """Return `X` as a C-contiguous float32 matrix of shape (n_rows, n_dims).

    Raises :class:`InputError` for a wrong number of dimensions, an empty pool,
    zero-width vectors, non-numeric data and NaN or infinite values.
    """
    if hasattr(X, "toarray") and hasattr(X, "nnz"):  # scipy.sparse: np.asarray would make a 0-D object array
        raise InputError(f"`{name}` is a sparse matrix; pass dense embedding vectors (e.g. `{name}.toarray()`).")
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and similar
        raise InputError(f"`{name}` must be a 2-D numeric array; could not convert it: {exc}.") from exc
    if arr.ndim != 2:
        raise InputError(
            f"`{name}` must be a 2-D array of shape (n_rows, n_dims); got {arr.ndim}-D shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise InputError(f"`{name}` is an empty pool (0 rows); give at least one row per labeled item.")
    if arr.shape[1] == 0:
        raise InputError(f"`{name}` has 0 dimensions per row; expected embedding vectors.")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"`{name}` must be numeric; got dtype {arr.dtype}.")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    # checked in row blocks so a 1M x 384 pool needs no 384 MB boolean temporary
    step = 65_536
    bad = [start + np.flatnonzero(~np.isfinite(arr[start : start + step]).all(axis=1))
           for start in range(0, arr.shape[0], step)]
    bad_rows = np.concatenate(bad)
    if len(bad_rows):
        shown = ", ".join(str(r) for r in bad_rows[:5])
        more = f" and {len(bad_rows) - 5} more" if len(bad_rows) > 5 else ""
        raise InputError(
            f"`{name}` has NaN or infinite values in {len(bad_rows)} row(s) (rows {shown}{more}); "
            "remove or re-embed those rows."
        )
    return arr


def check_paths(**paths: Any) -> None:
    """Each of `paths` (keyword = the parameter's name) is None or a file system path; a table or
    array given in memory is one line saying how to hand it over."""
    for name, value in paths.items():
        if value is None or isinstance(value, (str, os.PathLike)):
            continue
        kind = type(value).__name__
        hint = " (write it first, e.g. `df.to_parquet('items.parquet')`, and pass that path)" \
            if hasattr(value, "to_parquet") else ""
        raise InputError(f"`{name}` must be a path to a file or folder; got a {kind}{hint}.")


def _is_missing(v: Any) -> bool:
    # None, NaN (a pandas float column's gaps) or pandas' NA (a "string" column's), without importing pandas
    return v is None or (isinstance(v, float) and math.isnan(v)) or type(v).__name__ == "NAType"


def _whole_floats(values: NDArray[Any], name: str) -> NDArray[np.int64]:
    """Float labels that are whole numbers (a pandas integer column with gaps turns float) as ints."""
    f = np.asarray(values, dtype=np.float64)
    bad = f[~np.isfinite(f) | (f != np.round(f))]
    if len(bad):
        raise InputError(f"`{name}` has float labels that are not whole numbers (e.g. {bad[0]!r}); use integer "
                         "classes (NaN or -1 for unlabeled rows) or strings (None for unlabeled rows).")
    return f.astype(np.int64)


def encode_labels(y: ArrayLike, n_rows: int, name: str = "y") -> tuple[NDArray[np.int64], np.ndarray]:
    """Encode labels to integer codes with -1 for unlabeled rows.

    Integers use -1 for unlabeled (whole-number floats too, and NaN); strings and other objects
    use ``None`` (or NaN, or pandas' NA).

    Returns
    -------
    codes : ndarray of shape (n_rows,), int64
        Index into `classes`, or -1 for an unlabeled row.
    classes : ndarray of shape (n_classes,)
        Sorted distinct labels.
    """
    arr = np.asarray(y, dtype=object if not isinstance(y, np.ndarray) else None)
    if arr.ndim != 1:
        raise InputError(f"`{name}` must be 1-D with one label per row; got shape {arr.shape}.")
    if arr.shape[0] != n_rows:
        raise InputError(f"`{name}` has {arr.shape[0]} labels but `X` has {n_rows} rows; they must match.")
    if arr.dtype.kind in "iu":
        labeled = arr != -1
        values = arr[labeled]
    elif arr.dtype.kind == "f":  # whole numbers with NaN (or -1) for unlabeled rows
        labeled = ~np.isnan(arr) & (arr != -1)
        values = _whole_floats(arr[labeled], name)
    elif arr.dtype.kind == "b":
        raise InputError(f"`{name}` must hold class labels (ints or strings), not booleans.")
    else:
        obj = arr.astype(object)
        # None in one vectorised pass; the per-value checks below then only see the non-None
        # values (usually the small labeled seed, not a million unlabeled rows)
        try:
            missing = np.asarray(obj == None, dtype=bool)  # noqa: E711  (elementwise on an object array)
        except TypeError:  # pandas' NA answers == with NA, whose truth is ambiguous
            missing = np.zeros(len(obj), dtype=bool)
        rest = np.flatnonzero(~missing)
        missing[rest] = np.fromiter((_is_missing(v) for v in obj[rest]), dtype=bool, count=len(rest))
        rest = np.flatnonzero(~missing)  # now without NaN and NA either
        numeric = np.zeros(len(obj), dtype=bool)
        numeric[rest] = np.fromiter(
            (isinstance(v, numbers.Real) and not isinstance(v, bool) for v in obj[rest]), dtype=bool, count=len(rest)
        )
        if numeric.any() and (numeric | missing).all():
            # object array of numbers (ints, or whole floats): -1 marks unlabeled like the int case
            missing[numeric] |= np.asarray(obj[numeric], dtype=np.float64) == -1
            labeled = ~missing
            kept = obj[labeled]
            # ints exactly (a class id past 2**53 would not survive floats); floats when whole
            values = kept.astype(np.int64) if all(isinstance(v, numbers.Integral) for v in kept) \
                else _whole_floats(kept, name)
        else:
            labeled = ~missing
            values = obj[labeled]
            kinds = {type(v) for v in values}
            if len(kinds) > 1:
                names = ", ".join(sorted(k.__name__ for k in kinds))
                raise InputError(f"`{name}` mixes label types ({names}); use one type, e.g. all strings.")
            if kinds == {str} and any(v == "" for v in values):
                raise InputError(f"`{name}` has empty-string labels; use None to mark unlabeled rows.")
    codes = np.full(n_rows, -1, dtype=np.int64)
    if labeled.any():
        classes, inv = np.unique(values, return_inverse=True)
        codes[labeled] = inv
    else:
        classes = np.empty(0, dtype=arr.dtype if arr.dtype.kind in "iu" else object)
    return codes, classes


def check_seed(codes: NDArray[np.int64], classes: np.ndarray) -> None:
    """The labeled seed must have at least one labeled row."""
    if len(classes) == 0:
        raise InputError("No labeled rows: label at least two rows of each class (unlabeled rows are -1/None).")


def check_fraction(value: Any, name: str, *, low_open: bool = True, high: float = 1.0) -> float:
    """Check that `value` is a number in (0, high] (or [0, high] when `low_open` is False)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise InputError(f"`{name}` must be a number in (0, {high:g}]; got {value!r}.")
    v = float(value)
    ok = (0 < v <= high) if low_open else (0 <= v <= high)
    if not ok:
        interval = f"(0, {high:g}]" if low_open else f"[0, {high:g}]"
        raise InputError(f"`{name}` must be in {interval}; got {value!r}.")
    return v


def check_int(value: Any, name: str, minimum: int) -> int:
    """Check that `value` is an integer >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _plain(v: object) -> object:
    """A numpy scalar as the Python value it holds (so messages read 2, not np.int64(2))."""
    return v.item() if isinstance(v, np.generic) else v


def check_n_splits(codes: NDArray[np.int64], classes: np.ndarray, n_splits: int) -> int:
    """Return the number of stratified folds to use.

    Every class needs at least `n_splits` labeled rows. Where the smallest class
    has fewer, but at least 2, fall back to that many folds with a
    :class:`FoldFallbackWarning`; below 2 out-of-fold scores are impossible.
    """
    n_splits = check_int(n_splits, "n_splits", MIN_FOLDS)
    counts = np.bincount(codes[codes >= 0], minlength=len(classes))
    smallest = int(counts.min())
    if smallest >= n_splits:
        return n_splits
    def listed(limit: int) -> str:
        small = [f"{_plain(classes[i])!r} ({counts[i]})" for i in np.flatnonzero(counts < limit)]
        return ", ".join(small[:5]) + (f" and {len(small) - 5} more" if len(small) > 5 else "")

    if smallest < MIN_FOLDS:
        raise InputError(
            f"Class(es) {listed(MIN_FOLDS)} have fewer labeled rows than the {MIN_FOLDS} needed for cross-validation; "
            f"label at least {MIN_FOLDS} rows of every class ({n_splits} for {n_splits}-fold CV)."
        )
    warnings.warn(
        f"Class(es) {listed(n_splits)} have fewer labeled rows than n_splits={n_splits}; using {smallest} folds instead. "
        f"Label at least {n_splits} rows of every class for {n_splits}-fold cross-validation.",
        FoldFallbackWarning,
        stacklevel=4,  # check_n_splits <- AutoLabeler._prepare <- fit <- the caller
    )
    return smallest
