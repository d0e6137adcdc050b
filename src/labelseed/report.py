"""The report of a run: one self-contained HTML page (figures embedded, no network), the same
figures as PNG files, and ``report.json``.

A run saves what the report needs in ``report_data.npz`` (:func:`save_report_data`): per row
its status (seed / auto / abstained), predicted class and confidence; the out-of-fold
predictions of the seed; each class's precision-coverage curve. :func:`build_report` reads it
with the run's ``summary.json`` and the embeddings (memory-mapped), so a report of a run over
1,000,000 rows takes seconds: the map and the gap search work on samples or on one pass.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

from ._optional import require
from .runs import (ABSTAINED, AUTO, AUDIT, HUMAN as SEED, STATUS_NAMES, basis_sentence, read_decisions, read_report_data,
                   read_summary)

#: rows drawn for the 2-D map (the rest is not plotted, only counted)
MAP_SAMPLE = 20_000
#: UMAP is slower than PCA: it maps at most this many rows
UMAP_MAX_ROWS = 20_000
SECTIONS = ("summary", "classes", "curves", "confusion", "map", "gaps", "balance", "audit")


@dataclass
class ReportInputs:
    """Everything a report is made of. `embeddings` returns the (n_rows, n_dims) vectors
    (memory-mapped is fine) or None when they are not available (the map and gaps are then
    left out with a note). `contents` gives the text or image path of rows, when known."""

    summary: dict[str, Any]
    data: dict[str, NDArray[Any]]
    embeddings: Callable[[], NDArray[np.floating] | None]
    contents: Callable[[list[int]], list[str | None]] | None = None
    audit: dict[str, Any] | None = None
    title: str = "labelseed report"
    source: str = ""


@dataclass
class Report:
    """Paths of what :func:`build_report` wrote, and the machine-readable record."""

    html: Path
    json: Path
    figures: dict[str, Path]
    record: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------ loading


def inputs_from_run(run: Path) -> ReportInputs:
    """Inputs from a ``labelseed autolabel`` output folder."""
    run = Path(run)
    summary, data = read_summary(run), read_report_data(run)
    emb_path = Path(summary.get("inputs", {}).get("embeddings", ""))

    def embeddings() -> NDArray[np.floating] | None:
        if emb_path.suffix.lower() == ".npy" and emb_path.exists():
            X = np.load(emb_path, mmap_mode="r")
            return X if X.shape[0] == len(data["status"]) else None
        if emb_path.exists():
            from ._io import read_embeddings

            _, X = read_embeddings(emb_path)
            return X if X.shape[0] == len(data["status"]) else None
        return None

    audit = json.loads((run / AUDIT).read_text()) if (run / AUDIT).exists() else None
    return ReportInputs(summary, data, embeddings, None, audit, title=f"labelseed report: {run.name}", source=str(run))


def inputs_from_project(project: Any, run_id: str | None = None) -> tuple[ReportInputs, Path]:
    """Inputs from an open project's run (default: the latest); returns them and the run folder.

    `project` is a :class:`labelseed.project.Project` (passed in, so that this module never
    imports the project module)."""
    run = project.run(run_id)
    run_dir = project.folder / "runs" / run["run_id"]
    data = read_report_data(run_dir)
    rows = read_decisions(run_dir)["rows"]
    audit = project.audit_result(run["run_id"])
    store_rows = rows.tolist()
    emb = project.folder / "embeddings.npy"
    store = project.store

    def embeddings() -> NDArray[np.floating] | None:
        if store.part_names():  # some vectors are in Parquet parts (embed --engine ray)
            return project.stored_vectors(rows)
        if not emb.exists():
            return None
        X = np.load(emb, mmap_mode="r")
        return X if len(rows) == X.shape[0] and np.array_equal(rows, np.arange(len(rows))) else X[rows]

    def contents(idx: list[int]) -> list[str | None]:
        return store.contents([store_rows[i] for i in idx])

    return ReportInputs(run["summary"], data, embeddings, contents, audit,
                        title=f"labelseed report: {project.folder.name} / {run['run_id']}", source=str(run_dir)), run_dir


# ------------------------------------------------------------------ analysis


def needed_labels(classes: list[dict[str, Any]], target: float | None, confidence_level: float = 0.8) -> dict[str, int]:
    """Rough number of extra seed labels each class without a supported target would need.

    Reference: the median seed count of the classes that met the target; when none did, the
    zero-error sample size whose one-sided lower bound reaches the target,
    ``ln(1 - confidence_level) / ln(target)`` (about 32 at 0.95 / 0.8). Rough by design:
    a class whose out-of-fold precision is far below the target may need better embeddings,
    not more labels.
    """
    met = [c["n_seed"] for c in classes if c.get("meets_target")]
    if met:
        ref = int(np.median(met))
    elif target and 0 < target < 1:
        ref = int(math.ceil(math.log(1 - confidence_level) / math.log(target)))
    else:
        ref = 10
    return {c["label"]: max(ref - int(c["n_seed"]), 1) for c in classes if not c.get("meets_target")}


def gaps(X: NDArray[np.floating], status: NDArray[np.int8], n_clusters: int = 50, random_state: int = 0) -> list[dict[str, Any]]:
    """Clusters of the pool (k-means) with no seed label, largest first."""
    n = X.shape[0]
    k = int(max(2, min(n_clusters, n // 20)))
    from .select import kmeans_assign

    assign, _ = kmeans_assign(X, k, random_state)
    size = np.bincount(assign, minlength=k)
    seeds = np.bincount(assign[status == SEED], minlength=k)
    abst = np.bincount(assign[status == ABSTAINED], minlength=k)
    rng = np.random.default_rng(random_state)
    out = []
    for c in np.argsort(-size):
        if seeds[c] == 0 and size[c] > 0:
            members = np.flatnonzero(assign == c)
            out.append({"cluster": int(c), "size": int(size[c]), "share_of_pool": float(size[c] / n),
                        "abstained": int(abst[c]), "examples": rng.choice(members, min(3, len(members)), replace=False).tolist()})
    return out


def next_queries(X: NDArray[np.floating], status: NDArray[np.int8], budget: int = 20, random_state: int = 0) -> list[dict[str, Any]]:
    """What `labelseed query` (default strategy) would ask about next, from this run's decisions."""
    from .select import query

    n = X.shape[0]
    codes = np.where(status == SEED, 0, -1)  # only "labeled or not" matters to this strategy
    free = int((codes < 0).sum())
    if free == 0:
        return []
    sel = query(X, np.zeros((n, 1), dtype=np.float32), codes,
                min(budget, free), "abstained", accepted=status == AUTO, random_state=random_state)
    return [{"row": int(r), "reason": why} for r, why in zip(sel.rows.tolist(), sel.reasons)]


