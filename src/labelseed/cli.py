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
from typing import Any, NoReturn, Sequence

import numpy as np

from . import __version__
from ._io import (
    atomic_dir,
    check_output_free,
    read_embeddings,
    read_label_csv,
    read_picks,
    read_seed_labels,
    write_csv_atomic,
    write_items,
    write_json,
    write_json_atomic,
    write_table_csv,
)
from .autolabeler import SEED, AutoLabeler
from .graph import N_NEIGHBORS
from .space import GRAPH_SPACE_SETTINGS
from .exceptions import InputError, LabelseedError, MissingDependencyError

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (what was wrong and where the help is), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"error: {self.prog}: {message}; see `{self.prog} --help`.\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="labelseed", description="Grow a small labeled seed into reliable labels.")
    p.add_argument("--version", action="version", version=f"labelseed {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("autolabel", help="auto-label a pool of embeddings from a labeled seed")
    a.add_argument("--embeddings", required=True, help=".npy (ids = row numbers) or .parquet (id + vector column)")
    a.add_argument("--labels", required=True, help="CSV with columns id,label")
    a.add_argument("--out", required=True, help="output folder (written atomically)")
    _origin_options(a)
    _engine_options(a, methods=("ensemble", "spreading", "self_training"))
    _cluster_options(a)
    a.add_argument("--id-column", default="id")
    a.add_argument("--vector-column", default=None)
    _random_seed(a)
    a.add_argument("--force", action="store_true", help="replace --out if it exists")
    a.add_argument("--cache-dir", default=None,
                   help="where kNN graphs are kept for re-runs (default: $XDG_CACHE_HOME/labelseed or ~/.cache/labelseed)")
    a.add_argument("--no-cache", action="store_true", help="always rebuild the kNN graph")
    a.add_argument("--quiet", action="store_true", help="no progress bars or table")
    a.add_argument("--allow-single-class", action="store_true",
                   help="run even when the seed has one class (every row then abstains; the report still works)")
    s = sub.add_parser("select", help="pick a small, diverse set of rows for a person to label first")
    s.add_argument("project", nargs="?", default=None, help="a project folder (or use --embeddings)")
    s.add_argument("--embeddings", default=None, help=".npy (ids = row numbers) or .parquet (id + vector column)")
    s.add_argument("--budget", type=int, required=True, help="how many rows to pick")
    s.add_argument("--strategy", default="stratified",
                   help="stratified (default: a random row per k-means cluster, drawn with a known probability, "
                   "so its labels calibrate the estimate), kmeans (medoids), typiclust, kcenter, facility, gaps "
                   "(regions no label covers); all but stratified are picks that spread but never calibrate")
    s.add_argument("--labels", default=None, help="CSV id,label of rows already labeled (never picked again)")
    s.add_argument("--out", default=None, help="CSV to write (id, rank, strategy, reason); a Label Studio "
                   "tasks file is written beside it with the suffix .labelstudio.json")
    s.add_argument("--id-column", default="id")
    s.add_argument("--vector-column", default=None)
    _random_seed(s)
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.add_argument("--quiet", action="store_true", help="no progress bars (typiclust and facility build a kNN graph)")
    _cluster_options(s)
    q = sub.add_parser("query", help="the next rows a person should label, after a seed exists")
    q.add_argument("project", nargs="?", default=None, help="a project folder (or use --embeddings and --labels)")
    q.add_argument("--embeddings", default=None)
    q.add_argument("--labels", default=None, help="CSV id,label of the rows labeled so far")
    _origin_options(q)
    q.add_argument("--budget", type=int, required=True)
    q.add_argument("--strategy", default="sampled",
                   help="sampled (default: a random draw, 2x likelier among rows the last run abstained on; its "
                   "labels calibrate, weighted), abstained, uncertainty, unreached, unsupported, disagreement "
                   "(picks: they spread but never calibrate)")
    q.add_argument("--run", default=None, help="an autolabel output folder: refit with its settings (default: the "
                   "library's defaults; in a project, the last run's)")
    q.add_argument("--target-precision", type=float, default=None, help="override the run's target (default 0.95)")
    q.add_argument("--out", default=None, help="CSV (id, rank, strategy, reason) + .labelstudio.json beside it")
    q.add_argument("--id-column", default="id")
    q.add_argument("--vector-column", default=None)
    _random_seed(q)
    q.add_argument("--force", action="store_true")
    q.add_argument("--cache-dir", default=None)
    q.add_argument("--no-cache", action="store_true")
    q.add_argument("--quiet", action="store_true", help="no progress bars (the query refits first)")
    au = sub.add_parser("audit", help="a stratified sample of auto-labels to verify, or the precision a verified one shows")
    au.add_argument("project", nargs="?", default=None, help="a project folder (or use --run)")
    au.add_argument("--run", default=None, help="an autolabel output folder")
    au.add_argument("--budget", type=int, default=None, help="rows to sample for a person to verify")
    au.add_argument("--verified", default=None, help="CSV id,label of audited rows with the person's labels: "
                    "prints and writes the realized precision with its interval")
    au.add_argument("--out", default=None, help="where to write the sample CSV (with --budget)")
    _random_seed(au)
    au.add_argument("--force", action="store_true")
    lb = sub.add_parser("label", help="label new items against a fitted run (its saved index and the thresholds "
                        "calibrated for new items; no refit)")
    lb.add_argument("--run", required=True, help="an autolabel output folder, or a project's runs/<run_id>")
    lb.add_argument("--embeddings", required=True, help="the new items' vectors: .npy (ids = row numbers) or "
                    ".parquet (id + vector column), from the run's embedding model")
    lb.add_argument("--out", required=True, help=".parquet or .csv: id, label (empty when abstained), confidence, "
                    "source (auto/abstain), predicted; a name without a suffix: a folder of Parquet shards, one per "
                    "chunk")
    lb.add_argument("--id-column", default="id")
    lb.add_argument("--vector-column", default=None)
    lb.add_argument("--chunk-rows", type=int, default=None, help="items per chunk (default 65536); a killed job "
                    "resumes from the last chunk written")
    lb.add_argument("--force", action="store_true", help="replace --out if it exists")
    lb.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    _cluster_options(lb)
    _project_parsers(sub)
    return p


def _project_parsers(sub: Any) -> None:
    i = sub.add_parser("init", help="create a project from a table of texts or images, an image folder, or vectors")
    i.add_argument("project", help="folder to create (new or empty)")
    i.add_argument("--data", default=None, help=".csv, .parquet or .jsonl with one row per item")
    i.add_argument("--id-column", default="id")
    src = i.add_mutually_exclusive_group(required=True)
    src.add_argument("--text-column", default=None)
    src.add_argument("--image-column", default=None, help="column of image paths (relative to the data file)")
    src.add_argument("--image-dir", default=None, help="a folder of images (ids = paths relative to it)")
    src.add_argument("--vectors", default=None, help="your own vectors: .npy (row order of --data) or .parquet")
    src.add_argument("--vector-column", default=None, help="a list-of-floats column of --data")
    i.add_argument("--label-column", default=None, help="column of --data with seed labels (empty = unlabeled)")
    i.add_argument("--skip-empty", action="store_true", help="leave out rows with empty text instead of stopping")
    i.add_argument("--truncate", action="store_true", help="cut texts longer than 100,000 characters")
    e = sub.add_parser("embed", help="embed the project's items (resumable; offline models)")
    e.add_argument("project")
    e.add_argument("--model", default=None,
                   help="text: all-MiniLM-L6-v2 (default), hashing, or a local sentence-transformers folder; "
                        "images: efficientnet-lite0")
    e.add_argument("--batch-size", type=int, default=None,
                   help="items per batch (default: 256 texts or 64 images; with --engine ray 2,048 texts, one "
                        "Parquet part per batch)")
    e.add_argument("--image-size", type=int, default=224, help="images are resized to this square side")
    _device_option(e)
    e.add_argument("--vectors", default=None, help="use your own vectors instead (.npy in item order, or .parquet with ids)")
    e.add_argument("--force", action="store_true", help="re-embed everything (e.g. with another model)")
    e.add_argument("--quiet", action="store_true")
    _cluster_options(e)
    im = sub.add_parser("import", help="import human labels: CSV id,label or a Label Studio JSON export")
    im.add_argument("project")
    im.add_argument("file")
    im.add_argument("--who", default=None, help="who labeled them (default: $USER)")
    im.add_argument("--replace", action="store_true",
                    help="where the file disagrees with a stored label, take the file's (the old one stays in history)")
    og = im.add_mutually_exclusive_group()
    og.add_argument("--picked", dest="origin", action="store_const", const="picked", default="random",
                    help="these rows were chosen, not drawn at random: they spread but never calibrate the estimate")
    og.add_argument("--validation", dest="origin", action="store_const", const="validation",
                    help="a uniform random sample of the pool: it calibrates, and `fit --certify audit` uses it")
    f = sub.add_parser("fit", help="auto-label the project from its human labels (the core engine)")
    f.add_argument("project")
    _fit_options(f)
    ap = sub.add_parser("apply", help="write the last run's seed + auto labels (id, label, confidence, source)")
    ap.add_argument("project")
    ap.add_argument("--run", dest="run_id", default=None, help="a run id (default: the last run)")
    ap.add_argument("--out", default=None, help=".csv or .parquet (default: PROJECT/labels.csv)")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    ap.add_argument("--refit", action="store_true",
                    help="if the human labels changed since the run, fit again with its settings and apply that")
    ap.add_argument("--new", action="store_true", help="also label the items added since the run was fitted "
                    "(`add`, then `embed`), through the run's saved index and its thresholds for new items")
    ap.add_argument("--quiet", action="store_true")
    ad = sub.add_parser("add", help="add items to a project after it was created (same columns; new ids); "
                        "`embed`, then `apply --new` labels them against the last run, or `fit` refits")
    ad.add_argument("project")
    ad.add_argument("--data", default=None, help=".csv, .parquet or .jsonl of the new items, with the project's "
                    "id and text/image columns")
    ad.add_argument("--vectors", default=None, help="a vectors project: the new items' vectors (.npy in the row "
                    "order of --data, or .parquet with their ids)")
    ad.add_argument("--vector-column", default=None, help="a vectors project: a list-of-floats column of --data")
    ad.add_argument("--label-column", default=None, help="column of --data with seed labels (empty = unlabeled)")
    ad.add_argument("--skip-empty", action="store_true", help="leave out rows with empty text instead of stopping")
    ad.add_argument("--truncate", action="store_true", help="keep the first 100,000 characters of longer texts")
    ex = sub.add_parser("export", help="items with their text or image reference, as CSV or Label Studio JSON")
    ex.add_argument("project")
    ex.add_argument("--out", required=True, help=".csv, or .json for Label Studio tasks")
    ex.add_argument("--items", default="requested", choices=["requested", "unlabeled", "labeled", "all"],
                    help="requested (the last select/query/audit batch, default), unlabeled, labeled, all")
    ex.add_argument("--batch", default=None, help="a request batch id instead of the last one")
    ex.add_argument("--labels-history", action="store_true",
                    help="write every human label ever given (id, label, origin, source, source_row, who, at), "
                         "oldest first, instead of items (.csv or .parquet)")
    ex.add_argument("--force", action="store_true")
    st = sub.add_parser("status", help="counts per class (seed, auto, abstained) and the last run's estimates")
    st.add_argument("project")
    st.add_argument("--json", action="store_true")
    r = sub.add_parser("run", help="init (if needed) -> embed -> import labels -> fit -> apply, in one go")
    r.add_argument("project")
    r.add_argument("--data", default=None)
    r.add_argument("--id-column", default="id")
    rs = r.add_mutually_exclusive_group()
    rs.add_argument("--text-column", default=None)
    rs.add_argument("--image-column", default=None)
    rs.add_argument("--image-dir", default=None)
    rs.add_argument("--vectors", default=None)
    rs.add_argument("--vector-column", default=None)
    r.add_argument("--label-column", default=None)
    r.add_argument("--labels", default=None, help="CSV id,label or Label Studio export of the seed")
    r.add_argument("--model", default=None)
    r.add_argument("--image-size", type=int, default=224)
    _device_option(r)
    r.add_argument("--out", default=None, help="labels file to write (default: PROJECT/labels.csv)")
    r.add_argument("--force", action="store_true", help="replace --out if it exists")
    r.add_argument("--skip-empty", action="store_true")
    r.add_argument("--truncate", action="store_true")
    _fit_options(r)
    sm = sub.add_parser("simulate", help="play the person on labeled data: the loop vs random labels, round by "
                                         "round (plan a labeling budget before paying for it)")
    sm.add_argument("--embeddings", required=True, help=".npy (ids = row numbers) or .parquet (id + vector column)")
    sm.add_argument("--truth", required=True, help="CSV id,label with the true label of every embedded row")
    sm.add_argument("--budget", type=int, required=True, help="human labels to spend in all (audits included)")
    sm.add_argument("--rounds", type=int, default=3, help="rounds: select, then fit -> query -> reveal (default 3)")
    sm.add_argument("--random-share", type=float, default=0.0,
                    help="share of each round's labels drawn uniformly at random besides the strategies' draws "
                    "(default 0: the default strategies draw with known probabilities, so their labels calibrate)")
    sm.add_argument("--audit", type=int, default=0, help="audit rows per round, certified exactly (default 0)")
    sm.add_argument("--no-random", dest="compare_random", action="store_false",
                    help="skip the same engine on the same number of random labels")
    sm.add_argument("--target-precision", type=float, default=0.95)
    sm.add_argument("--method", choices=["ensemble", "spreading"], default="ensemble")
    sm.add_argument("--fast", dest="method", action="store_const", const="spreading", help="same as --method spreading")
    sm.add_argument("--strategy", default="stratified", help="cold-start strategy (as for select)")
    sm.add_argument("--query-strategy", default="sampled", help="query strategy (as for query)")
    sm.add_argument("--n-neighbors", type=int, default=N_NEIGHBORS)
    sm.add_argument("--graph-space", choices=GRAPH_SPACE_SETTINGS, default="raw",
                    help="the fits' kNN graph space, as for autolabel (default raw)")
    sm.add_argument("--id-column", default="id")
    sm.add_argument("--vector-column", default=None)
    _random_seed(sm)
    sm.add_argument("--out", required=True, help="folder for label_efficiency.csv/.json/.png (written atomically)")
    sm.add_argument("--force", action="store_true", help="replace --out if labelseed wrote it")
    sm.add_argument("--quiet", action="store_true")
    sv = sub.add_parser("serve", help="a local page to label, run and audit the project (needs labelseed[web])")
    sv.add_argument("project")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    sv.add_argument("--user", default=None, help="who the labels given in the page are recorded as (default $USER)")
    rp = sub.add_parser("report", help="an HTML page (self-contained), PNG figures and report.json for a run")
    which = rp.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", default=None, help="a `labelseed autolabel` output folder")
    which.add_argument("--project", default=None, help="a project folder (its last run, or --run-id)")
    rp.add_argument("--run-id", default=None)
    rp.add_argument("--out", default=None, help="folder to write (default: RUN/report)")
    rp.add_argument("--map-sample", type=int, default=20_000, help="rows drawn for the 2-D map")
    _random_seed(rp)
    rp.add_argument("--force", action="store_true", help="replace --out if it exists")


def _random_seed(p: argparse.ArgumentParser) -> None:
    # "seed" names the human labels elsewhere; --seed stays as the option's older spelling
    p.add_argument("--random-seed", "--seed", dest="random_state", type=int, default=0,
                   help="random seed (folds, bootstrap, index, sampling; default 0)")


def _settings(args: argparse.Namespace) -> Any:
    """The run settings the engine options on the command line give."""
    from .ops import FitSettings

    return FitSettings(method=args.method, target_precision=args.target_precision, metric=args.metric,
                       per_class=args.per_class, n_neighbors=args.n_neighbors, n_splits=args.folds,
                       min_support=args.min_support, confidence_level=args.confidence_level,
                       label_sampling=args.label_sampling, graph_space=args.graph_space,
                       random_state=args.random_state, **({} if args.alpha is None else {"alpha": args.alpha}))


def _engine_options(p: argparse.ArgumentParser, methods: tuple[str, ...] = ("ensemble", "spreading")) -> None:
    """The engine's knobs, one definition for `autolabel` (files) and `fit`/`run` (projects)."""
    p.add_argument("--target-precision", type=float, default=0.95)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--per-class", dest="per_class", action="store_true", default="auto",
                   help="one threshold per class, each class meeting the target (default: per class or global, "
                        "whichever certifies more)")
    g.add_argument("--global", dest="per_class", action="store_false", help="one threshold for all classes")
    p.add_argument("--metric", default="target_precision",
                   help="target_precision (default), precision, recall, f1, f<beta>, accuracy")
    p.add_argument("--method", choices=list(methods), default="ensemble",
                   help="ensemble: label spreading mixed with a linear classifier (default); spreading: the graph "
                        "alone (faster, less coverage)" + ("; self_training" if "self_training" in methods else ""))
    p.add_argument("--fast", dest="method", action="store_const", const="spreading", help="same as --method spreading")
    p.add_argument("--n-neighbors", type=int, default=N_NEIGHBORS)
    p.add_argument("--graph-space", choices=GRAPH_SPACE_SETTINGS, default="raw",
                   help="build the kNN graph on the vectors as given (default) or whitened by the pool's covariance "
                        "(no labels used; more coverage on pixel and image-model vectors, less on text: "
                        "bench/README.md), or both, the graph chosen out of fold with the classifier's weight (auto)")
    p.add_argument("--alpha", type=float, default=None, help="label spreading alpha (default: the library's)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--min-support", type=int, default=3)
    p.add_argument("--confidence-level", type=float, default=0.8,
                   help="a threshold must meet the target at this lower bootstrap quantile (default 0.8)")
    p.add_argument("--label-sampling", choices=["auto", "per_class", "random"], default="auto",
                   help="how the randomly drawn labels were drawn: at random within each class, uniformly from the "
                        "pool, or decided from the data (default); the estimate states what it assumed")


