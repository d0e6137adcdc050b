"""The steps of the loop on plain inputs, returning typed results.

Fit a run, pick rows for a person (cold start, warm query), draw an audit and measure one.
The CLI's file mode (``autolabel``, ``select``, ``query``, ``audit``), the project
(:class:`labelseed.project.Project`), the Python API and the web page all call these, so
each step exists once. Run folders are read and written by :mod:`labelseed.runs`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .autolabeler import AutoLabeler, query_next, run_summary
from .exceptions import InputError, UntrustedEstimateWarning
from .graph import EXACT_MAX_ROWS, N_NEIGHBORS, Progress, cached_knn_graph
from .spreading import ALPHA

if TYPE_CHECKING:
    from ._io import PicksFile


@dataclass(frozen=True)
class FitSettings:
    """Every knob of a run, with the one default each has everywhere (the CLI's, the
    project's and :class:`AutoLabeler`'s). Stored in a run's config and summary, so that
    ``query``, ``apply --refit`` and a re-run use the run's own settings."""

    method: Literal["ensemble", "spreading", "self_training"] = "ensemble"
    target_precision: float = 0.95
    metric: str = "target_precision"
    per_class: bool | Literal["auto"] = "auto"
    n_neighbors: int = N_NEIGHBORS
    alpha: float = ALPHA
    n_splits: int = 5
    min_support: int = 3
    confidence_level: float = 0.8
    label_sampling: Literal["auto", "per_class", "random"] = "auto"
    graph_method: Literal["auto", "exact", "ivf"] = "auto"
    graph_space: Literal["raw", "whitened", "auto"] = "raw"
    exact_max_rows: int = EXACT_MAX_ROWS
    random_state: int = 0

    def estimator(self) -> AutoLabeler:
        return AutoLabeler(**dataclasses.asdict(self))

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, **overrides: Any) -> "FitSettings":
        """Settings from a run's config (unknown keys ignored; ``seed`` is the older name of
        ``random_state``), with `overrides` on top (None values ignored)."""
        config = dict(config or {})
        if "seed" in config and "random_state" not in config:
            config["random_state"] = config["seed"]
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise InputError(f"{unknown[0]!r} is not a setting of a run; the settings are: {', '.join(sorted(names))}.")
        kw = {k: v for k, v in config.items() if k in names and v is not None}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)


@dataclass
class AuditEvidence:
    """Verified rows that certify a run instead of the cross-validated labels
    (``certify="audit"``): positions in the fitted rows, the person's labels and each row's
    probability of having been drawn."""

    rows: NDArray[np.int64]
    labels: NDArray[np.object_]
    inclusion: NDArray[np.float64]


@dataclass
class FitOutcome:
    """A fitted run: the estimator, its JSON-ready summary, and the settings it ran with."""

    model: AutoLabeler
    summary: dict[str, Any]
    settings: FitSettings
    graph_reused: bool = False


