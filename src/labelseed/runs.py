"""Run artifacts, read and written in one place.

A fitted run is a folder: ``summary.json`` (estimates and settings), ``decisions.npz`` (which
rows were accepted, with which label, confidence and threshold; the human-labeled rows; the
score distribution; the out-of-fold predictions) and ``report_data.npz`` (what a report
draws). ``labelseed autolabel`` writes them into its ``--out`` folder beside the label files;
a project writes them under ``runs/<run_id>/``. Both read them back through this module, and
so do ``audit``, ``query --run``, ``status`` and ``report``.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from numpy.typing import NDArray

from ._io import write_json_atomic
from .exceptions import InputError

SUMMARY = "summary.json"
DECISIONS = "decisions.npz"
REPORT_DATA = "report_data.npz"
AUDIT = "audit.json"
#: What labels new items against the run: scores, classifier, thresholds (``labeler.npz``) and the
#: pool's search index (``index.faiss``).
LABELER = "labeler.npz"
INDEX = "index.faiss"
#: Bumped when the labeler's layout changes; a run with another number is refused with the fix.
LABELER_FORMAT = 1

#: each row's status in report data
HUMAN, AUTO, ABSTAINED = 0, 1, 2
STATUS_NAMES = ("seed", "auto", "abstained")


def write_run(folder: Path, model: Any, summary: dict[str, Any], rows: NDArray[np.int64], ids: list[Any],
              human_rows: NDArray[np.int64]) -> None:
    """Write a fitted `model`'s summary, decisions and report data into `folder` (a temporary
    folder the caller renames into place).

    Parameters
    ----------
    rows : ndarray of shape (n_rows,)
        The row number (in the caller's numbering: pool row or project row) of each row `model`
        was fitted on.
    ids : list of length n_rows
        Each fitted row's id.
    human_rows : ndarray of shape (n_human,)
        Rows (same numbering) with a human label, audited rows included.
    """
    r = model.result_
    acc = r.accepted
    th_by_class = np.asarray(model.thresholds_, dtype=np.float64)
    codes = (np.searchsorted(model.classes_, r.labels[acc].astype(model.classes_.dtype)) if len(acc)
             else np.empty(0, dtype=np.int64))
    np.savez(folder / DECISIONS, rows=rows, classes=np.asarray([str(c) for c in model.classes_]),
             accepted=rows[acc], accepted_label=codes.astype(np.int32),
             accepted_confidence=r.confidence[acc].astype(np.float32),
             accepted_threshold=th_by_class[codes] if len(acc) else np.empty(0),
             seed_rows=human_rows,
             distribution=model.label_distributions_.astype(np.float32),
             oof_true=model.cv_scores_.y_true, oof_pred=model.cv_scores_.oof.predicted,
             oof_conf=model.cv_scores_.oof.confidence)
    write_json_atomic(folder / SUMMARY, summary)
    save_report_data(folder / REPORT_DATA, model, ids)
    if getattr(model, "new_item_scorer_", None) is not None:
        write_labeler(folder, model)


def write_labeler(folder: Path, model: Any) -> None:
    """What :func:`labelseed.ops.label_new` needs to label items that were not in the fit: the
    pool's spread scores, the linear classifier, the thresholds calibrated for new items and the
    pool's search index (the graph's own index, linked from the cache when it came from there)."""
    from .graph import PoolIndex, _UnitRows, ivf_index

    scorer, th, graph = model.new_item_scorer_, model.new_item_thresholds_, model.graph_
    index = graph.index
    space = getattr(model, "space_map_", None)
    if index is None:  # an exact graph, or a cached graph saved without its index
        unit = (_UnitRows(model._X_fit, normalized=False) if space is None
                else _UnitRows(space.transform(model._X_fit), normalized=True))
        if graph.method == "exact":
            index = PoolIndex.exact(unit)
        else:
            index, _, _ = ivf_index(unit, graph.n_neighbors, np.random.default_rng(model.random_state),
                                 model.random_state)
            index.set_nprobe(graph.nprobe)
    linked = False
    source = getattr(index, "path", None)
    if source is not None and Path(source).exists():
        try:
            os.link(source, folder / INDEX)  # the cache's copy: no second file of the same bytes
            linked = True
        except OSError:
            pass
    if not linked:
        index.save(folder / INDEX)
    lin = scorer.linear
    np.savez(folder / LABELER, format=np.array(LABELER_FORMAT), classes=np.asarray([str(c) for c in model.classes_]),
             spread=scorer.spread.astype(np.float32), weight=np.array(scorer.weight),
             coef=np.empty((0, 0), np.float32) if lin is None else lin.coef,
             intercept=np.empty(0, np.float32) if lin is None else lin.intercept,
             thresholds=np.asarray(th.thresholds, dtype=np.float64), n_neighbors=np.array(graph.n_neighbors),
             n_dims=np.array(model._X_fit.shape[1]), index_kind=np.array(index.kind),
             nprobe=np.array(-1 if index.nprobe is None else index.nprobe), k_factor=np.array(index.k_factor),
             space_mean=np.empty(0, np.float32) if space is None else space.mean,
             space_matrix=np.empty((0, 0), np.float32) if space is None else space.matrix)


@dataclass
class Labeler:
    """A run's new-item labeler, read back (:func:`read_labeler`)."""

    classes: NDArray[np.str_]
    scorer: Any  # autolabeler.NewItemScorer
    thresholds: NDArray[np.float64]
    index: Any  # graph.PoolIndex
    n_neighbors: int
    n_dims: int
    space: Any = None  # space.SpaceMap: new items are mapped before their neighbours are searched