def _fit_options(p: argparse.ArgumentParser) -> None:
    _engine_options(p)
    _cluster_options(p)
    _random_seed(p)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--allow-single-class", action="store_true",
                   help="fit even when the labels have one class (every row then abstains)")
    p.add_argument("--certify", choices=["cv", "audit"], default="cv",
                   help="cv: thresholds from cross-validated labels (default); audit: raised until the verified "
                        "audit (and --validation labels) certify them with an exact bound")


class _Progress:
    """Rich progress bars keyed by stage name, for the library's progress callback."""

    def __init__(self, enabled: bool, rate: bool = False) -> None:
        self.enabled = enabled
        self.rate = rate
        self.tasks: dict[str, Any] = {}
        self.bar: Any = None

    def __enter__(self) -> "_Progress":
        return self

    def _start(self) -> None:
        # started at the first report, not on entry, and only on a terminal: bad input found
        # before any work then gets its one line alone, and a log no stray blank line
        if not self.enabled:
            return
        console = _console(stderr=True)
        if not console.is_terminal:  # a log or pipe would get only the stopped bar's blank line
            self.enabled = False
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns: list[Any] = [TextColumn("{task.description}"), BarColumn(),
                              TextColumn("{task.completed}/{task.total}")]
        if self.rate:  # items/s for embedding
            from rich.progress import ProgressColumn
            from rich.text import Text

            class Rate(ProgressColumn):  # type: ignore[misc]
                def render(self, task: Any) -> Text:
                    return Text(f"{task.speed:,.1f} items/s" if task.speed else "")

            columns.append(Rate())
        columns += [TimeElapsedColumn(), TimeRemainingColumn()]
        self.bar = Progress(*columns, transient=True, console=console)
        self.bar.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None:
            self._start()
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


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def autolabel(args: argparse.Namespace) -> int:
    from . import ops
    from .runs import abstained_table, label_records, write_labels, write_run

    out = Path(args.out)
    inputs = (args.embeddings, args.labels)
    check_output_free(out, args.force, inputs=inputs)  # before the long run, not only at the end
    ids, X = read_embeddings(args.embeddings, args.id_column, args.vector_column)
    labels = read_seed_labels(args.labels, ids)
    design = _file_design(args, ids, labels)
    ops.check_classes(labels, args.allow_single_class)
    with _Progress(not args.quiet) as progress:
        outcome = ops.fit(X, labels, _settings(args), progress=progress, engine=args.engine, workers=args.workers,
                          cache_dir=None if args.no_cache else _cache_dir(args), calibrate=design.calibrate,
                          design_weight=design.design_weight,
                          inputs={"embeddings": str(Path(args.embeddings).resolve()),
                                  "labels": str(Path(args.labels).resolve())})
    outcome.summary["estimate"]["labels"] = design.labels
    outcome.summary["estimate"]["calibrated_by"] = design.calibrated_by
    if outcome.graph_reused and not args.quiet:
        print("reusing the kNN graph of an earlier run (--no-cache to rebuild)", file=sys.stderr)
    model = outcome.model
    id_list = ids.tolist()
    with atomic_dir(out, args.force, inputs=inputs) as tmp:
        records = label_records(model, id_list)
        write_labels(tmp / "auto_labels.parquet", records)
        write_labels(tmp / "auto_labels.csv", records)
        write_table_csv(abstained_table(model, id_list), tmp / "abstained.csv")
        write_run(tmp, model, outcome.summary, np.arange(len(id_list), dtype=np.int64), id_list,
                  np.flatnonzero(model.result_.source == SEED))
    if not args.quiet:
        _print_table(model, outcome.summary, out)
        _print_basis(outcome.summary)
    return 0