def fit(
    X: ArrayLike, y: ArrayLike, settings: FitSettings | None = None, *, calibrate: ArrayLike | None = None,
    cache_dir: str | Path | None = None, progress: Progress | None = None, audit: AuditEvidence | None = None,
    inputs: dict[str, str] | None = None, engine: str = "local", workers: int | None = None,
    design_weight: ArrayLike | None = None,
) -> FitOutcome:
    """Fit one run.

    Parameters
    ----------
    X : array-like of shape (n_rows, n_dims)
    y : array-like of shape (n_rows,)
        Human labels, None (or NaN / "") where unlabeled.
    settings : FitSettings, default=FitSettings()
    calibrate : array-like of bool, shape (n_rows,), optional
        Labeled rows that may calibrate the precision estimate (drawn at random); default all.
    design_weight : array-like of float, shape (n_rows,), optional
        Weight of each calibrating row drawn with a known, unequal probability (select
        ``stratified``, query ``sampled``; :func:`labelseed.thresholds.design_weights`).
    cache_dir : path, optional
        Keep the kNN graph here for later runs on the same vectors (none for self-training,
        which uses no graph).
    audit : AuditEvidence, optional
        Leave these rows out of the spread and certify the thresholds on them instead.
    inputs : dict, optional
        Where the data came from, recorded in the summary.
    engine, workers :
        Where the kNN graph's search runs: ``"local"`` (this process) or ``"ray"`` with
        `workers` actors (:func:`labelseed.engines.get_engine`); the graph, and so the run,
        is the same on either. Propagation and thresholds run here.
    """
    from ._validation import check_embeddings
    from .engines import get_engine
    from .graph import build_knn_graph
    from .space import check_graph_space, graphs_in_spaces

    settings = settings or FitSettings()
    runner = get_engine(engine, workers=workers)  # an unknown engine is bad input before any work
    t0 = time.perf_counter()
    Xa = check_embeddings(X)  # one float32 copy shared by the graph cache key and the fit
    y_fit = np.asarray(y, dtype=object).copy()
    if audit is not None:
        y_fit[audit.rows] = None
    model = settings.estimator()
    reused = False
    with warnings.catch_warnings():  # every input check before the graph is built (and cached); fit warns
        warnings.simplefilter("ignore")
        model._prepare(Xa, y_fit, calibrate, design_weight)
    graph_params = dict(method=settings.graph_method, exact_max_rows=settings.exact_max_rows,
                        random_state=settings.random_state)
    t_graph = time.perf_counter()
    space_map = None
    graphs: dict[str, Any] = {}
    if settings.method != "self_training" and (cache_dir is not None or runner.name != "local"):
        hits: list[bool] = []

        def build(rows: Any, unit: bool) -> Any:
            params = {**graph_params, "normalized": True} if unit else graph_params
            if cache_dir is None:
                hits.append(False)
                return build_knn_graph(rows, settings.n_neighbors, progress=progress, engine=runner,
                                       **params)  # type: ignore[arg-type]
            # the cache key is computed on the mapped rows: a whitened graph never reuses a raw one
            graph, hit = cached_knn_graph(rows, settings.n_neighbors, cache_dir, progress=progress, engine=runner,
                                          **params)
            hits.append(hit)
            return graph

        graphs, space_map = graphs_in_spaces(Xa, check_graph_space(settings.graph_space, settings.method), build,
                                             random_state=settings.random_state)
        reused = all(hits)
    graph_seconds = time.perf_counter() - t_graph
    with warnings.catch_warnings():
        if audit is not None:  # the audit, not the calibration, decides what this run reports
            warnings.simplefilter("ignore", UntrustedEstimateWarning)
        model.fit(Xa, y_fit, graph=graphs or None, progress=progress, calibrate=calibrate, design_weight=design_weight,
                  space_map=space_map)
    if audit is not None:
        model.certify_with_audit(audit.rows, audit.labels, inclusion=audit.inclusion)
    summary = run_summary(model, Xa.shape, inputs or {}, time.perf_counter() - t0)
    if graphs:  # built (or read from the cache) here, not inside the estimator's fit
        summary["timings"]["graph"] = round(graph_seconds, 3)
        summary["graph_reused"] = reused
    summary["settings"] = settings.config()
    return FitOutcome(model, summary, settings, reused)


def query(
    X: ArrayLike, y: ArrayLike, budget: int, strategy: str = "sampled", *, settings: FitSettings | None = None,
    calibrate: ArrayLike | None = None, cache_dir: str | Path | None = None, design_weight: ArrayLike | None = None,
    progress: Progress | None = None,
) -> Any:
    """The next rows a person should label: a fresh fit on the current labels with `settings`
    (a run's own, so the query asks about that model's gaps; `progress` sees its stages), then
    :func:`labelseed.autolabeler.query_next`. Returns a Selection (positions in `X`)."""
    settings = settings or FitSettings()
    with warnings.catch_warnings():  # the estimate is not what a query reports
        warnings.simplefilter("ignore", UntrustedEstimateWarning)
        outcome = fit(X, y, settings, calibrate=calibrate, cache_dir=cache_dir, design_weight=design_weight,
                      progress=progress)
    return query_next(outcome.model, X, y, budget, strategy, random_state=settings.random_state)