def read_labeler(folder: Path) -> Labeler:
    """The labeler a run saved, or one line saying why it cannot be used."""
    from .autolabeler import NewItemScorer
    from .graph import PoolIndex
    from .space import SpaceMap
    from .spreading import LinearModel

    folder = Path(folder)
    summary = read_summary(folder)
    path = folder / LABELER
    if not path.exists():
        if summary.get("params", {}).get("method") == "self_training":
            raise InputError(f"{str(folder)!r} was fitted with method self_training, which has no graph to label new "
                             "items against; fit again with the default method.")
        raise InputError(f"{str(folder)!r} has no {LABELER} (written by labelseed {summary.get('version', '?')}, "
                         "before new items could be labeled); fit the run again with this version.")
    d = _read_npz(path)
    need = ("format", "classes", "spread", "weight", "coef", "intercept", "thresholds", "n_neighbors", "n_dims",
            "index_kind", "nprobe", "k_factor")
    missing = [k for k in need if k not in d]
    if missing:
        raise _damaged(path, KeyError(f"no {missing[0]!r}"))
    if int(d["format"]) != LABELER_FORMAT:
        raise InputError(f"{str(folder)!r} was written by another labelseed version (labeler format {int(d['format'])}, "
                         f"this version reads {LABELER_FORMAT}); fit the run again with this version.")
    n_classes = len(d["classes"])
    if d["spread"].ndim != 2 or d["spread"].shape[1] != n_classes or len(d["thresholds"]) != n_classes:
        raise _damaged(path, ValueError("its arrays do not match its classes"))
    if not (folder / INDEX).exists():
        raise InputError(f"{str(folder)!r} has no {INDEX} (the pool's search index); fit the run again.")
    nprobe = int(d["nprobe"])
    try:
        index = PoolIndex.load(folder / INDEX, str(d["index_kind"]), None if nprobe < 0 else nprobe, int(d["k_factor"]))
    except RuntimeError as exc:
        raise _damaged(folder / INDEX, ValueError(str(exc).strip().splitlines()[-1][:200])) from None
    if index.n_rows != d["spread"].shape[0] or index.n_dims != int(d["n_dims"]):
        raise _damaged(folder / INDEX, ValueError(f"it holds {index.n_rows} x {index.n_dims} vectors, the labeler "
                                                  f"{d['spread'].shape[0]} x {int(d['n_dims'])}"))
    space = None
    if d.get("space_mean") is not None and d["space_mean"].size:  # runs of older versions: the raw space
        mean, matrix = d["space_mean"], d.get("space_matrix")
        if matrix is None or mean.shape != (int(d["n_dims"]),) or matrix.shape != (len(mean), len(mean)):
            raise _damaged(path, ValueError("its graph-space map does not match its dimensions"))
        space = SpaceMap(mean.astype(np.float32), matrix.astype(np.float32))
    linear = None if d["coef"].size == 0 else LinearModel(d["coef"].astype(np.float32),
                                                          d["intercept"].astype(np.float32))
    scorer = NewItemScorer(spread=d["spread"], linear=linear, weight=float(d["weight"]))
    return Labeler(classes=d["classes"], scorer=scorer, thresholds=d["thresholds"], index=index,
                   n_neighbors=int(d["n_neighbors"]), n_dims=int(d["n_dims"]), space=space)