def _cache_dir(args: argparse.Namespace) -> Path:
    if args.cache_dir:
        return Path(args.cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "labelseed"


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
                  "yes" if row.meets_target else
                  ("no" if row.labels_needed is None
                   else f"no (~{row.labels_needed} more random {_plural(row.labels_needed, 'label')})"))
    c = _console()
    c.print(t)
    c.print(f"expected precision {_fmt(th.expected_precision)} [{_fmt(th.precision_low)}, {_fmt(th.precision_high)}], "
            f"coverage {_fmt(th.coverage)} of the unlabeled pool; written to {out}/")
    line = _graph_space_line(summary.get("graph_space"), (summary.get("settings") or {}).get("graph_space"))
    if line:
        c.print(line)


def _graph_space_line(space: str | None, asked: str | None) -> str | None:
    """Which space the run's kNN graph was built in, when it is not the embeddings as given."""
    if asked != "auto" and (space or "raw") == "raw":
        return None
    return f"kNN graph in the {space} space" + (", chosen out of fold over the other (--graph-space auto)"
                                                if asked == "auto" else "")


def _check_selection_out(out: Path, force: bool, budget: int, inputs: tuple[str | Path | None, ...] = ()) -> None:
    """Before any work: both outputs of a selection are free and the budget is positive."""
    for path in (out, out.with_suffix(".labelstudio.json")):
        check_output_free(path, force, inputs=inputs)
    if budget < 1:
        raise InputError(f"--budget must be at least 1; got {budget}.")