@dataclass
class AuditDraw:
    """An audit sample of one run: `selection` holds run rows (the caller's numbering);
    `labels` the run's label and `inclusion` the probability of drawing each picked row."""

    run_id: str
    selection: Any
    labels: list[str]
    inclusion: list[float]


def draw_audit(decisions: Mapping[str, NDArray[Any]], budget: int, *, run_id: str = "", random_state: int = 0) -> AuditDraw:
    """A stratified random sample of a run's accepted auto-labels for a person to verify."""
    from .runs import accepted_labels
    from .select import Selection, audit_sample

    labels = accepted_labels(decisions)
    sel = audit_sample(labels, np.arange(len(labels)), budget, random_state=random_state)
    picked = Selection(np.asarray(decisions["accepted"])[sel.rows].astype(np.int64), sel.strategy, sel.reasons,
                       sel.extra)
    return AuditDraw(run_id, picked, [str(labels[i]) for i in sel.rows],
                     [float(v) for v in sel.extra["inclusion"]])


@dataclass
class ClassAudit:
    verified: int
    right: int
    precision: float
    interval_95: tuple[float, float]


@dataclass
class AuditResult:
    """The realized precision a verified audit shows: stratified over the run's classes, each
    class's share right with its exact interval."""

    realized_precision: float
    interval_95: tuple[float, float]
    n_verified: int
    per_class: dict[str, ClassAudit] = field(default_factory=dict)
    run_id: str | None = None
    expected_precision: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"realized_precision": self.realized_precision, "interval_95": list(self.interval_95),
                               "n_verified": self.n_verified}
        if self.run_id is not None:
            out = {"run_id": self.run_id, **out}
        if self.expected_precision is not None:
            out["expected_precision"] = self.expected_precision
        out["per_class"] = {c: {"verified": v.verified, "right": v.right, "precision": v.precision,
                                "interval_95": list(v.interval_95)} for c, v in self.per_class.items()}
        return out


def measure_audit(run_label: Mapping[Any, str], verified: Mapping[Any, str], class_counts: Mapping[str, int], *,
                  run_id: str | None = None, expected_precision: float | None = None) -> AuditResult | None:
    """Realized precision of a run from verified rows.

    Parameters
    ----------
    run_label : mapping row -> label
        The run's label of each audited row.
    verified : mapping row -> label
        The person's label of the rows verified so far (others are ignored).
    class_counts : mapping label -> int
        Each class's number of accepted auto-labels (the strata weights).

    Returns None when no audited row has been verified yet.
    """
    from .select import audit_estimate

    done = [r for r in run_label if r in verified]
    if not done:
        return None
    est = audit_estimate(np.array([run_label[r] for r in done], dtype=object),
                         np.array([verified[r] for r in done], dtype=object), dict(class_counts))
    return AuditResult(est.precision, (est.low, est.high), est.n_verified,
                       {c: ClassAudit(v[0], v[1], v[2], (v[3], v[4])) for c, v in est.per_class.items()},
                       run_id, expected_precision)


@dataclass
class LabelDesign:
    """What each human label may be used for, from how it arrived.

    `calibrate` (n_rows,): labeled rows drawn at random (origins ``random``, ``validation``,
    ``sampled``), the only ones a precision estimate may learn from; `design_weight`
    (n_rows,) or None: 1 / the probability of being drawn for ``sampled`` rows (scaled per
    draw, :func:`labelseed.thresholds.design_weights`), 1 elsewhere; None when no labeled
    row was drawn with unequal probabilities. `labels` and `calibrated_by`: how many labels
    of each origin there are and how many of them calibrate (``summary.json``'s estimate)."""

    calibrate: NDArray[np.bool_]
    design_weight: NDArray[np.float64] | None
    labels: dict[str, int]
    calibrated_by: dict[str, int]