def save_report_data(path: Path, model: Any, ids: list[Any] | NDArray[Any]) -> None:
    """Store what a report of `model`'s fit needs (``.npz``)."""
    from .autolabeler import ABSTAIN, SEED as HUMAN_SOURCE

    r = model.result_
    status = np.full(len(r.source), AUTO, dtype=np.int8)
    status[r.source == HUMAN_SOURCE] = HUMAN
    status[r.source == ABSTAIN] = ABSTAINED
    final = model.cv_scores_.final
    curves = model.result_.thresholds.curves
    offsets = np.cumsum([0] + [len(c.thresholds) for c in curves])
    np.savez(
        path,
        ids=np.asarray([str(i) for i in ids]),
        classes=np.asarray([str(c) for c in model.classes_]),
        status=status,
        predicted=final.predicted.astype(np.int32),
        confidence=final.confidence.astype(np.float32),
        oof_true=model.cv_scores_.y_true.astype(np.int32),
        oof_pred=model.cv_scores_.oof.predicted.astype(np.int32),
        curve_offsets=offsets.astype(np.int64),
        curve_threshold=np.concatenate([c.thresholds for c in curves]) if curves else np.empty(0),
        curve_precision=np.concatenate([c.expected_precision for c in curves]) if curves else np.empty(0),
        curve_coverage=np.concatenate([c.coverage for c in curves]) if curves else np.empty(0),
    )


def _damaged(path: Path, exc: BaseException) -> InputError:
    return InputError(f"{str(path)!r} is damaged ({exc}); run `labelseed autolabel` (or `fit`) again to rewrite the "
                      "run.")


def read_summary(folder: Path) -> dict[str, Any]:
    """A run's summary.json, or one line saying it is missing or damaged."""
    path = Path(folder) / SUMMARY
    if not path.exists():
        raise InputError(f"{str(folder)!r} has no {SUMMARY}; pass a folder written by `labelseed autolabel`.")
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise _damaged(path, exc) from None
    if not isinstance(out, dict):
        raise _damaged(path, ValueError("not a JSON object"))
    return out