def _need(args: argparse.Namespace, command: str, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise InputError(f"`labelseed {command}` needs a project folder, or {' and '.join(missing)} for the file-based form.")


def select_cmd(args: argparse.Namespace) -> int:
    from .engines import get_engine
    from .select import select

    if args.project:
        return _project_pick(args, "select")
    _need(args, "select", "embeddings", "out")
    out = Path(args.out)
    _check_selection_out(out, args.force, args.budget, (args.embeddings, args.labels))
    ids, X = read_embeddings(args.embeddings, args.id_column, args.vector_column)
    labeled = None
    if args.labels:
        labels = read_seed_labels(args.labels, ids)
        labeled = np.flatnonzero(labels != None)  # noqa: E711
    with _Progress(not args.quiet) as progress:
        sel = select(X, args.budget, args.strategy, labeled=labeled, random_state=args.random_state,
                     engine=get_engine(args.engine, workers=args.workers), progress=progress)
    _write_selection(out, ids.tolist(), sel)
    return 0


def _write_selection(out: Path, ids: list[Any], sel: Any, extra: dict[int, dict[str, Any]] | None = None,
                     contents: list[str | None] | None = None, ref: str = "text") -> None:
    """The CSV (id, rank, strategy, reason) and its Label Studio tasks file, both atomic."""
    ls_out = out.with_suffix(".labelstudio.json")
    rows = [int(r) for r in sel.rows]
    ranks = {r: (k + 1, sel.strategy, why) for k, (r, why) in enumerate(zip(rows, sel.reasons))}
    inc = sel.extra.get("inclusion")
    inclusion = None if inc is None else dict(zip(rows, (float(v) for v in inc)))
    for path in (out, ls_out):
        write_items(path, ids, rows, ranks, contents, ref, extra, inclusion)
    print(f"picked {len(rows)} rows ({sel.strategy}); written to {out} and {ls_out}")


def query_cmd(args: argparse.Namespace) -> int:
    from . import ops
    from .runs import read_summary

    if args.project:
        if args.run:
            raise InputError("In a project, `query` refits with the last run's settings; drop --run.")
        if args.picks or args.picked:
            raise InputError("In a project, each label's origin is in the store (`labelseed import --picked` marks "
                             "picked labels); drop --picks/--picked.")
        return _project_pick(args, "query")
    _need(args, "query", "embeddings", "labels", "out")
    out = Path(args.out)
    _check_selection_out(out, args.force, args.budget, (args.embeddings, args.labels))
    config = read_summary(Path(args.run)).get("settings") if args.run else None
    if args.run and config is None:
        raise InputError(f"--run {args.run!r} was written by an older labelseed and records no settings; run "
                         "`labelseed autolabel` again, or drop --run to query with the defaults.")
    settings = ops.FitSettings.from_config(config, random_state=args.random_state,
                                           target_precision=args.target_precision)
    ids, X = read_embeddings(args.embeddings, args.id_column, args.vector_column)
    labels = read_seed_labels(args.labels, ids)
    design = _file_design(args, ids, labels)
    with _Progress(not args.quiet) as progress:
        sel = ops.query(X, labels, args.budget, args.strategy, settings=settings, calibrate=design.calibrate,
                        design_weight=design.design_weight, cache_dir=None if args.no_cache else _cache_dir(args),
                        progress=progress)
    _write_selection(out, ids.tolist(), sel)
    return 0


def audit_cmd(args: argparse.Namespace) -> int:
    from . import ops
    from .runs import AUDIT, accepted_labels, read_decisions, read_report_data, read_summary

    if args.project:
        if args.verified:
            raise InputError(f"In a project, verify an audit by importing the person's labels (`labelseed import "
                             f"{args.project} FILE`); `labelseed status {args.project}` then shows the realized precision.")
        if args.budget is None:
            raise InputError(f"`labelseed audit {args.project}` needs --budget N (how many auto-labels to verify).")
        return _project_pick(args, "audit")
    _need(args, "audit", "run")
    run = Path(args.run)
    if not run.is_dir():
        raise InputError(f"--run {str(run)!r} is not a folder; pass a folder written by `labelseed autolabel`.")
    d = read_decisions(run)
    ids = [str(i) for i in read_report_data(run)["ids"]]
    labels = accepted_labels(d)
    if args.verified:
        checked = {i.strip(): label.strip() for i, label, _ in read_label_csv(args.verified, "--verified file")
                   if label.strip()}
        row_of = {ids[r]: int(r) for r in d["accepted"]}
        unknown = [i for i in checked if i not in row_of]
        if unknown:
            raise InputError(f"--verified has {len(unknown)} id(s) that are not auto-labels of this run, "
                             f"e.g. {unknown[0]!r}; audit only rows from its audit sample.")
        if not checked:
            raise InputError(f"--verified {args.verified!r} has no labeled rows.")
        run_label = {int(r): str(v) for r, v in zip(d["accepted"], labels)}
        classes, counts = np.unique(labels.astype(str), return_counts=True)
        result = ops.measure_audit(run_label, {row_of[i]: v for i, v in checked.items()},
                                   dict(zip(classes.tolist(), counts.tolist())),
                                   expected_precision=read_summary(run).get("expected_precision"))
        if result is None:  # unreachable: checked is non-empty and every id in it is an accepted row
            raise InputError(f"--verified {args.verified!r} has no auto-labeled rows of this run.")
        target = run / AUDIT
        check_output_free(target, args.force)
        write_json_atomic(target, result.to_dict())
        lo, hi = result.interval_95
        print(f"realized precision {result.realized_precision:.3f} [{lo:.3f}, {hi:.3f}] from {result.n_verified} "
              f"verified auto-labels (expected {result.expected_precision}); written to {target}")
        return 0
    if args.budget is None or args.out is None:
        raise InputError("audit needs --budget N --out FILE to draw a sample, or --verified FILE to measure one.")
    out = Path(args.out)
    _check_selection_out(out, args.force, args.budget, (args.run,))
    draw = ops.draw_audit(d, args.budget, random_state=args.random_state)
    pre = {int(r): {"predictions": [{"result": [{"type": "choices", "from_name": "label", "to_name": "item",
                                                 "value": {"choices": [label]}}]}]}
           for r, label in zip(draw.selection.rows, draw.labels)}
    _write_selection(out, ids, draw.selection, pre)
    return 0


# ------------------------------------------------------------------ projects


def _open(args: argparse.Namespace) -> Any:
    from .project import Project

    return Project.open(args.project)


def _project_pick(args: argparse.Namespace, kind: str) -> int:
    with _open(args) as proj:
        out = Path(args.out) if args.out else proj.folder / "exports" / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        _check_selection_out(out, args.force, args.budget)
        if kind == "select":
            with _Progress(not args.quiet) as progress:
                batch, sel = proj.select(args.budget, strategy=args.strategy, random_state=args.random_state,
                                         engine=args.engine, workers=args.workers, progress=progress)
        elif kind == "query":
            with _Progress(not args.quiet) as progress:
                batch, sel = proj.query(args.budget, strategy=args.strategy, random_state=args.random_state,
                                        target_precision=args.target_precision, progress=progress)
        else:
            batch, sel = proj.audit(args.budget, random_state=args.random_state)
        _write_selection(out, proj.store.ids(), sel, contents=proj.store.contents(sel.rows), ref=proj.reference)
    print(f"(request batch {batch})")
    return 0


def _init_project(args: argparse.Namespace) -> Any:
    """`Project.init` from the options `init` and `run` share."""
    from .project import Project

    return Project.init(args.project, data=args.data, id_column=args.id_column, text_column=args.text_column,
                        image_column=args.image_column, image_dir=args.image_dir, vectors=args.vectors,
                        vector_column=args.vector_column, label_column=args.label_column,
                        skip_empty=args.skip_empty, truncate=args.truncate)


def init_cmd(args: argparse.Namespace) -> int:

    with _init_project(args) as proj:
        meta = proj.meta
        n = proj.store.n_items()
        labeled = len(proj.labels())
    skipped = meta.get("skipped_empty") or []
    print(f"created {args.project}: {n} {meta['kind']} items, {labeled} labeled"
          + (f"; left out {len(skipped)} empty text(s) (first: {skipped[0]!r})" if skipped else ""))
    if meta["kind"] != "vectors":
        print(f"next: labelseed embed {args.project}")
    return 0


def embed_cmd(args: argparse.Namespace) -> int:
    with _open(args) as proj:
        if args.vectors:
            proj.set_vectors(args.vectors, force=args.force)
            print(f"stored {proj.store.n_items()} vectors from {args.vectors}")
            return 0
        with _Progress(not args.quiet, rate=True) as progress:
            rep = proj.embed(args.model, batch_size=args.batch_size, image_size=args.image_size, progress=progress,
                             force=args.force, engine=args.engine, workers=args.workers, device=args.device)
    print(f"embedded {rep.embedded} items with {rep.model} ({rep.from_cache} from the content-hash cache, "
          f"{rep.already_done} done before) in {rep.seconds:.1f} s")
    if rep.parts:
        print(f"the workers wrote the vectors to {rep.parts} Parquet part(s) in {Path(args.project) / 'embeddings'}")
    if rep.failed:
        shown = "; ".join(f"{i}: {e}" for i, e in rep.failed[:5])
        more = f" (and {len(rep.failed) - 5} more; `labelseed status {args.project} --json` lists them)" \
            if len(rep.failed) > 5 else ""
        print(f"skipped {len(rep.failed)} item(s) that could not be embedded: {shown}{more}", file=sys.stderr)
    return 0


def import_cmd(args: argparse.Namespace) -> int:
    with _open(args) as proj:
        rep = proj.import_labels(args.file, who=args.who, replace=args.replace, origin=args.origin)
    print(f"imported {args.file}: {rep.added} new, {rep.unchanged} unchanged, {rep.replaced} replaced, "
          f"{len(rep.conflicts)} conflict(s)")
    if rep.conflicts:
        shown = "; ".join(f"{i!r}: stored {a!r}, file {b!r}" for i, a, b in rep.conflicts[:5])
        print(f"kept the stored label where the file disagrees ({shown}); pass --replace to take the file's "
              "(the old label stays in the history)", file=sys.stderr)
    return 0


def _fit(proj: Any, args: argparse.Namespace) -> dict[str, Any]:
    from .ops import check_classes

    check_classes(list(proj.labels().values()), args.allow_single_class)
    with _Progress(not args.quiet) as progress:
        run = proj.fit(_settings(args), progress=progress, certify=args.certify, engine=args.engine,
                       workers=args.workers)
    s = run["summary"]
    lo, hi = s["expected_precision_interval"]
    print(f"run {run['run_id']}: {s['n_auto']} auto-labels, {s['n_abstained']} abstained; expected precision "
          f"{_fmt(s['expected_precision'])} [{_fmt(lo)}, {_fmt(hi)}], coverage {_fmt(s['coverage'])} of the unlabeled pool")
    _print_basis(s)
    return run


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _print_basis(summary: dict[str, Any]) -> None:
    """One line on what the printed precision rests on (and what to do when it cannot be trusted)."""
    e = summary.get("estimate") or {}
    if e.get("certified_by") == "audit":
        print(f"estimate: {e['assumes']} ({e.get('audit_rows', '?')} audited rows)")
        short = [c for c in summary.get("classes", []) if not c.get("meets_target") and c.get("audit_needed")]
        for c in short:
            rows = _plural(c["audit_needed"], "row")
            print(f"  {c['label']}: not certified; about {c['audit_needed']} more audited {rows} would certify it "
                  "if they are right as often as these")
    elif e.get("trusted", True):  # an untrusted one was said by the library's warning, with the way out
        used = e.get("calibrated_by")
        names = {"sampled": "drawn by select/query, weighted"}
        parts = ", ".join(f"{n} {names.get(o, o)}" for o, n in (used or {}).items() if n)
        what = f"{sum(used.values())} labels ({parts})" if used and parts else f"{e.get('n_calibration')} labels"
        print(f"estimate: calibrated on {what}; assumes {e.get('assumes')}")
        short = [c for c in summary.get("classes", []) if not c.get("meets_target") and c.get("labels_needed")]
        for c in short:
            labels = _plural(c["labels_needed"], "label")
            print(f"  {c['label']}: not certified; about {c['labels_needed']} more random {labels} (of any class) "
                  "would certify it if the calibration holds")


def _origin_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--picks", nargs="+", default=None, metavar="CSV",
                   help="the CSV(s) `select`/`query` wrote for these labels: rows they drew at random (stratified, "
                   "sampled) calibrate, each weighted by 1 / its inclusion probability; rows they picked spread but "
                   "never calibrate")
    p.add_argument("--picked", action="store_true",
                   help="the labels in no --picks file were chosen, not drawn at random: they spread but never "
                   "calibrate (default: taken as a random sample of the pool)")


