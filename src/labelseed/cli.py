"""Command-line interface: parse -> one library call -> render."""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from ._io import (
    atomic_dir, check_output_free, read_embeddings, read_seed_labels, write_csv_atomic, write_json, write_json_atomic,
)
from ._validation import check_embeddings, encode_labels
from .autolabeler import ABSTAIN, SEED, AutoLabeler
from .graph import cached_knn_graph
from .exceptions import InputError, LabelseedError

EXIT_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labelseed", description="Grow a small labeled seed into reliable labels.")
    p.add_argument("--version", action="version", version=f"labelseed {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("autolabel", help="auto-label a pool of embeddings from a labeled seed")
    a.add_argument("--embeddings", required=True, help=".npy (ids = row numbers) or .parquet (id + vector column)")
    a.add_argument("--labels", required=True, help="CSV with columns id,label")
    a.add_argument("--out", required=True, help="output folder (written atomically)")
    a.add_argument("--target-precision", type=float, default=0.95)
    g = a.add_mutually_exclusive_group()
    g.add_argument("--per-class", dest="per_class", action="store_true", default=True, help="one threshold per class (default)")
    g.add_argument("--global", dest="per_class", action="store_false", help="one threshold for all classes")
    a.add_argument("--metric", default="target_precision",
                   help="target_precision (default), precision, recall, f1, f<beta>, accuracy")
    a.add_argument("--method", choices=["spreading", "self_training"], default="spreading")
    a.add_argument("--n-neighbors", type=int, default=10)
    a.add_argument("--alpha", type=float, default=None, help="label spreading alpha (default: the library's)")
    a.add_argument("--folds", type=int, default=5)
    a.add_argument("--min-support", type=int, default=3)
    a.add_argument("--id-column", default="id")
    a.add_argument("--vector-column", default=None)
    a.add_argument("--seed", type=int, default=0, help="random seed (folds, bootstrap, index)")
    a.add_argument("--force", action="store_true", help="replace --out if it exists")
    a.add_argument("--cache-dir", default=None,
                   help="where kNN graphs are kept for re-runs (default: $XDG_CACHE_HOME/labelseed or ~/.cache/labelseed)")
    a.add_argument("--no-cache", action="store_true", help="always rebuild the kNN graph")
    a.add_argument("--quiet", action="store_true", help="no progress bars or table")
    s = sub.add_parser("select", help="pick a small, diverse set of rows for a person to label first")
    s.add_argument("--embeddings", required=True, help=".npy (ids = row numbers) or .parquet (id + vector column)")
    s.add_argument("--budget", type=int, required=True, help="how many rows to pick")
    s.add_argument("--strategy", default="kmeans", help="kmeans (default), typiclust, kcenter, facility")
    s.add_argument("--labels", default=None, help="CSV id,label of rows already labeled (never picked again)")
    s.add_argument("--out", required=True, help="CSV to write (id, rank, strategy, reason); a Label Studio "
                   "tasks file is written beside it with the suffix .labelstudio.json")
    s.add_argument("--id-column", default="id")
    s.add_argument("--vector-column", default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    q = sub.add_parser("query", help="the next rows a person should label, after a seed exists")
    q.add_argument("--embeddings", required=True)
    q.add_argument("--labels", required=True, help="CSV id,label of the rows labeled so far")
    q.add_argument("--budget", type=int, required=True)
    q.add_argument("--strategy", default="abstained",
                   help="abstained (default), uncertainty, unreached, unsupported, disagreement")
    q.add_argument("--target-precision", type=float, default=0.95)
    q.add_argument("--out", required=True, help="CSV (id, rank, strategy, reason) + .labelstudio.json beside it")
    q.add_argument("--id-column", default="id")
    q.add_argument("--vector-column", default=None)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--force", action="store_true")
    q.add_argument("--cache-dir", default=None)
    q.add_argument("--no-cache", action="store_true")
    au = sub.add_parser("audit", help="a stratified sample of auto-labels to verify, or the precision a verified one shows")
    au.add_argument("--run", required=True, help="an autolabel output folder")
    au.add_argument("--budget", type=int, default=None, help="rows to sample for a person to verify")
    au.add_argument("--verified", default=None, help="CSV id,label of audited rows with the person's labels: "
                    "prints and writes the realized precision with its interval")
    au.add_argument("--out", default=None, help="where to write the sample CSV (with --budget)")
    au.add_argument("--seed", type=int, default=0)
    au.add_argument("--force", action="store_true")
    return p


class _Progress:
    """Rich progress bars keyed by stage name, for the library's progress callback."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tasks: dict[str, Any] = {}
        self.bar: Any = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                TimeElapsedColumn(), TimeRemainingColumn(), transient=True,
                                console=_console(stderr=True))
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # piped output (logs, CI) gets a wide table instead of rich's 80-column default
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 140)


def _fmt(v: float, digits: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _json_num(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def autolabel(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out = Path(args.out)
    check_output_free(out, args.force)  # before the long run, not only at the end
    ids, X = read_embeddings(args.embeddings, args.id_column, args.vector_column)
    labels = read_seed_labels(args.labels, ids)
    params: dict[str, Any] = dict(
        method=args.method, target_precision=args.target_precision, metric=args.metric, per_class=args.per_class,
        n_neighbors=args.n_neighbors, n_splits=args.folds, min_support=args.min_support, random_state=args.seed,
    )
    if args.alpha is not None:
        params["alpha"] = args.alpha
    model = AutoLabeler(**params)
    with _Progress(not args.quiet) as progress:
        graph = None
        if args.method == "spreading" and not args.no_cache:
            X = check_embeddings(X)  # one float32 copy shared by the cache key and fit()
            graph, reused = cached_knn_graph(X, args.n_neighbors, _cache_dir(args),
                                             progress=progress, random_state=args.seed)
            if reused and not args.quiet:
                print("reusing the kNN graph of an earlier run (--no-cache to rebuild)", file=sys.stderr)
        model.fit(X, labels, graph=graph, progress=progress)
    r = model.result_
    keep = np.flatnonzero(r.source != ABSTAIN)
    id_list = ids.tolist()
    with atomic_dir(out, args.force) as tmp:
        _write_labels(tmp, [id_list[i] for i in keep], [str(r.labels[i]) for i in keep],
                      r.confidence[keep], r.source[keep])
        import pyarrow as pa
        import pyarrow.csv as pacsv

        ab = r.abstained
        pred = model.label_distributions_[ab].argmax(axis=1) if len(ab) else np.empty(0, dtype=int)
        reached = model.label_distributions_[ab].sum(axis=1) > 0 if len(ab) else np.empty(0, dtype=bool)
        pacsv.write_csv(pa.table({
            "id": pa.array([str(id_list[i]) for i in ab], pa.string()),
            "best_guess": pa.array([str(model.classes_[p]) if ok else None for p, ok in zip(pred, reached)], pa.string()),
            "confidence": pa.array(r.confidence[ab].astype(np.float64)),
        }), tmp / "abstained.csv")
        summary = _summary(args, model, X.shape, time.perf_counter() - t0)
        write_json(tmp / "summary.json", summary)
    if not args.quiet:
        _print_table(model, summary, out)
    return 0


def _cache_dir(args: argparse.Namespace) -> Path:
    if args.cache_dir:
        return Path(args.cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "labelseed"


def _write_labels(folder: Path, ids: list[Any], labels: list[str], conf: np.ndarray, source: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    id_arr = pa.array(ids) if all(isinstance(i, int) for i in ids) else pa.array([str(i) for i in ids], pa.string())
    table = pa.table({"id": id_arr, "label": pa.array(labels, pa.string()),
                      "confidence": pa.array(conf.astype(np.float64)), "source": pa.array(source.tolist(), pa.string())})
    pq.write_table(table, folder / "auto_labels.parquet")
    pacsv.write_csv(table, folder / "auto_labels.csv")


def _summary(args: argparse.Namespace, model: AutoLabeler, shape: tuple[int, ...], seconds: float) -> dict[str, Any]:
    r = model.result_
    th = r.thresholds
    n_seed = int((r.source == SEED).sum())
    classes = []
    for row in th.per_class:
        d = {k: _json_num(v) for k, v in row.__dict__.items() if k != "fold_thresholds"}
        d["label"] = str(row.label)
        d["fold_thresholds"] = [_json_num(v) for v in row.fold_thresholds]
        classes.append(d)
    return {
        "expected_precision": _json_num(th.expected_precision),
        "expected_precision_interval": [_json_num(th.precision_low), _json_num(th.precision_high)],
        "coverage": _json_num(th.coverage),
        "n_rows": int(shape[0]),
        "n_dims": int(shape[1]),
        "n_seed": n_seed,
        "n_auto": int(len(r.accepted)),
        "n_abstained": int(len(r.abstained)),
        "mode": th.mode,
        "metric": th.metric,
        "target_precision": _json_num(th.target_precision),
        "cv_score": _json_num(th.cv_score),
        "n_splits": int(model.n_splits_),
        "graph": model.graph_.method if model.graph_ is not None else None,
        "params": {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in model.get_params().items()},
        "inputs": {"embeddings": str(Path(args.embeddings).resolve()), "labels": str(Path(args.labels).resolve())},
        "seconds": round(seconds, 3),
        "version": __version__,
        "classes": classes,
    }


def _print_table(model: AutoLabeler, summary: dict[str, Any], out: Path) -> None:
    from rich.table import Table

    th = model.result_.thresholds
    t = Table(title=f"labelseed: {summary['n_auto']} auto-labels, {summary['n_abstained']} abstained ({th.mode}, {th.metric})")
    for col in ("class", "seed", "auto", "threshold", "exp. precision [90%]", "coverage", "support", "spread", "target met"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for row in th.per_class:
        t.add_row(str(row.label), str(row.n_seed), str(row.n_accepted), _fmt(row.threshold),
                  f"{_fmt(row.expected_precision)} [{_fmt(row.precision_low)}, {_fmt(row.precision_high)}]",
                  _fmt(row.expected_coverage), str(row.support), _fmt(row.threshold_spread),
                  "yes" if row.meets_target else "no")
    c = _console()
    c.print(t)
    c.print(f"expected precision {_fmt(th.expected_precision)} [{_fmt(th.precision_low)}, {_fmt(th.precision_high)}], "
            f"coverage {_fmt(th.coverage)} of the unlabeled pool; written to {out}/")


def _check_selection_out(out: Path, force: bool, budget: int) -> None:
    """Before any work: both outputs of a selection are free and the budget is positive."""
    for path in (out, out.with_suffix(".labelstudio.json")):
        check_output_free(path, force)
    if budget < 1:
        raise InputError(f"--budget must be at least 1; got {budget}.")


def select_cmd(args: argparse.Namespace) -> int:
    from .select import select

    out = Path(args.out)
    _check_selection_out(out, args.force, args.budget)
    ids, X = read_embeddings(args.embeddings, args.id_column, args.vector_column)
    labeled = None
    if args.labels:
        labels = read_seed_labels(args.labels, ids)
        labeled = np.flatnonzero(labels != None)  # noqa: E711
    sel = select(X, args.budget, args.strategy, labeled=labeled, random_state=args.seed)
    _write_selection(out, ids.tolist(), sel)
    return 0


def _write_selection(out: Path, ids: list[Any], sel: Any, extra: dict[int, dict[str, Any]] | None = None) -> None:
    """The CSV (id, rank, strategy, reason) and its Label Studio tasks file, both atomic."""
    ls_out = out.with_suffix(".labelstudio.json")
    rows = [{"id": ids[r], "rank": rank + 1, "strategy": sel.strategy, "reason": reason}
            for rank, (r, reason) in enumerate(zip(sel.rows.tolist(), sel.reasons))]
    write_csv_atomic(out, ["id", "rank", "strategy", "reason"], rows)
    tasks = []
    for r, row in zip(sel.rows.tolist(), rows):
        task: dict[str, Any] = {"data": {"item_id": row["id"], "rank": row["rank"], "reason": row["reason"]}}
        task.update((extra or {}).get(r, {}))
        tasks.append(task)
    write_json_atomic(ls_out, tasks)
    print(f"picked {len(rows)} rows ({sel.strategy}); written to {out} and {ls_out}")


def query_cmd(args: argparse.Namespace) -> int:
    from .select import query

    out = Path(args.out)
    _check_selection_out(out, args.force, args.budget)
    ids, X = read_embeddings(args.embeddings, args.id_column, args.vector_column)
    X = check_embeddings(X)
    labels = read_seed_labels(args.labels, ids)
    model = AutoLabeler(target_precision=args.target_precision, random_state=args.seed)
    graph = None
    if not args.no_cache:
        graph, _ = cached_knn_graph(X, model.n_neighbors, _cache_dir(args), random_state=args.seed)
    model.fit(X, labels, graph=graph)
    codes, _ = encode_labels(labels, len(ids))
    unsupported = np.array([i for i, r in enumerate(model.result_.thresholds.per_class) if not r.meets_target])
    other = None
    if args.strategy == "disagreement":
        from .graph import normalize_rows
        from .spreading import self_train

        other = self_train(normalize_rows(X), codes, len(model.classes_),
                           random_state=args.seed).scores.predicted
    accepted = np.zeros(len(ids), dtype=bool)
    accepted[model.result_.accepted] = True
    sel = query(X, model.label_distributions_, codes, args.budget, args.strategy, accepted=accepted,
                unsupported=unsupported, other_predicted=other, random_state=args.seed)
    _write_selection(out, ids.tolist(), sel)
    return 0


def audit_cmd(args: argparse.Namespace) -> int:
    import csv

    from .select import audit_estimate, audit_sample

    run = Path(args.run)
    labels_csv = run / "auto_labels.csv"
    if not labels_csv.exists():
        raise InputError(f"--run {str(run)!r} has no auto_labels.csv; pass a folder written by `labelseed autolabel`.")
    with open(labels_csv, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["source"] == "auto"]
    if args.verified:
        if not Path(args.verified).exists():
            raise InputError(f"--verified file {args.verified!r} does not exist.")
        with open(args.verified, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not {"id", "label"} <= set(reader.fieldnames or []):
                raise InputError(f"--verified {args.verified!r} needs the columns id,label (the person's labels).")
            checked = {r["id"].strip(): r["label"].strip() for r in reader if r["label"].strip()}
        predicted = {r["id"]: r["label"] for r in rows}
        unknown = [i for i in checked if i not in predicted]
        if unknown:
            raise InputError(f"--verified has {len(unknown)} id(s) that are not auto-labels of this run, "
                             f"e.g. {unknown[0]!r}; audit only rows from its audit sample.")
        if not checked:
            raise InputError(f"--verified {args.verified!r} has no labeled rows.")
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
        ids = list(checked)
        est = audit_estimate(np.array([predicted[i] for i in ids], dtype=object),
                             np.array([checked[i] for i in ids], dtype=object), counts)
        summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
        result = {"realized_precision": est.precision, "interval_95": [est.low, est.high], "n_verified": est.n_verified,
                  "expected_precision": summary.get("expected_precision"),
                  "per_class": {c: {"verified": v[0], "right": v[1], "precision": v[2], "interval_95": [v[3], v[4]]}
                                for c, v in est.per_class.items()}}
        out = run / "audit.json"
        check_output_free(out, args.force)
        write_json_atomic(out, result)
        print(f"realized precision {est.precision:.3f} [{est.low:.3f}, {est.high:.3f}] from {est.n_verified} verified "
              f"auto-labels (expected {result['expected_precision']}); written to {out}")
        return 0
    if args.budget is None or args.out is None:
        raise InputError("audit needs --budget N --out FILE to draw a sample, or --verified FILE to measure one.")
    out = Path(args.out)
    _check_selection_out(out, args.force, args.budget)
    ids = [r["id"] for r in rows]
    labels = np.array([r["label"] for r in rows], dtype=object)
    sel = audit_sample(labels, np.arange(len(rows)), args.budget, random_state=args.seed)
    pre = {i: {"predictions": [{"result": [{"type": "choices", "from_name": "label", "to_name": "item",
                                            "value": {"choices": [str(labels[i])]}}]}]} for i in sel.rows.tolist()}
    _write_selection(out, ids, sel, pre)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show_warning  # type: ignore[assignment]
    try:
        if args.command == "autolabel":
            return autolabel(args)
        if args.command == "select":
            return select_cmd(args)
        if args.command == "query":
            return query_cmd(args)
        if args.command == "audit":
            return audit_cmd(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except LabelseedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