def _read_npz(path: Path) -> dict[str, NDArray[Any]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise _damaged(path, exc) from None


def read_report_data(folder: Path) -> dict[str, NDArray[Any]]:
    path = Path(folder) / REPORT_DATA
    if not path.exists():
        raise InputError(f"{str(folder)!r} has no {REPORT_DATA}; fit again (or run `labelseed autolabel` again) to "
                         "report on it.")
    return _read_npz(path)


def read_decisions(folder: Path) -> dict[str, NDArray[Any]]:
    """A run's decisions: rows, classes, accepted rows with label code, confidence and threshold,
    human-labeled rows, distributions and out-of-fold predictions."""
    path = Path(folder) / DECISIONS
    if not path.exists():
        raise InputError(f"{str(folder)!r} has no {DECISIONS} (made by an older labelseed, or not a run); fit again "
                         "(or run `labelseed autolabel` again).")
    d = _read_npz(path)
    need = ("rows", "classes", "accepted", "accepted_label", "accepted_confidence", "accepted_threshold",
            "seed_rows", "distribution")
    missing = [k for k in need if k not in d]
    if missing:
        raise _damaged(path, KeyError(f"no {missing[0]!r}"))
    return d


def accepted_labels(decisions: Mapping[str, NDArray[Any]]) -> NDArray[np.object_]:
    """The label of each accepted row of a run's decisions."""
    if not len(decisions["accepted"]):
        return np.empty(0, dtype=object)
    return decisions["classes"][decisions["accepted_label"]].astype(object)


# ------------------------------------------------------------------ label tables


def id_array(ids: list[Any]) -> Any:
    """Ids as an Arrow column: int64 when every id is an int (they stay ints), else strings."""
    import pyarrow as pa

    if ids and all(isinstance(i, (int, np.integer)) for i in ids):
        return pa.array(ids, pa.int64())
    return pa.array([str(i) for i in ids], pa.string())


def label_table(records: list[tuple[Any, str, float, str]]) -> Any:
    """(id, label, confidence, source) records as a pyarrow table: the one layout of every labels
    file labelseed writes (ids that are all ints stay ints)."""
    import pyarrow as pa

    return pa.table({"id": id_array([r[0] for r in records]),
                     "label": pa.array([r[1] for r in records], pa.string()),
                     "confidence": pa.array([float(r[2]) for r in records], pa.float64()),
                     "source": pa.array([r[3] for r in records], pa.string())})


def write_table_file(target: Path, tables: Any) -> None:
    """A table, or an iterable of tables of one schema written one after the other (a file
    larger than memory), as .parquet or CSV (formula cells neutralised), written to a temporary
    file and renamed into place; temporary files a killed earlier attempt left are removed first."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from ._io import csv_safe_table

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.tmp"):  # left by a killed earlier attempt
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    parquet = target.suffix.lower() == ".parquet"
    try:
        writer: Any = None
        for table in [tables] if isinstance(tables, pa.Table) else tables:
            if not parquet:
                table = csv_safe_table(table)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema) if parquet else pacsv.CSVWriter(tmp, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # on disk before anything records that it was written
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_labels(target: Path, records: list[tuple[Any, str, float, str]]) -> None:
    """Human + auto labels (id, label, confidence, source) as .csv or .parquet, atomically."""
    write_table_file(target, label_table(records))


def label_records(model: Any, ids: list[Any]) -> list[tuple[Any, str, float, str]]:
    """The human and accepted rows of a fitted model as (id, label, confidence, source)."""
    from .autolabeler import ABSTAIN

    r = model.result_
    keep = np.flatnonzero(r.source != ABSTAIN)
    return [(ids[i], str(r.labels[i]), float(r.confidence[i]), str(r.source[i])) for i in keep]


def abstained_table(model: Any, ids: list[Any]) -> Any:
    """Abstained rows with the class they lean to (None when no label reached them)."""
    import pyarrow as pa

    r = model.result_
    ab = r.abstained
    dist = model.label_distributions_[ab] if len(ab) else np.empty((0, len(model.classes_)))
    pred, reached = dist.argmax(axis=1), dist.sum(axis=1) > 0
    return pa.table({
        "id": pa.array([str(ids[i]) for i in ab], pa.string()),
        "best_guess": pa.array([str(model.classes_[p]) if ok else None for p, ok in zip(pred, reached)], pa.string()),
        "confidence": pa.array(r.confidence[ab].astype(np.float64)),
    })


def basis_sentence(estimate: Mapping[str, Any] | None) -> str:
    """One sentence on what a run's expected precision rests on (its ``estimate_basis``), as
    ``status``, the page and the report say it; "" for a run that recorded none."""
    if not estimate or not estimate.get("assumes"):
        return ""
    assumes = str(estimate["assumes"])
    if estimate.get("certified_by") == "audit":
        return f"The estimate is {assumes}."
    if not estimate.get("trusted", True):
        return f"The estimate rests on {assumes}."
    return f"The estimate is cross-validated on the labels; it assumes {assumes}."