def _file_design(args: argparse.Namespace, ids: np.ndarray, labels: np.ndarray) -> Any:
    """What each label of a file-mode run may be used for (:func:`labelseed.ops.file_label_design`)."""
    from . import ops

    picks = [read_picks(path, ids) for path in (args.picks or [])]
    own = _picks_in_labels_file(args.labels, ids, args.picks or [])
    if own is not None:
        picks.append(own)
    return ops.file_label_design(labels, picks, ids, picked=args.picked)


def _picks_in_labels_file(path: str, ids: np.ndarray, listed: list[str]) -> Any:
    """The labels file *is* a CSV select/query wrote, its label column filled in (it has their
    ``strategy`` column): its rows are read as picks too, so that labels a picking strategy
    chose never calibrate and drawn ones are weighted (not all taken as a random sample).
    Rows without a strategy (added by hand) stay ordinary labels. None for any other file."""
    import csv

    from ._io import PicksFile

    if any(Path(p).resolve() == Path(path).resolve() for p in listed):
        return None  # passed as --picks too
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), [])
    if "strategy" not in [h.strip() for h in header]:
        return None
    pf = read_picks(path, ids, flag="--labels")
    keep = pf.strategy != ""
    return PicksFile(pf.path, pf.rows[keep], pf.strategy[keep], pf.inclusion[keep])


