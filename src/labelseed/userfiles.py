"""Reading what users bring to a project: data tables (CSV, Parquet, JSON lines), their ids,
vectors keyed by id, and label files (CSV id,label or a Label Studio export). Every problem is
one :class:`InputError` naming the file, the row and the fix."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._io import read_label_csv
from .exceptions import InputError


def rows_text(rows: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(r + 1) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def read_table(path: Path, text_columns: list[str]) -> Any:
    """A pyarrow Table from .csv / .parquet / .jsonl; in a CSV, `text_columns` stay strings."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    if not path.exists():
        raise InputError(f"--data file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # ids and texts stay strings: "007" must not become 7
            convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in text_columns},
                                           strings_can_be_null=False)
            try:
                return pacsv.read_csv(path, convert_options=convert)
            except pa.ArrowInvalid as exc:
                if "straddl" not in str(exc):
                    raise
                # a row longer than Arrow's 1 MiB block (a 10 MB text): read with a block that holds it
                block = min(path.stat().st_size + 1, 2**31 - 1)
                return pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=block), convert_options=convert)
        if suffix in (".parquet", ".pq"):
            return pq.read_table(path)
        if suffix in (".jsonl", ".ndjson", ".json"):
            try:
                return pajson.read_json(path)
            except pa.ArrowInvalid as exc:
                if "straddl" not in str(exc):
                    raise
                block = min(path.stat().st_size + 1, 2**31 - 1)
                return pajson.read_json(path, read_options=pajson.ReadOptions(block_size=block))
    except Exception as exc:
        raise InputError(f"--data {str(path)!r} could not be read as {suffix[1:]}: {exc}") from exc
    raise InputError(f"--data {str(path)!r}: expected a .csv, .parquet or .jsonl file.")


def column(table: Any, name: str, path: Path, option: str | None) -> list[Any]:
    """A column of the user's table; `option` is the flag that names it (None: the project's own
    column, which new items must have too)."""
    if name not in table.column_names:
        fix = (f"pass {option} with one of them" if option else
               "the project's items have it: give the new items the same columns")
        raise InputError(f"--data {str(path)!r} has no column {name!r} (columns: {', '.join(table.column_names)}); "
                         f"{fix}.")
    return table.column(name).to_pylist()


def str_ids(values: list[Any], path: Path) -> list[str]:
    ids = ["" if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)).strip()
           for v in values]
    empty = [i for i, v in enumerate(ids) if not v]
    if empty:
        raise InputError(f"--data {str(path)!r}: empty id on row(s) {rows_text(empty)}; give every row an id.")
    first: dict[str, int] = {}
    dup: list[str] = []
    for i, v in enumerate(ids):
        if v in first:
            dup.append(f"{v!r} (rows {first[v] + 1} and {i + 1})")
        else:
            first[v] = i
    if dup:
        more = f" and {len(dup) - 3} more" if len(dup) > 3 else ""
        raise InputError(f"--data {str(path)!r}: duplicate id(s) {', '.join(dup[:3])}{more}; every id must be unique.")
    return ids


def align_vectors(vid: np.ndarray, X: NDArray[np.float32], rows_by_id: dict[str, int], path: str | Path) -> NDArray[np.float32]:
    """Vectors in item order: a ``.parquet`` file's rows are matched by their ids (never by their
    position), a ``.npy`` file's rows are the items in order. Every item needs exactly one vector."""
    if not str(path).lower().endswith((".parquet", ".pq")):
        return X
    order = [rows_by_id.get(str(i)) for i in vid.tolist()]
    missing = [str(i) for i, o in zip(vid.tolist(), order) if o is None]
    if missing:
        raise InputError(f"--vectors {str(path)!r} has id {missing[0]!r}"
                         f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}, which is not an item of "
                         "this project; give one vector per item id.")
    pos = np.asarray(order)
    if len(np.unique(pos)) != len(pos):
        raise InputError(f"--vectors {str(path)!r} gives some item more than one vector; keep one row per id.")
    out = np.empty_like(np.asarray(X))
    out[pos] = X
    return out


def read_label_file(p: Path) -> list[tuple[str, str, int]]:
    """(id, label, row in file) from a CSV id,label or a Label Studio JSON export.

    A Label Studio task gives its label through its annotations (not cancelled) or, in the
    JSON-MIN export, a ``label`` field. Annotations that disagree within one task are an
    error (naming the task), not a silent choice of the last one.
    """
    if p.suffix.lower() == ".json":
        return read_label_studio(p)
    return read_label_csv_rows(p)