def label_design(y: ArrayLike, origin: ArrayLike, draw_batch: ArrayLike | None = None,
                 draw_inclusion: ArrayLike | None = None) -> LabelDesign:
    """How each label may be used (:class:`LabelDesign`); the one rule for projects and files.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        Human labels, None where unlabeled.
    origin : array-like of str, shape (n_rows,)
        Each row's origin (:data:`labelseed.store.ORIGINS`).
    draw_batch, draw_inclusion : array-like of shape (n_rows,), optional
        For ``sampled`` rows: which draw (select or query request) took them, and with what
        probability. Needed when any labeled row is ``sampled``.
    """
    from .store import CALIBRATING, ORIGINS
    from .thresholds import design_weights

    ya = np.asarray(y, dtype=object)
    o = np.asarray(origin, dtype=object)
    labeled = np.asarray(ya != None, dtype=bool)  # noqa: E711
    calibrate = labeled & np.isin(o, CALIBRATING)
    at = np.flatnonzero(labeled & (o == "sampled"))
    w = None
    if len(at):
        if draw_batch is None or draw_inclusion is None:
            raise InputError("Rows drawn by select/query need their draw and inclusion probability.")
        batch = np.asarray(draw_batch, dtype=object)[at]
        w = np.ones(len(ya))
        w[at] = design_weights(np.asarray(draw_inclusion, dtype=np.float64)[at],
                               np.unique(batch.astype(str), return_inverse=True)[1])
    return LabelDesign(calibrate, w, {k: int(((o == k) & labeled).sum()) for k in ORIGINS},
                       {k: int(((o == k) & calibrate).sum()) for k in CALIBRATING})


def file_label_design(labels: ArrayLike, picks: "list[PicksFile]", ids: ArrayLike, *,
                      picked: bool = False) -> LabelDesign:
    """:func:`label_design` for labels in files (``autolabel``/``query`` with ``--labels``):
    a row listed in a file ``select``/``query`` wrote (`picks`) has that selection's origin:
    ``sampled`` (calibrates, weighted by 1 / its inclusion) for the strategies that draw at
    random, ``picked`` (spreads, never calibrates) for the rest; every other label is taken
    as a random sample of the pool, or as picked with `picked`."""
    from .select import DRAWN_STRATEGIES, QUERY_STRATEGIES, STRATEGIES

    y = np.asarray(labels, dtype=object)
    id_list = np.asarray(ids).tolist()
    origin = np.full(len(y), "picked" if picked else "random", dtype=object)
    batch = np.full(len(y), "", dtype=object)
    inclusion = np.ones(len(y))
    known = set(STRATEGIES) | set(QUERY_STRATEGIES) | {"audit"}
    listed: dict[int, str] = {}
    for k, pf in enumerate(picks):
        for r, strategy, p in zip(pf.rows.tolist(), pf.strategy.tolist(), pf.inclusion.tolist()):
            if r in listed:
                raise InputError(f"--picks: id {id_list[r]!r} is listed in both {listed[r]!r} and {pf.path!r}; "
                                 "pass each file select/query wrote once.")
            listed[r] = pf.path
            if strategy in DRAWN_STRATEGIES:
                if not math.isfinite(p):
                    raise InputError(f"--picks {pf.path!r}: id {id_list[r]!r} was drawn by {strategy!r} but has no "
                                     "inclusion; pass the file as labelseed select/query wrote it (with its "
                                     "inclusion column).")
                origin[r], batch[r], inclusion[r] = "sampled", str(k), p
            elif strategy in known:
                origin[r] = "picked"
            else:
                raise InputError(f"--picks {pf.path!r}: id {id_list[r]!r} has strategy {strategy!r}, which "
                                 f"labelseed does not write; expected one of {', '.join(sorted(known))}.")
    origin[y == None] = ""  # noqa: E711
    return label_design(y, origin, batch, inclusion)


def check_classes(labels: ArrayLike, allow_single_class: bool) -> None:
    """Refuse a seed with one class unless asked: no wrong label could ever test a threshold."""
    classes = {str(v) for v in np.asarray(labels, dtype=object) if v is not None and v == v and v != ""}
    if len(classes) == 1 and not allow_single_class:
        raise InputError(f"Only one class is labeled ({next(iter(classes))!r}); auto-labeling needs at least two classes "
                         "so that thresholds can be checked against wrong labels. Label rows of another class, or pass "
                         "--allow-single-class to run anyway (every row abstains).")