def _device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu",
                   help="where the model runs: cpu (default), cuda, cuda:N, or auto (a GPU where torch sees one); "
                   "with --engine ray, cuda or auto: one GPU per actor, picked by Ray")


def _cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="where the batches run (embedding, the kNN graph's search, labeling new items): this "
                   "process (default) or Ray (RAY_ADDRESS, else a local cluster; pip install 'labelseed[ray]')")
    p.add_argument("--workers", type=int, default=None, help="Ray actors (default: the cluster's CPUs minus one)")


def label_cmd(args: argparse.Namespace) -> int:
    from . import ops

    with _Progress(not args.quiet) as progress:
        res = ops.label_new(args.run, args.embeddings, args.out, id_column=args.id_column,
                            vector_column=args.vector_column,
                            chunk_rows=ops.LABEL_CHUNK_ROWS if args.chunk_rows is None else args.chunk_rows,
                            force=args.force, progress=progress, engine=args.engine, workers=args.workers)
    if not args.quiet:
        rate = res.n_items / res.seconds if res.seconds > 0 else float("inf")
        resumed = f" ({res.chunks_resumed} chunk(s) resumed from an earlier attempt)" if res.chunks_resumed else ""
        print(f"{res.n_items} new items: {res.n_auto} auto-labeled, {res.n_abstained} abstained, in {res.seconds:.1f} s "
              f"({rate:,.0f} items/s){resumed}; written to {res.out}")
        if res.expected_precision is not None:
            print(f"expected precision of new items' labels {_fmt(res.expected_precision)} "
                  f"[{_fmt(res.interval[0])}, {_fmt(res.interval[1])}] (calibrated on the run's held-out labels "
                  "scored as new items; assumes the new items are drawn like the fitted pool)")
    return 0