def _has_umap() -> bool:
    import importlib.util

    return importlib.util.find_spec("umap") is not None


def project_2d(X: NDArray[np.floating], rows: NDArray[np.int64], random_state: int = 0) -> tuple[NDArray[np.float32], str]:
    """UMAP (umap-learn) of the sampled rows, or PCA when umap-learn is missing."""
    from .graph import normalize_rows

    Xs = normalize_rows(np.ascontiguousarray(X[rows], dtype=np.float32))
    if len(rows) < 3:
        return np.zeros((len(rows), 2), dtype=np.float32), "none"
    try:
        if len(rows) < 50 or X.shape[1] < 3:  # too few rows for a 15-neighbour graph, or nothing to reduce
            raise ImportError
        import warnings

        import umap  # type: ignore[import-not-found]

        from .graph import build_knn_graph

        # our kNN graph of the sample replaces UMAP's own neighbour search (40 s -> 13 s on 20,000
        # rows), PCA initialisation and 200 epochs its slow spectral start
        g = build_knn_graph(Xs, 15, normalized=True, random_state=random_state)
        knn_idx = np.c_[np.arange(len(Xs)), np.where(g.indices >= 0, g.indices, np.arange(len(Xs))[:, None])]
        knn_dist = np.c_[np.zeros(len(Xs)), 1.0 - g.similarities].astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # UMAP warns that transform() needs its own index: not used here
            emb = umap.UMAP(n_components=2, n_neighbors=16, metric="cosine", random_state=random_state, n_jobs=1,
                            init="pca", n_epochs=200, precomputed_knn=(knn_idx, knn_dist, None)).fit_transform(Xs)
        return np.asarray(emb, dtype=np.float32), "UMAP"
    except ImportError:
        from sklearn.decomposition import PCA

        k = min(2, Xs.shape[1])
        emb = PCA(k, random_state=random_state).fit_transform(Xs)
        if k < 2:
            emb = np.c_[emb, np.zeros(len(emb))]
        return emb.astype(np.float32), "PCA"