# ------------------------------------------------------------------ reviewing a run's auto-labels


@dataclass
class RunArrays:
    """What reviewing one run needs, loaded once (a 1M-row run is a few tens of MB): per fitted
    row its project row, predicted class, confidence and status; per class its threshold and
    precision-coverage curve; the out-of-fold predictions of the calibration rows."""

    run_id: str
    rows: NDArray[np.int64]
    classes: list[str]
    predicted: NDArray[np.int32]
    confidence: NDArray[np.float32]
    status: NDArray[np.int8]
    thresholds: dict[str, float]
    curves: dict[str, tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]]
    oof_true: NDArray[np.int64]
    oof_pred: NDArray[np.int64]
    oof_conf: NDArray[np.float64]
    _order: dict[int, NDArray[np.int64]] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path, summary: Mapping[str, Any], run_id: str) -> "RunArrays":
        from .runs import REPORT_DATA, read_decisions

        try:
            with np.load(Path(run_dir) / REPORT_DATA, allow_pickle=False) as z:  # no ids: they are in the store
                data = {k: z[k] for k in ("classes", "predicted", "confidence", "status", "curve_offsets",
                                          "curve_threshold", "curve_precision", "curve_coverage")}
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{str(run_dir)!r} has no readable report data ({exc}); fit again.") from None
        d = read_decisions(run_dir)
        classes = [str(c) for c in data["classes"]]
        off = data["curve_offsets"]
        curves = {c: (data["curve_threshold"][off[i]:off[i + 1]], data["curve_precision"][off[i]:off[i + 1]],
                      data["curve_coverage"][off[i]:off[i + 1]]) for i, c in enumerate(classes) if i + 1 < len(off)}
        thresholds = {str(c["label"]): float(c["threshold"]) for c in summary.get("classes", [])
                      if c.get("threshold") is not None}
        return cls(run_id, d["rows"], classes, data["predicted"], data["confidence"], data["status"], thresholds,
                   curves, d.get("oof_true", np.empty(0, np.int64)), d.get("oof_pred", np.empty(0, np.int64)),
                   d.get("oof_conf", np.empty(0)))

    def class_index(self, label: str) -> int:
        if label not in self.classes:
            raise InputError(f"`class` must be one of the run's classes ({', '.join(self.classes)}); got {label!r}.")
        return self.classes.index(label)

    def order(self, k: int) -> NDArray[np.int64]:
        """Positions of the rows predicted as class `k`, most confident first (computed once)."""
        if k not in self._order:
            members = np.flatnonzero(self.predicted == k)
            self._order[k] = members[np.argsort(-self.confidence[members], kind="stable")]
        return self._order[k]


@dataclass
class BulkPreview:
    """What accepting class `label` above `threshold` would commit, before it does: the rows (the
    whole set, not a page), the run's calibrated precision at that threshold, and the out-of-fold
    evidence above it (k of n right, exact 95% interval)."""

    label: str
    threshold: float
    rows: NDArray[np.int64]
    expected_precision: float | None
    expected_coverage: float | None
    oof_right: int
    oof_n: int
    interval_95: tuple[float, float]

    def public(self) -> dict[str, Any]:
        return {"label": self.label, "threshold": self.threshold, "n_rows": int(len(self.rows)),
                "expected_precision": self.expected_precision, "expected_coverage": self.expected_coverage,
                "oof_right": self.oof_right, "oof_n": self.oof_n,
                "interval_95": list(self.interval_95)}