def add_cmd(args: argparse.Namespace) -> int:
    with _open(args) as proj:
        n = proj.add(args.data, vectors=args.vectors, vector_column=args.vector_column, label_column=args.label_column,
                     skip_empty=args.skip_empty, truncate=args.truncate)
        kind = proj.meta.get("kind")
    nxt = (f"labelseed apply {args.project} --new" if kind == "vectors"
           else f"labelseed embed {args.project}, then labelseed apply {args.project} --new")
    print(f"added {n} items; next: {nxt} (or fit again to take them into the pool)")
    return 0


def fit_cmd(args: argparse.Namespace) -> int:
    with _open(args) as proj:
        _fit(proj, args)
    print(f"next: labelseed apply {args.project}")
    return 0


def apply_cmd(args: argparse.Namespace) -> int:
    with _open(args) as proj, _Progress(not args.quiet) as progress:
        out = proj.apply(run_id=args.run_id, out=args.out, force=args.force, refit=args.refit, new=args.new,
                         progress=progress)
        hand = (proj.run(args.run_id)["summary"] or {}).get("set_by_hand")
    print(f"written to {out}")
    if hand:
        print(f"note: the threshold of {', '.join(hand)} was set by hand (`labelseed serve`, Thresholds); its "
              "precision is the run's calibrated curve there, not a certified bound")
    return 0


def export_cmd(args: argparse.Namespace) -> int:
    with _open(args) as proj:
        if args.labels_history:
            out = proj.export_label_history(args.out, force=args.force)
        else:
            out = proj.export(args.out, items=args.items, batch=args.batch, force=args.force)
    print(f"written to {out}")
    return 0


def status_cmd(args: argparse.Namespace) -> int:
    with _open(args) as proj:
        st = proj.status()
        if args.json:
            st["embed_errors"] = [{"id": i, "error": e} for i, e in proj.store.embed_errors()]
    if args.json:
        print(json.dumps(st, indent=2, default=_json_default))
        return 0
    from rich.table import Table

    c = _console()
    failed = f" ({st['failed_to_embed']} could not be embedded)" if st["failed_to_embed"] else ""
    c.print(f"{st['project']}: {st['items']} {st['kind']} items, {st['embedded']} embedded{failed}, "
            f"{st['labeled']} labeled by people")
    t = Table()
    for col in ("class", "seed", "auto", "abstained"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for k, v in st["classes"].items():
        t.add_row(k, str(v["seed"]), str(v["auto"]), str(v["abstained"]))
    c.print(t)
    lr = st["last_run"]
    if lr:
        lo, hi = lr["expected_precision_interval"] or (None, None)
        c.print(f"last run {lr['run_id']} ({lr['status']}): expected precision {_fmt(lr['expected_precision'])} "
                f"[{_fmt(lo)}, {_fmt(hi)}] at target {_fmt(lr['target_precision'])}, coverage {_fmt(lr['coverage'])}")
        line = _graph_space_line(lr.get("graph_space"), lr.get("graph_space_asked"))
        if line:
            c.print(line)
        e = lr.get("estimate") or {}
        if e:
            used = e.get("calibrated_by") or {}
            origins = ", ".join(f"{n} {o}" for o, n in (st.get("label_origins") or {}).items())
            if e.get("certified_by") == "audit":  # the audit is the evidence: it assumes nothing of the rest
                c.print(f"labels: {origins or 'none'}; the estimate rests on {e.get('audit_rows', '?')} audited rows")
            else:
                c.print(f"labels: {origins or 'none'}; the estimate learned from "
                        f"{', '.join(f'{n} {o}' for o, n in used.items() if n) or 'no random label'}")
            from .runs import basis_sentence

            # one line however long: rich would break it at the console's width (140 in a log)
            c.print(("warning: " if not e.get("trusted", True) else "") + basis_sentence(e), soft_wrap=True)
        if st.get("audit"):
            a = st["audit"]
            c.print(f"audit of run {a['run_id']}: realized precision {_fmt(a['realized_precision'])} "
                    f"[{_fmt(a['interval_95'][0])}, {_fmt(a['interval_95'][1])}] from {a['n_verified']} verified "
                    "auto-labels")
            at = Table(title="audited auto-labels per class (exact 95% interval) beside the run's estimate")
            for col in ("class", "verified", "right", "realized [95%]", "run's estimate", "certified by"):
                at.add_column(col, justify="left" if col == "class" else "right")
            per = lr.get("per_class") or {}
            for label, v in a["per_class"].items():
                mine = per.get(label, {})
                at.add_row(label, str(v["verified"]), str(v["right"]),
                           f"{_fmt(v['precision'])} [{_fmt(v['interval_95'][0])}, {_fmt(v['interval_95'][1])}]",
                           _fmt(mine.get("expected_precision")), str(mine.get("certified_by") or "-"))
            c.print(at)
            if e.get("certified_by") != "audit":
                c.print(f"to certify thresholds with it: labelseed fit {st['project']} --certify audit")
    else:
        c.print(f"no run yet: labelseed fit {st['project']}")
    return 0


def serve_cmd(args: argparse.Namespace) -> int:
    try:
        from .web import serve
    except ImportError as exc:
        raise InputError(str(exc)) from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {args.host} lets other machines reach the page; anyone with the token can label",
              file=sys.stderr)

    def ready(url: str) -> None:
        print(f"labelseed is serving {args.project} at {url}", flush=True)
        print("open that URL (it holds this launch's token); Ctrl-C stops", file=sys.stderr, flush=True)

    try:
        serve(args.project, host=args.host, port=args.port, user=args.user, ready=ready)
    except ImportError as exc:
        raise InputError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    return 0


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def run_cmd(args: argparse.Namespace) -> int:
    from .project import Project
    from .store import DB_NAME

    if args.out:
        check_output_free(args.out, args.force, inputs=(args.data, args.labels, args.project))
    folder = Path(args.project)
    if not (folder / DB_NAME).exists():
        _init_project(args).close()
        print(f"created {folder}")
    elif args.data is not None:
        with Project.open(folder) as proj:
            source = proj.meta.get("source")
        if source is not None and Path(source) != Path(args.data).resolve():
            raise InputError(f"{str(folder)!r} was made from {source!r}, not {args.data!r}; `run` never changes a "
                             "project's items: drop --data to continue this project, or give a new project folder.")
    with Project.open(folder) as proj:
        with _Progress(not args.quiet, rate=True) as progress:
            rep = proj.embed(args.model, image_size=args.image_size, progress=progress, engine=args.engine,
                             workers=args.workers, device=args.device)
        print(f"embedded {rep.embedded} items ({rep.already_done} done before, {len(rep.failed)} skipped)")
        if args.labels:
            imp = proj.import_labels(args.labels)
            print(f"imported {imp.added} new labels ({imp.unchanged} unchanged, {len(imp.conflicts)} conflicts)")
        _fit(proj, args)
        out = proj.apply(out=args.out, force=args.force)
    print(f"written to {out}")
    return 0