def read_label_studio(p: Path) -> list[tuple[str, str, int]]:
    if p.is_dir():
        raise InputError(f"{str(p)!r} is a folder; pass the Label Studio export (.json) inside it.")
    try:
        tasks = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{str(p)!r} is not UTF-8 text; export it from Label Studio again as JSON.") from None
    except RecursionError:
        raise InputError(f"{str(p)!r} is nested too deeply to be a Label Studio export; export the tasks as JSON "
                         "from Label Studio.") from None
    except ValueError as exc:
        raise InputError(f"{str(p)!r} is not readable JSON ({exc}); export the tasks as JSON from Label Studio.") \
            from None
    if not isinstance(tasks, list):
        raise InputError(f"{str(p)!r}: expected a Label Studio export (a JSON list of tasks).")

    def bad(k: int, what: str) -> InputError:
        return InputError(f"{str(p)!r} task {k + 1}: {what}; export the tasks labelseed wrote, labeled in Label Studio.")

    out = []
    other_types: set[str] = set()  # result types that carry no classification choice
    for k, t in enumerate(tasks):
        if not isinstance(t, dict):
            raise bad(k, f"expected an object, got {type(t).__name__}")
        data = t.get("data", {})
        if not isinstance(data, dict):
            raise bad(k, "`data` is not an object")
        item = data.get("item_id", t.get("item_id"))
        if item is None:
            raise bad(k, "no data.item_id")
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise bad(k, f"data.item_id must be a string or a number, got {type(item).__name__}")
        anns = t.get("annotations") or []
        if not isinstance(anns, list):
            raise bad(k, "`annotations` is not a list")
        given: list[str] = []
        for ann in anns:
            if not isinstance(ann, dict):
                raise bad(k, "an annotation is not an object")
            if ann.get("was_cancelled"):
                continue
            results = ann.get("result") or []
            if not isinstance(results, list):
                raise bad(k, "an annotation's `result` is not a list")
            for res in results:
                value = res.get("value") if isinstance(res, dict) else None
                choices = value.get("choices") if isinstance(value, dict) else None
                if choices is None:
                    other_types.add(str(res.get("type", "unknown")) if isinstance(res, dict) else "unknown")
                    continue
                if not isinstance(choices, list) or not all(isinstance(c, (str, int)) for c in choices):
                    raise bad(k, f"`choices` must be a list of labels, got {choices!r:.40}")
                if len(choices) > 1:
                    raise bad(k, f"{len(choices)} choices in one result; labelseed takes one label per item")
                if choices:
                    given.append(str(choices[0]).strip())
        if len(set(given)) > 1:
            raise bad(k, f"its annotations disagree ({', '.join(sorted(set(given)))}); resolve them in Label Studio "
                         "first")
        label = given[0] if given else None
        if label is None and isinstance(t.get("label"), str):  # Label Studio's JSON-MIN export
            label = t["label"]
        if label is not None and str(label).strip():
            out.append((str(item).strip(), str(label).strip(), k + 1))
    if not out and other_types:
        raise InputError(f"{str(p)!r} has annotations but no classification choice (result types: "
                         f"{', '.join(sorted(other_types))}); labelseed reads one choice per item: label with a "
                         "Choices control in Label Studio (the tasks labelseed exports come with one).")
    return out


def read_label_csv_rows(p: Path) -> list[tuple[str, str, int]]:
    return [(i.strip(), label.strip(), line - 1) for i, label, line in read_label_csv(p) if label.strip()]


def label_pairs(labels: Any) -> list[tuple[str, str, int]]:
    """(id, label, position) from labels given in Python: a mapping id -> label (a dict, a
    pandas Series indexed by id) or a table with ``id`` and ``label`` columns (a pandas
    DataFrame). As in a CSV, ids and labels are text, stripped, and a row without a label
    (None, NaN, pandas' NA, "") is no label."""
    from ._validation import _is_missing

    if hasattr(labels, "columns") and hasattr(labels, "__getitem__"):  # a data frame
        missing = [c for c in ("id", "label") if c not in list(labels.columns)]
        if missing:
            raise InputError(f"The labels table lacks column(s) {', '.join(missing)} (it has: "
                             f"{', '.join(map(str, labels.columns))}); give columns id and label.")
        items = zip(list(labels["id"]), list(labels["label"]))
    elif hasattr(labels, "items") and callable(labels.items):
        items = iter(labels.items())
    else:
        raise InputError(f"`labels` must be a path to a CSV (id,label) or Label Studio JSON file, a mapping of id to "
                         f"label, or a table with columns id and label; got {type(labels).__name__}.")
    out = []
    for k, (i, label) in enumerate(items):
        if _is_missing(i) or not str(i).strip():
            raise InputError(f"The labels given have an empty id at position {k + 1}; give every label an id.")
        if _is_missing(label) or not str(label).strip():
            continue
        out.append((str(i).strip(), str(label).strip(), k + 1))
    return out