# ------------------------------------------------------------------ figures


def _plt() -> Any:
    mpl = require("matplotlib", "report")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    _plt().close(fig)
    png = buf.getvalue()
    path.write_bytes(png)
    return png


def _fig_curves(data: dict[str, NDArray[Any]], classes: list[dict[str, Any]], target: float | None, path: Path) -> bytes:
    plt = _plt()
    names = [str(c) for c in data["classes"]]
    k = len(names)
    cols = min(4, max(1, k))
    rows = int(math.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    off = data["curve_offsets"]
    by_label = {c["label"]: c for c in classes}
    for i, name in enumerate(names):
        ax = axes[i // cols][i % cols]
        s, e = int(off[i]), int(off[i + 1])
        if e > s:
            ax.plot(data["curve_coverage"][s:e], data["curve_precision"][s:e], lw=1.5)
            th = by_label.get(name, {}).get("threshold")
            if th is not None and math.isfinite(th):
                j = s + int(np.argmin(np.abs(data["curve_threshold"][s:e] - th)))
                ax.plot([data["curve_coverage"][j]], [data["curve_precision"][j]], "o", color="C3",
                        label=f"chosen {th:.2f}")
                ax.legend(fontsize=7, loc="lower left")
        else:
            ax.text(0.5, 0.5, "no pool row predicted", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        if target:
            ax.axhline(target, color="grey", ls="--", lw=0.8)
        ax.set_title(name, fontsize=9)
        low = float(np.nanmin(data["curve_precision"][s:e])) if e > s else 0.0
        ax.set_ylim(max(0.0, min(low, target or 1.0) - 0.05), 1.01)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("coverage of the pool", fontsize=7)
        ax.set_ylabel("expected precision", fontsize=7)
    for j in range(k, rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.tight_layout()
    return _save(fig, path)


def _fig_confusion(cm: NDArray[np.int64], names: list[str], path: Path) -> bytes:
    plt = _plt()
    k = len(names)
    size = min(12, 2.5 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k + 1 if cm.shape[1] > k else k))
    ax.set_xticklabels(names + (["abstain"] if cm.shape[1] > k else []), rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k))
    ax.set_yticklabels(names, fontsize=7)
    if k <= 30:
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted out of fold")
    ax.set_ylabel("seed label")
    fig.tight_layout()
    return _save(fig, path)


def _fig_map(xy: NDArray[np.float32], status: NDArray[np.int8], pred: NDArray[np.int32], names: list[str],
             method: str, n_total: int, path: Path) -> bytes:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    colors = {SEED: "#d62728", AUTO: "#1f77b4", ABSTAINED: "#bbbbbb"}
    for s in (ABSTAINED, AUTO, SEED):
        m = status == s
        axes[0].scatter(xy[m, 0], xy[m, 1], s=14 if s == SEED else 2, c=colors[s], label=f"{STATUS_NAMES[s]} ({int(m.sum())})",
                        alpha=1.0 if s == SEED else 0.5, linewidths=0)
    axes[0].legend(fontsize=8, markerscale=3)
    axes[0].set_title("seed / auto-labeled / abstained", fontsize=10)
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    for c, name in enumerate(names):
        m = pred == c
        if m.any():
            axes[1].scatter(xy[m, 0], xy[m, 1], s=2, color=cmap(c % cmap.N), label=name, alpha=0.6, linewidths=0)
    un = pred < 0
    if un.any():
        axes[1].scatter(xy[un, 0], xy[un, 1], s=2, c="black", label="unreached", alpha=0.6, linewidths=0)
    axes[1].legend(fontsize=6, markerscale=3, ncol=2 if len(names) > 12 else 1)
    axes[1].set_title("predicted class (best guess, accepted or not)", fontsize=10)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{method} of {len(xy):,} sampled rows of {n_total:,}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _fig_balance(names: list[str], before: NDArray[np.int64], after: NDArray[np.int64], path: Path) -> bytes:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.9 + 0.28 * len(names)))
    y = np.arange(len(names))
    for ax, v, t in ((axes[0], before, "before: seed labels"), (axes[1], after, "after: seed + auto-labels")):
        share = v / max(v.sum(), 1)
        ax.barh(y, share, color="C0")
        for i, (cnt, sh) in enumerate(zip(v, share)):
            ax.text(sh, i, f" {int(cnt)}", va="center", fontsize=7)
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("share of labeled rows", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _fig_audit(audit: dict[str, Any], expected: dict[str, float | None], path: Path) -> bytes:
    plt = _plt()
    names = sorted(audit["per_class"])
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.3 * len(names)))
    y = np.arange(len(names))
    real = [audit["per_class"][n]["precision"] for n in names]
    lo = [audit["per_class"][n]["interval_95"][0] for n in names]
    hi = [audit["per_class"][n]["interval_95"][1] for n in names]
    ax.errorbar(real, y, xerr=[np.subtract(real, lo), np.subtract(hi, real)], fmt="o", label="realized (audit, 95%)")
    exp = [expected.get(n) for n in names]
    ax.plot([e if e is not None else np.nan for e in exp], y, "x", color="C3", label="expected")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("audit: realized vs expected precision per class", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------ the page


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


_NUMERIC = re.compile(r"^[-~+]?[\d.,]+( \[.*\])?$|^-$|^(yes|no)$")


def _table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{html.escape(str(x))}</th>" for x in head)

    def cell(x: Any) -> str:
        text = str(x)
        left = "" if _NUMERIC.match(text) else ' class="text"'  # words read left-aligned, numbers right
        return f"<td{left}>{html.escape(text)}</td>"

    body = "".join("<tr>" + "".join(cell(x) for x in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
padding:0 1em;color:#222}h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .5em;
text-align:right}td.text{text-align:left}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.note{color:#666;font-size:.9em}.kpi{display:inline-block;margin-right:2em}.kpi b{font-size:1.4em;display:block}
.warn{color:#a33}"""


def build_report(inputs: ReportInputs, out: Path, *, map_sample: int = MAP_SAMPLE, queries: int = 20,
                 random_state: int = 0) -> Report:
    """Write report.html, report.json and the PNG figures into the folder `out` (which must exist)."""
    import time

    t = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        t[name] = round(now - clock, 3)
        clock = now

    s, d = inputs.summary, inputs.data
    names = [str(c) for c in d["classes"]]
    k = len(names)
    status = d["status"].astype(np.int8)
    pred = d["predicted"].astype(np.int32)
    n = len(status)
    classes = s.get("classes", [])
    target = s.get("target_precision")
    conf_level = float((s.get("params") or {}).get("confidence_level", 0.8) or 0.8)
    needs = needed_labels(classes, target, conf_level) if target is not None else {}
    abst_by_class = np.bincount(pred[(status == ABSTAINED) & (pred >= 0)], minlength=k)
    figures: dict[str, Path] = {}
    html_parts: list[str] = []
    record: dict[str, Any] = {"source": inputs.source, "n_rows": n, "classes": names}

    # summary
    counts = {STATUS_NAMES[i]: int((status == i).sum()) for i in range(3)}
    record["summary"] = {**counts, "expected_precision": s.get("expected_precision"),
                         "expected_precision_interval": s.get("expected_precision_interval"),
                         "coverage": s.get("coverage"), "target_precision": target, "mode": s.get("mode"),
                         "metric": s.get("metric")}
    lo, hi = (s.get("expected_precision_interval") or [None, None])
    # what the number rests on, as status and the page say it (older runs recorded none)
    basis = basis_sentence(s.get("estimate")) or ("Expected precision is estimated from out-of-fold predictions "
                                                  "on the seed; it assumes the seed is a fair sample of the pool.")
    html_parts.append(
        '<section id="summary"><h2>Summary</h2>'
        f'<div class="kpi"><b>{n:,}</b>rows</div><div class="kpi"><b>{counts["seed"]:,}</b>seed labels</div>'
        f'<div class="kpi"><b>{counts["auto"]:,}</b>auto-labels</div><div class="kpi"><b>{counts["abstained"]:,}</b>abstained</div>'
        f'<div class="kpi"><b>{_num(s.get("expected_precision"))}</b>expected precision [{_num(lo)}, {_num(hi)}]</div>'
        f'<div class="kpi"><b>{_num(s.get("coverage"))}</b>coverage of the unlabeled pool</div>'
        f'<p class="note">Mode {html.escape(str(s.get("mode")))}, metric {html.escape(str(s.get("metric")))}, '
        f'target precision {_num(target)}. {html.escape(basis)} An audit measures it.</p>'
        + ('<p class="warn">Every row abstained: no class met the target with the labels it has.</p>' if counts["auto"] == 0 else "")
        + "</section>")
    lap("summary")

    # per-class table
    rows = []
    rec_classes = []
    for c in classes:
        name = c["label"]
        i = names.index(name) if name in names else -1
        rec = {"class": name, "seed": c.get("n_seed"), "auto": c.get("n_accepted"),
               "abstained": int(abst_by_class[i]) if i >= 0 else 0, "threshold": c.get("threshold"),
               "expected_precision": c.get("expected_precision"),
               "interval": [c.get("precision_low"), c.get("precision_high")],
               "expected_coverage": c.get("expected_coverage"), "support": c.get("support"),
               "threshold_spread": c.get("threshold_spread"), "meets_target": c.get("meets_target"),
               "more_labels_needed": needs.get(name)}
        rec_classes.append(rec)
        if c.get("set_by") == "hand":
            rec["set_by"] = f"hand ({c.get('set_by_who')}, {c.get('set_at')}; fitted {_num(c.get('threshold_fitted'))})"
        rows.append([name, rec["seed"], rec["auto"], rec["abstained"],
                     _num(rec["threshold"]) + (" (set by hand)" if rec.get("set_by") else ""),
                     f"{_num(rec['expected_precision'])} [{_num(rec['interval'][0])}, {_num(rec['interval'][1])}]",
                     _num(rec["expected_coverage"]), rec["support"], _num(rec["threshold_spread"]),
                     "yes" if rec["meets_target"] else "no",
                     f"~{rec['more_labels_needed']}" if rec["more_labels_needed"] else ""])
    record["per_class"] = rec_classes
    unsupported = [r["class"] for r in rec_classes if not r["meets_target"] and not r.get("set_by")]
    by_hand = [f"{r['class']}: {r['set_by']}" for r in rec_classes if r.get("set_by")]
    html_parts.append(
        '<section id="classes"><h2>Per class</h2>'
        + _table(["class", "seed", "auto", "abstained", "threshold", "expected precision [90%]", "expected coverage",
                  "support", "threshold spread", "target met", "more labels needed"], rows)
        + (f'<p class="warn">Target not supported by the labels they have: {html.escape(", ".join(unsupported))}. '
           '"More labels needed" is rough: the median seed count of the classes that met the target (or, if none '
           'did, the zero-error sample size that certifies it); a class whose out-of-fold precision stays low may '
           'need better embeddings rather than more labels.</p>' if unsupported else
           '<p class="note">Every class met the target.</p>')
        + (f'<p class="warn">Thresholds set by hand (their precision is the run\'s calibrated curve at that '
           f'threshold, not a certified bound): {html.escape("; ".join(by_hand))}.</p>' if by_hand else "")
        + "</section>")
    lap("classes")

    # curves
    figures["curves"] = out / "curves.png"
    png = _fig_curves(d, classes, target, figures["curves"])
    html_parts.append('<section id="curves"><h2>Precision against coverage, per class</h2>'
                      '<p class="note">Expected precision of the accepted rows as the class threshold moves (the '
                      'curve runs from the strictest threshold, left, to the loosest); the dot is the chosen threshold, '
                      'the dashed line the target.</p>' + _img(png, "precision-coverage curves") + "</section>")
    lap("curves")

    # confusion
    oof_t, oof_p = d["oof_true"], d["oof_pred"]
    has_abstain = bool((oof_p < 0).any())
    cm = np.zeros((k, k + int(has_abstain)), dtype=np.int64)
    np.add.at(cm, (oof_t, np.where(oof_p < 0, k, oof_p)), 1)
    figures["confusion"] = out / "confusion.png"
    png = _fig_confusion(cm, names, figures["confusion"])
    acc = float(np.trace(cm[:, :k]) / max(cm.sum(), 1))
    record["confusion"] = {"matrix": cm.tolist(), "columns": names + (["abstain"] if has_abstain else []),
                           "oof_accuracy": acc}
    html_parts.append(f'<section id="confusion"><h2>Out-of-fold confusion matrix on the seed</h2>'
                      f'<p class="note">Each seed row predicted with its own label hidden (before thresholds); '
                      f'accuracy {acc:.3f} over {int(cm.sum())} rows.</p>' + _img(png, "confusion matrix") + "</section>")
    lap("confusion")

    # map, gaps, next queries: need the vectors
    X = inputs.embeddings()
    lap("load embeddings")
    if X is None:
        html_parts.append('<section id="map"><h2>Map of the pool</h2><p class="note">The embeddings of this run '
                          'are not available here, so there is no map.</p></section>')
        html_parts.append('<section id="gaps"><h2>Gaps</h2><p class="note">Needs the embeddings.</p></section>')
        record["map"] = record["gaps"] = record["next_queries"] = None
    else:
        rng = np.random.default_rng(random_state)
        if _has_umap():
            map_sample = min(map_sample, UMAP_MAX_ROWS)
        seeds = np.flatnonzero(status == SEED)
        if n <= map_sample:
            take = np.arange(n)
        elif len(seeds) >= map_sample:
            take = np.sort(rng.choice(n, map_sample, replace=False))
        else:  # every seed row, the rest drawn at random
            rest = rng.choice(np.flatnonzero(status != SEED), map_sample - len(seeds), replace=False)
            take = np.sort(np.concatenate([seeds, rest]))
        xy, method = project_2d(X, take, random_state)
        lap("map projection")
        figures["map"] = out / "map.png"
        png = _fig_map(xy, status[take], pred[take], names, method, n, figures["map"])
        record["map"] = {"method": method, "rows_plotted": int(len(take))}
        html_parts.append(f'<section id="map"><h2>Map of the pool</h2><p class="note">{method} of '
                          f'{len(take):,} rows{" (every seed row, the rest sampled)" if len(take) < n else ""}.</p>'
                          + _img(png, "2-D map") + "</section>")
        lap("map figure")
        gap_list = gaps(X, status, random_state=random_state)
        lap("gaps")
        nq = next_queries(X, status, queries, random_state)
        lap("next queries")
        ids = d["ids"]
        look = sorted({int(e) for g in gap_list[:10] for e in g["examples"]} | {q["row"] for q in nq})
        text = dict(zip(look, inputs.contents(look))) if inputs.contents else {}

        def show(r: int) -> str:
            c = text.get(r)
            return f"{ids[r]}" + (f": {c[:120]}" if c else "")

        gap_rows = [[g["cluster"], g["size"], f"{g['share_of_pool']:.3f}", g["abstained"],
                     " | ".join(show(int(e)) for e in g["examples"])] for g in gap_list[:15]]
        for g in gap_list:
            g["examples"] = [str(ids[e]) for e in g["examples"]]
        record["gaps"] = gap_list
        record["next_queries"] = [{"id": str(ids[q["row"]]), "reason": q["reason"]} for q in nq]
        html_parts.append(
            '<section id="gaps"><h2>Gaps</h2>'
            f'<p class="note">{len(gap_list)} of the pool\'s k-means clusters hold no seed label; the largest:</p>'
            + (_table(["cluster", "rows", "share of pool", "abstained", "examples"], gap_rows) if gap_rows else
               "<p>Every cluster has a seed label.</p>")
            + '<h3>What <code>labelseed query</code> would ask next</h3>'
            + (_table(["rank", "item", "why"], [[i + 1, show(q["row"]), q["reason"]] for i, q in enumerate(nq)])
               if nq else "<p>Nothing left to ask: every row is labeled.</p>")
            + "</section>")
    # balance
    before = np.bincount(oof_t, minlength=k) if len(oof_t) else np.zeros(k, dtype=np.int64)
    seed_counts = np.array([next((c["n_seed"] for c in classes if c["label"] == nm), 0) for nm in names])
    before = np.maximum(before, seed_counts)
    auto_counts = np.bincount(pred[status == AUTO], minlength=k)
    after = before + auto_counts
    figures["balance"] = out / "balance.png"
    png = _fig_balance(names, before, after, figures["balance"])
    record["balance"] = {nm: {"before": int(b), "after": int(a)} for nm, b, a in zip(names, before, after)}
    html_parts.append('<section id="balance"><h2>Class balance before and after</h2>'
                      + _img(png, "class balance") + "</section>")
    lap("balance")
    # audit
    if inputs.audit:
        a = inputs.audit
        expected = {c["label"]: c.get("expected_precision") for c in classes}
        figures["audit"] = out / "audit.png"
        png = _fig_audit(a, expected, figures["audit"])
        record["audit"] = a
        rows_a = [[c, v["verified"], v["right"], _num(v["precision"]), f"[{_num(v['interval_95'][0])}, {_num(v['interval_95'][1])}]",
                   _num(expected.get(c))] for c, v in sorted(a["per_class"].items())]
        html_parts.append(
            f'<section id="audit"><h2>Audit: realized against expected precision</h2>'
            f'<p>Realized precision {_num(a["realized_precision"])} [{_num(a["interval_95"][0])}, '
            f'{_num(a["interval_95"][1])}] (95%) from {a["n_verified"]} verified auto-labels; expected '
            f'{_num(s.get("expected_precision"))}.</p>'
            + _table(["class", "verified", "right", "realized", "95% interval", "expected"], rows_a)
            + _img(png, "audit") + "</section>")
    else:
        record["audit"] = None
        html_parts.append('<section id="audit"><h2>Audit: realized against expected precision</h2><p class="note">'
                          'No audit yet. Draw a stratified sample of auto-labels with <code>labelseed audit</code>, '
                          'have a person verify it, and the realized precision appears here.</p></section>')
    lap("audit")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(inputs.title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
            f'<h1>{html.escape(inputs.title)}</h1><p class="note">{html.escape(inputs.source)}</p>'
            + "".join(html_parts) + "</body></html>")
    html_path, json_path = out / "report.html", out / "report.json"
    html_path.write_text(page, encoding="utf-8")
    json_path.write_text(json.dumps(_clean(record), indent=1, allow_nan=False) + "\n")
    lap("write")
    return Report(html_path, json_path, figures, record, t)


def _clean(v: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