def report_cmd(args: argparse.Namespace) -> int:
    from .report import build_report, inputs_from_project, inputs_from_run

    if args.project:
        with _open(argparse.Namespace(project=args.project)) as proj:
            inputs, run_dir = inputs_from_project(proj, args.run_id)
            return _write_report(args, inputs, run_dir, build_report)
    return _write_report(args, inputs_from_run(Path(args.run)), Path(args.run), build_report)


def _write_report(args: argparse.Namespace, inputs: Any, run_dir: Path, build_report: Any) -> int:
    out = Path(args.out) if args.out else run_dir / "report"
    with atomic_dir(out, args.force, inputs=(args.project, args.run)) as tmp:
        rep = build_report(inputs, tmp, map_sample=args.map_sample, random_state=args.random_state)
    print(f"report written to {out / rep.html.name} (+ report.json and {len(rep.figures)} PNG figures)")
    return 0


def simulate_cmd(args: argparse.Namespace) -> int:
    from .simulate import plot_label_efficiency, simulate

    out = Path(args.out)
    inputs = (args.embeddings, args.truth)
    check_output_free(out, args.force, inputs=inputs)
    ids, X = read_embeddings(args.embeddings, args.id_column, args.vector_column)
    truth = read_seed_labels(args.truth, ids, flag="--truth")
    with _Progress(not args.quiet) as progress:
        result = simulate(X, truth, args.budget, args.rounds, random_share=args.random_share, audit=args.audit,
                          compare_random=args.compare_random, target_precision=args.target_precision,
                          method=args.method, select_strategy=args.strategy, query_strategy=args.query_strategy,
                          n_neighbors=args.n_neighbors, graph_space=args.graph_space,
                          random_state=args.random_state, progress=progress)
    table = result.table()
    columns = list(table[0])
    with atomic_dir(out, args.force, inputs=inputs) as tmp:
        write_csv_atomic(tmp / "label_efficiency.csv", columns, table)
        write_json(tmp / "label_efficiency.json", {"n_rows": result.n_rows, "n_classes": result.n_classes,
                                                   "target_precision": result.target_precision,
                                                   "params": result.params, "rounds": table})
        try:
            plot_label_efficiency(result, str(tmp / "label_efficiency.png"))
        except ImportError as exc:
            print(f"warning: no plot ({exc})", file=sys.stderr)
    if not args.quiet:
        from rich.table import Table

        t = Table(title=f"label efficiency at target {_fmt(result.target_precision)} ({result.n_rows} rows, "
                        f"{result.n_classes} classes)")
        for c in ("scheme", "round", "labels", "coverage", "classes", "expected [interval]", "realized", "trusted"):
            t.add_column(c)
        for r in result.records:
            t.add_row(r.scheme, str(r.round), str(r.n_labels), _fmt(r.coverage), str(r.classes_certified),
                      f"{_fmt(r.expected_precision)} [{_fmt(r.precision_low)}, {_fmt(r.precision_high)}]",
                      _fmt(r.realized_precision), "yes" if r.trusted else "no")
        _console().print(t)
    print(f"wrote {out}/label_efficiency.csv, .json and .png")
    return 0


def _one_line(message: str) -> str:
    """The message on one line: a control character from a user's file (a vertical tab in a CSV
    header, a newline in a label) is shown escaped, never as a line break."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in message)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show_warning  # type: ignore[assignment]
    try:
        random_state = getattr(args, "random_state", 0)
        if not 0 <= random_state < 2**32:
            raise InputError(f"--random-seed must be an integer in [0, {2**32 - 1}]; got {random_state}.")
        if args.command == "autolabel":
            return autolabel(args)
        if args.command == "select":
            return select_cmd(args)
        if args.command == "query":
            return query_cmd(args)
        if args.command == "audit":
            return audit_cmd(args)
        if args.command == "label":
            return label_cmd(args)
        commands = {"init": init_cmd, "add": add_cmd, "embed": embed_cmd, "import": import_cmd, "fit": fit_cmd, "apply": apply_cmd,
                    "export": export_cmd, "status": status_cmd, "run": run_cmd, "report": report_cmd,
                    "simulate": simulate_cmd, "serve": serve_cmd}
        return commands[args.command](args)
    except InputError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:  # a path the user gave cannot be read or written (permissions, a file as folder, disk full)
        where = f": {exc.filename!r}" if exc.filename else ""
        what = str(exc.strerror or exc).rstrip(": ")
        print(f"error: {_one_line(what)}{_one_line(where)}; check that path, its permissions and the free disk "
              "space, then run again (nothing was half-written).", file=sys.stderr)
        return EXIT_INPUT
    except MissingDependencyError as exc:  # an extra this step needs: the line names the pip install
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_INPUT
    except LabelseedError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; every output is atomic or resumable
        print("error: interrupted; nothing was half-written, and run the same command again to go on "
              "(embed and label continue where they stopped).", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1


if __name__ == "__main__":
    sys.exit(main())