def bulk_preview(run: RunArrays, label: str, threshold: float, human_rows: set[int]) -> BulkPreview:
    """The rows predicted as `label` with confidence >= `threshold` that no person labeled."""
    from .thresholds import clopper_pearson

    if not (isinstance(threshold, (int, float)) and 0 <= float(threshold) <= 1):
        raise InputError(f"`threshold` must be a number in [0, 1]; got {threshold!r}.")
    k = run.class_index(label)
    order = run.order(k)
    above = order[run.confidence[order] >= threshold]
    rows = run.rows[above]
    if human_rows:
        rows = rows[~np.isin(rows, np.fromiter(human_rows, dtype=np.int64, count=len(human_rows)))]
    expected = coverage = None
    if label in run.curves and len(run.curves[label][0]):
        th, prec, cov = run.curves[label]
        at = np.flatnonzero(th >= threshold)
        if len(at):
            j = at[np.argmin(th[at])]
            expected, coverage = float(prec[j]), float(cov[j])
    mine = (run.oof_pred == k) & (run.oof_conf >= threshold)
    n = int(mine.sum())
    right = int((run.oof_true[mine] == k).sum())
    interval = ((clopper_pearson(right, n, 0.025), clopper_pearson(right, n, 0.975, upper=True)) if n
                else (0.0, 1.0))
    return BulkPreview(label, float(threshold), rows, expected, coverage, right, n,
                       (float(interval[0]), float(interval[1])))


# ------------------------------------------------------------------ new items

#: New items labeled per chunk (a chunk's part file is the unit a killed job resumes from).
LABEL_CHUNK_ROWS = 65_536
_PARTS_MANIFEST = ".labelseed-parts.json"  # hidden: Parquet readers of a folder output skip it


@dataclass
class LabelNewResult:
    """What :func:`label_new` wrote: counts, and the estimate the run made for new items."""

    out: Path
    n_items: int
    n_auto: int
    n_abstained: int
    per_class: dict[str, int]
    expected_precision: float | None
    interval: tuple[float | None, float | None]
    chunks_resumed: int
    seconds: float


@dataclass
class NewItemLabels:
    """New items' labels from a run's labeler: class codes (-1 where no label reached), the
    confidence of that class, and whether it passed the class's new-item threshold."""

    predicted: NDArray[np.int64]
    confidence: NDArray[np.float32]
    accepted: NDArray[np.bool_]


def label_vectors(labeler: Any, X: ArrayLike, name: str = "X") -> NewItemLabels:
    """Score new items' vectors against a run's labeler (:func:`labelseed.runs.read_labeler`)
    and apply its new-item thresholds: the one step `label` and `apply --new` share."""
    from ._validation import check_embeddings
    from .autolabeler import accept_new
    from .graph import normalize_rows

    Xa = check_embeddings(X, name)
    if Xa.shape[1] != labeler.n_dims:
        raise InputError(f"{name} has {Xa.shape[1]} dimensions but the run was fitted on {labeler.n_dims}; embed the "
                         "new items with the run's model.")
    Q = normalize_rows(Xa, name)
    space = getattr(labeler, "space", None)
    idx, sim = labeler.index.neighbors(Q if space is None else space.transform(Xa, name), labeler.n_neighbors)
    scores = labeler.scorer.scores(idx, sim, Q)
    return NewItemLabels(scores.predicted, scores.confidence, accept_new(scores, labeler.thresholds))


def _label_chunk(labeler: Any, ids: NDArray[Any], X: NDArray[Any], first_row: int, option: str) -> Any:
    """One chunk of new items -> an Arrow table (id, label, confidence, source, predicted)."""
    import pyarrow as pa

    from .autolabeler import ABSTAIN, AUTO
    from .runs import id_array

    got = label_vectors(labeler, X, f"{option} rows {first_row + 1}-{first_row + len(ids)}")
    names = labeler.classes.astype(object)
    predicted: NDArray[np.object_] = np.where(got.predicted >= 0, names[np.maximum(got.predicted, 0)],
                                              np.array(None, dtype=object))
    ok = got.accepted
    return pa.table({
        "id": id_array(ids.tolist()),
        "label": pa.array([p if a else None for p, a in zip(predicted.tolist(), ok.tolist())], pa.string()),
        "confidence": pa.array(got.confidence.astype(np.float64)),
        "source": pa.array(np.where(ok, AUTO, ABSTAIN).tolist(), pa.string()),
        "predicted": pa.array(predicted.tolist(), pa.string()),
    })


@dataclass
class _NewItemWorker:
    """What labels new items where a batch runs: the run's labeler and a reader of the input."""

    labeler: Any
    reader: Any  # _io.EmbeddingReader


def _new_item_worker(run_dir: Path, reader: Any, labeler: Any = None) -> _NewItemWorker:
    """Built where it runs: a Ray worker reads the run itself (the driver sends only the folder)."""
    from .runs import read_labeler

    return _NewItemWorker(labeler if labeler is not None else read_labeler(run_dir), reader)


def _label_item(worker: _NewItemWorker, item: tuple[int, int, int], option: str, parts: Path) -> int:
    """One engine batch of :func:`label_new`: (chunk number, first row, rows) -> the chunk's part
    file; the rows are read and labeled, and the part written, where the batch runs (on Ray, by
    the worker: neither the vectors nor the table travel through the driver); returns the
    chunk number."""
    from .runs import write_table_file

    i, first, n = item
    ids, X = worker.reader.read(first, n)
    write_table_file(parts / f"part-{i:06d}.parquet", _label_chunk(worker.labeler, ids, X, first, option))
    return i


def label_new(run_dir: str | Path, embeddings: str | Path, out: str | Path, *, id_column: str = "id",
              vector_column: str | None = None, chunk_rows: int = LABEL_CHUNK_ROWS, force: bool = False,
              progress: Progress | None = None, engine: str = "local", workers: int | None = None) -> LabelNewResult:
    """Label items that were not in a run's fit, against the run's saved index and thresholds.

    Each new item is scored as the run's out-of-fold rows were when the new-item thresholds
    were calibrated (its nearest pool rows' spread scores, mixed with the run's linear
    classifier), then labeled (``source="auto"``) or left to abstain. The file is read in
    chunks of `chunk_rows`; each chunk's result is written to a part file beside `out` first (by
    the worker that labeled it), so a killed job resumes with the chunks not yet written, and
    `out` (.parquet or .csv) is assembled from the parts in one rename at the end. An `out`
    without a suffix is a folder of Parquet shards instead (``part-000000.parquet``, ... in input
    order, one per chunk, readable as one data set by pyarrow, Spark or DuckDB): the parts
    become that folder in one rename, with no pass over the rows on the driver.

    Raises
    ------
    InputError
        A run folder that is damaged, from another version, or has no labeler; vectors whose
        dimension differs from the run's; ids twice or already in the run's pool. Nothing is
        written then.
    """
    import json
    import shutil

    import pyarrow.parquet as pq

    from ._io import EmbeddingReader, check_output_free, iter_embedding_ids, open_embeddings
    from .runs import REPORT_DATA, _read_npz, read_labeler, read_summary, write_table_file

    t0 = time.perf_counter()
    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.is_dir():
        raise InputError(f"--run {str(run_dir)!r} is not a folder; pass the --out folder of `labelseed autolabel` or "
                         "a project run (runs/<run_id>).")
    if chunk_rows < 1:
        raise InputError(f"--chunk-rows must be at least 1; got {chunk_rows}.")
    shards = out.suffix == ""  # a folder of Parquet shards
    if not shards and out.suffix.lower() not in (".parquet", ".csv"):
        raise InputError(f"--out must end in .parquet or .csv, or be a folder name without a suffix (for Parquet "
                         f"shards); got {str(out)!r}.")
    check_output_free(out, force, inputs=(embeddings, run_dir))
    summary = read_summary(run_dir)
    labeler = read_labeler(run_dir)
    from .engines import get_engine

    runner = get_engine(engine, workers=workers)  # before anything is written: an unknown engine is bad input
    option = "--embeddings"
    n_items = open_embeddings(embeddings, id_column, option=option)
    pool_ids: set[str] | None = None
    if Path(embeddings).suffix.lower() != ".npy":  # a .npy's ids are its row numbers: nothing to collide with
        report = run_dir / REPORT_DATA
        pool_ids = set(_read_npz(report)["ids"].tolist()) if report.exists() else None

    src = Path(embeddings).resolve()
    stat = src.stat()
    manifest = {"run": str(run_dir.resolve()), "run_seconds": summary.get("seconds"),
                "labeler_mtime_ns": (run_dir / "labeler.npz").stat().st_mtime_ns, "input": str(src),
                "input_size": stat.st_size, "input_mtime_ns": stat.st_mtime_ns, "chunk_rows": chunk_rows,
                "id_column": id_column, "vector_column": vector_column}
    parts = out.parent / f".{out.name}.parts"
    # every id is checked (one pass over the id column, on the driver) before anything is labeled
    seen: set[str] = set()
    done = 0
    for ids in iter_embedding_ids(embeddings, id_column, chunk_rows=chunk_rows, option=option):
        keys = [str(v) for v in ids.tolist()]
        for k, key in enumerate(keys):
            if key in seen:
                raise InputError(f"{option} has the id {key!r} twice (the second at row {done + k + 1}); every new "
                                 "item needs its own id.")
            if pool_ids is not None and key in pool_ids:
                raise InputError(f"{option} row {done + k + 1} has the id {key!r}, which is already in the run's "
                                 "pool (it has its label there); drop those rows or give new items new ids.")
            seen.add(key)
        done += len(keys)
    del seen, pool_ids
    if parts.exists():
        try:
            old = json.loads((parts / _PARTS_MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old is None:  # not ours: never delete what labelseed did not write
            raise InputError(f"{str(parts)!r} exists and was not written by labelseed; move it away and run again.")
        if old != manifest:  # another input or run: its parts are stale
            shutil.rmtree(parts)
    fresh = not parts.exists()
    parts.mkdir(parents=True, exist_ok=True)
    if fresh:
        (parts / _PARTS_MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    chunks = [(i, first, min(chunk_rows, n_items - first)) for i, first in enumerate(range(0, n_items, chunk_rows))]
    pending = [c for c in chunks if not (parts / f"part-{c[0]:06d}.parquet").exists()]
    resumed = len(chunks) - len(pending)
    finished = n_items - sum(c[2] for c in pending)
    if progress:
        progress("label new items", finished, n_items)

    reader = EmbeddingReader(embeddings, id_column, vector_column, chunk_rows=chunk_rows, option=option)
    # on Ray each worker reads the run itself; the driver keeps nothing of it
    make = functools.partial(_new_item_worker, run_dir, reader, labeler if runner.name == "local" else None)
    del labeler
    try:
        for i in runner.map_list(make, functools.partial(_label_item, option=option, parts=parts), pending):
            finished += chunks[i][2]
            if progress:
                progress("label new items", finished, n_items)
    except InputError:
        shutil.rmtree(parts, ignore_errors=True)  # bad input: nothing written, no parts left behind
        raise
    counts: dict[str, int] = {}
    n_auto = 0
    if shards:  # the parts are the output: count from two columns, then one rename
        from ._io import mark_output, replace_dir

        for f in sorted(parts.glob("part-*.parquet")):
            n_auto += _count(pq.read_table(f, columns=["label", "source"]), counts)
        mark_output(parts)
        replace_dir(parts, out)
    else:  # assemble: stream the parts into one file, renamed into place, counting the auto-labels on the way
        def counted() -> Any:
            nonlocal n_auto
            for f in sorted(parts.glob("part-*.parquet")):
                table = pq.read_table(f)
                n_auto += _count(table, counts)
                yield table

        write_table_file(out, counted())
        shutil.rmtree(parts, ignore_errors=True)
    new = summary.get("new_items") or {}
    interval = tuple(new.get("expected_precision_interval") or (None, None))
    return LabelNewResult(out=out, n_items=n_items, n_auto=n_auto, n_abstained=n_items - n_auto, per_class=counts,
                          expected_precision=new.get("expected_precision"),
                          interval=(interval[0], interval[1]), chunks_resumed=resumed,
                          seconds=time.perf_counter() - t0)


def _count(table: Any, counts: dict[str, int]) -> int:
    import pyarrow.compute as pc

    auto = table.filter(pc.equal(table.column("source"), "auto"))
    for label, n in zip(*np.unique(np.asarray(auto.column("label").to_pylist(), dtype=object).astype(str),
                                   return_counts=True)) if auto.num_rows else ():
        counts[str(label)] = counts.get(str(label), 0) + int(n)
    return int(auto.num_rows)
