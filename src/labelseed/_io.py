"""Reading embeddings and seed labels from files, and writing outputs atomically."""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

from .exceptions import InputError, OutputExistsError
from .store import DB_NAME, EMBEDDINGS


def _existing(path: str | Path, option: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{option} file {str(p)!r} does not exist.")
    return p


def _holds_objects(exc: Exception) -> bool:
    """Whether numpy refused a .npy because it holds Python objects."""
    return "object" in str(exc).lower() or "pickle" in str(exc).lower()


def _open_npy(p: Path, option: str) -> np.ndarray:
    """A 2-D numeric .npy, memory-mapped (nothing read yet)."""
    with open(p, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":  # numpy would call any such file "pickled data" and suggest allow_pickle
        raise InputError(f"{option} {str(p)!r} is not a .npy file (it lacks the .npy header); "
                         "save the array with numpy.save, or pass a .parquet file.")
    try:
        X = np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        if _holds_objects(exc):
            raise InputError(f"{option} {str(p)!r} holds Python objects, not numbers; save a float array "
                             "(e.g. numpy.save(path, np.asarray(vectors, dtype=np.float32))).") from exc
        if "mmap length" in str(exc) or "size" in str(exc).lower():  # fewer bytes than its header promises
            raise InputError(f"{option} {str(p)!r} is shorter than its .npy header says (truncated, e.g. an "
                             "interrupted copy or save); write or copy it again.") from exc
        raise InputError(f"{option} {str(p)!r} is not a readable .npy array: {str(exc).rstrip('.')}.") from exc
    if X.ndim != 2:
        raise InputError(f"{option} {str(p)!r} must hold a 2-D array (rows x dims); got shape {X.shape}.")
    _check_pool(p, X, option)
    return X


def read_embeddings(path: str | Path, id_column: str = "id", vector_column: str | None = None, *,
                    option: str = "--embeddings") -> tuple[np.ndarray, NDArray[np.float32]]:
    """Read ``(ids, X)`` from a ``.npy`` (ids = row numbers) or ``.parquet`` file.

    A Parquet file has an id column and either one list-of-floats column (or
    `vector_column`) or numeric columns, one per dimension. `option` names the file in messages.
    """
    p = _existing(path, option)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        X = _open_npy(p, option)
        return np.arange(X.shape[0]), np.asarray(X)
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(p)
        except Exception as exc:
            raise InputError(f"{option} {str(p)!r} is not a readable Parquet file: {exc}.") from exc
        ids, X = _table_vectors(table, p, option, id_column, vector_column)
        _check_pool(p, X, option)
        return ids, X
    raise InputError(f"{option} must be a .npy or .parquet file; got {str(p)!r}.")


def vector_matrix(arr: Any, dim: int) -> NDArray[np.float32]:
    """An Arrow list column of `dim` floats a row as an (n, dim) float32 array, flattened in
    Arrow (no Python list per row)."""
    return np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(arr), dim)


def _require_ids(ids: np.ndarray, p: Path, option: str, id_column: str, first_row: int = 0) -> None:
    """Every row has an id; `first_row`: the file row of ``ids[0]``."""
    blank = [k for k, v in enumerate(ids.tolist()) if v is None or not str(v).strip()]
    if blank:
        shown = ", ".join(str(first_row + k + 1) for k in blank[:5])
        raise InputError(f"{option} {str(p)!r} has {len(blank)} row(s) with no id in column {id_column!r} "
                         f"(rows {shown}); give every vector an id.")


def _table_vectors(table: Any, p: Path, option: str, id_column: str,
                   vector_column: str | None) -> tuple[np.ndarray, NDArray[np.float32]]:
    """``(ids, X)`` of an Arrow table: an id column and one list-of-floats column (or
    `vector_column`) or numeric columns, one per dimension; ids present and unique."""
    import pyarrow as pa

    if id_column not in table.column_names:
        raise InputError(
            f"{option} {str(p)!r} has no id column {id_column!r} (columns: {', '.join(table.column_names)}); "
            "pass --id-column."
        )
    ids = np.asarray(table.column(id_column).to_pylist(), dtype=object)
    _require_ids(ids, p, option, id_column)
    first: dict[str, int] = {}
    for k, v in enumerate(ids.tolist()):
        if str(v) in first:
            raise InputError(f"{option} {str(p)!r} has the id {str(v)!r} twice (rows {first[str(v)] + 1} and "
                             f"{k + 1}); every vector needs its own id.")
        first[str(v)] = k
    others = [c for c in table.column_names if c != id_column]
    list_cols = [c for c in others if pa.types.is_list(table.schema.field(c).type)
                 or pa.types.is_fixed_size_list(table.schema.field(c).type)
                 or pa.types.is_large_list(table.schema.field(c).type)]
    if vector_column or list_cols:
        col = vector_column or list_cols[0]
        if vector_column and col not in table.column_names:
            raise InputError(f"{option} {str(p)!r} has no column {col!r}.")
        if not vector_column and len(list_cols) > 1:
            raise InputError(f"{option} {str(p)!r} has several vector columns ({', '.join(list_cols)}); pass --vector-column.")
        arr = table.column(col).combine_chunks()
        if arr.null_count:
            raise InputError(f"{option} column {col!r} has {arr.null_count} empty (null) vectors; every row needs one.")
        import pyarrow.compute as pc

        lengths = pc.list_value_length(arr)
        lo, hi = pc.min(lengths).as_py(), pc.max(lengths).as_py()
        if lo != hi or not lo:
            raise InputError(
                f"{option} column {col!r} has vectors of different lengths ({lo} to {hi}); "
                "all must have the same dimension."
            )
        X = vector_matrix(arr, lo)
    else:
        numeric = [c for c in others if pa.types.is_floating(table.schema.field(c).type) or pa.types.is_integer(table.schema.field(c).type)]
        if not numeric:
            raise InputError(f"{option} {str(p)!r} has no vector column and no numeric columns besides {id_column!r}.")
        X = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in numeric]).astype(np.float32)
    return ids, X


def _check_pool(p: Path, X: np.ndarray, option: str = "--embeddings") -> None:
    """Vectors that are numbers, and at least one row of them."""
    if X.dtype.kind not in "fiub":  # bool (binary codes) is a number to numpy and to check_embeddings
        what = "complex numbers" if X.dtype.kind == "c" else f"{X.dtype} values, not numbers"
        raise InputError(f"{option} {str(p)!r} holds {what}; save real-valued vectors "
                         "(e.g. np.save(path, X.astype('float32'))).")
    if X.shape[0] == 0:
        raise InputError(f"{option} {str(p)!r} holds no rows (shape {X.shape}); embed the pool first.")


def _header_hint(fields: Sequence[str], columns: tuple[str, ...]) -> str:
    """Why a header may lack the columns it seems to have: another separator, or other case or spaces."""
    if len(fields) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if sep in fields[0] and all(c in fields[0].split(sep) for c in columns):
                return f" (this header is separated by {name}; save the file comma-separated)"
    near = {f.strip().lower(): f for f in fields}
    renamed = [f"{near[c]!r} -> {c!r}" for c in columns if c not in fields and c in near]
    if renamed:
        return f", in lower case without spaces (rename {', '.join(renamed)})"
    return ""


def read_csv_rows(path: str | Path, what: str, columns: tuple[str, ...],
                  kind: str = "") -> list[tuple[dict[str, str], int]]:
    """Each row of a CSV with (at least) `columns`, as a dict, with its line in the file.

    Every way a user's file can be unreadable ends in one :class:`InputError` that names
    the file and the fix: missing, a folder, not UTF-8 text, not CSV, missing columns.
    `what` names the file in messages; `kind` says what CSV to pass (default: its columns).
    """
    p = Path(path)
    need = ",".join(columns)
    if not p.exists():
        raise InputError(f"The {what} {str(p)!r} does not exist.")
    if p.is_dir():
        raise InputError(f"The {what} {str(p)!r} is a folder; pass the CSV file ({kind or 'columns ' + need}) inside it.")
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            missing = [c for c in columns if c not in fields]
            if missing:
                raise InputError(
                    f"The {what} {str(p)!r} lacks column(s) {', '.join(missing)} (it has: {', '.join(fields) or 'none'}); "
                    f"the header must include {need}{_header_hint(fields, columns)}."
                )
            return [(r, i + 2) for i, r in enumerate(reader)]
    except UnicodeDecodeError as exc:
        raise InputError(f"The {what} {str(p)!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at position "
                         f"{exc.start}); save it as UTF-8 (in a spreadsheet: 'CSV UTF-8') and run again.") from None
    except csv.Error as exc:
        raise InputError(f"The {what} {str(p)!r} is not a readable CSV ({exc}); save it as CSV with columns {need}.") \
            from None


def read_label_csv(path: str | Path, what: str = "labels file") -> list[tuple[str, str, int]]:
    """``(id, label, line in the file)`` of each row of a CSV with (at least) the columns
    ``id`` and ``label`` (:func:`read_csv_rows`)."""
    return [(csv_unsafe(r["id"] or ""), csv_unsafe(r["label"] or ""), line)
            for r, line in read_csv_rows(path, what, ("id", "label"))]


def read_seed_labels(path: str | Path, pool_ids: np.ndarray, flag: str = "--labels") -> np.ndarray:
    """Read a CSV with columns ``id`` and ``label``; return labels aligned to `pool_ids` (None = unlabeled).
    `flag` names the option the file came from in messages."""
    p = Path(path)
    rows = read_label_csv(p, f"{flag} file")
    lookup = {str(v): i for i, v in enumerate(pool_ids.tolist())}
    if len(lookup) != len(pool_ids):
        raise InputError("The pool has duplicate ids; every row needs a unique id.")
    labels = np.full(len(pool_ids), None, dtype=object)
    seen: dict[str, int] = {}
    unknown: list[str] = []
    for rid, label, line in rows:
        rid = (rid or "").strip()
        label = (label or "").strip()
        if not rid:
            raise InputError(f"{flag} {str(p)!r} line {line}: the id is empty; give every row the id of a pool row.")
        if rid in seen:
            raise InputError(f"{flag} {str(p)!r} line {line}: id {rid!r} is labeled twice (first on line {seen[rid]}); keep one row per id.")
        seen[rid] = line
        if not label:
            continue
        if rid not in lookup:
            unknown.append(rid)
            continue
        labels[lookup[rid]] = label
    if not seen or all(v is None for v in labels) and not unknown:
        raise InputError(f"{flag} {str(p)!r} has no labeled rows; add rows id,label (at least two labeled rows of "
                         "each class).")
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        hint = " (a .npy pool's ids are its row numbers 0..n-1)" if pool_ids.dtype.kind in "iu" else ""
        raise InputError(f"{flag} {str(p)!r} has {len(unknown)} id(s) not in the pool: {shown}{more}{hint}; fix or drop them.")
    return labels  # strings, even "3": labels are names, and ids stay as the pool wrote them


#: A file labelseed leaves in every folder it writes, so that --force knows the folder is its own.
OUTPUT_MARKER = ".labelseed-output"
#: A project's store: never an output, --force or not.
_STORE_FILES = (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", EMBEDDINGS)


@dataclass(frozen=True)
class PicksFile:
    """Rows a ``select``/``query`` file lists (file mode): positions in the pool, each row's
    strategy and, for a random draw, its probability of being drawn (NaN where none)."""

    path: str
    rows: NDArray[np.int64]
    strategy: NDArray[np.object_]
    inclusion: NDArray[np.float64]


def read_picks(path: str | Path, pool_ids: np.ndarray, flag: str = "--picks") -> PicksFile:
    """Read a CSV written by ``labelseed select``/``query`` (columns id, strategy and, for a
    random draw, inclusion). Ids must be pool ids; an inclusion, where given, a probability."""
    p = Path(path)
    entries = [(csv_unsafe(r["id"] or "").strip(), (r["strategy"] or "").strip(), (r.get("inclusion") or "").strip(),
                line) for r, line in read_csv_rows(p, f"{flag} file", ("id", "strategy"),
                                                   "written by `labelseed select`/`query`")]
    lookup = {str(v): i for i, v in enumerate(pool_ids.tolist())}
    rows, strategy, inclusion = [], [], []
    for rid, strat, inc, line in entries:
        if rid not in lookup:
            raise InputError(f"{flag} {str(p)!r} line {line}: id {rid!r} is not in the pool; pass the file "
                             "`labelseed select`/`query` wrote for these embeddings.")
        value = math.nan
        if inc:
            try:
                value = float(inc)
            except ValueError:
                value = -1.0
            if not 0 < value <= 1:
                raise InputError(f"{flag} {str(p)!r} line {line}: inclusion must be a probability in (0, 1]; "
                                 f"got {inc!r}.")
        rows.append(lookup[rid])
        strategy.append(strat)
        inclusion.append(value)
    return PicksFile(str(p), np.array(rows, dtype=np.int64), np.array(strategy, dtype=object),
                     np.array(inclusion, dtype=np.float64))


def _written_by_labelseed(folder: Path) -> bool:
    """A folder labelseed wrote: marked, or laid out as a run or report of an older version."""
    return ((folder / OUTPUT_MARKER).exists()
            or ((folder / "summary.json").exists() and (folder / "auto_labels.csv").exists())
            or ((folder / "report.html").exists() and (folder / "report.json").exists()))


def check_location(path: str | Path, option: str = "--out") -> None:
    """`path` can be created: its nearest existing ancestor is a writable folder."""
    path = Path(path)
    parent = path.resolve().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{option} {str(path)!r} cannot be written: {str(parent)!r} is a file, not a folder; "
                         "choose another path.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{option} {str(path)!r} cannot be written: the folder {str(parent)!r} is not writable; "
                         "choose another path or fix its permissions.")


def check_output_free(out: str | Path, force: bool, *, inputs: tuple[str | Path | None, ...] = ()) -> None:
    """An output may go where nothing is, or, with --force, over a previous labelseed output.

    Never over (or around) one of the command's `inputs`, a project's store, or a folder
    labelseed did not write, --force or not: --force replaces only what labelseed wrote.
    """
    out = Path(out)
    target = out.resolve()
    check_location(out)
    for inp in inputs:
        if inp is None:
            continue
        source = Path(inp).resolve()
        if source == target or target in source.parents:
            how = "is" if source == target else "contains"
            raise InputError(f"--out {str(out)!r} {how} the input {str(inp)!r}; labelseed never writes over its "
                             "inputs: choose another --out.")
    if (target.name in _STORE_FILES and (target.parent / DB_NAME).exists()) or (target / DB_NAME).exists():
        raise InputError(f"--out {str(out)!r} is a labelseed project's {'folder' if target.is_dir() else 'store'}; "
                         "outputs never replace it: choose another path (e.g. a file inside the project folder).")
    if out.exists() or out.is_symlink():
        if not force:
            raise OutputExistsError(f"--out {str(out)!r} already exists; pass --force to replace it, or choose another "
                                    "path.")
        if out.is_dir() and not _written_by_labelseed(out):
            raise InputError(f"--out {str(out)!r} is a folder labelseed did not write; --force replaces only labelseed's "
                             "own outputs: choose another folder, or empty it yourself.")


@contextmanager
def atomic_dir(out: str | Path, force: bool, *, inputs: tuple[str | Path | None, ...] = ()) -> Iterator[Path]:
    """Yield a temporary folder next to `out`; on success it replaces `out` in one rename.

    An existing `out` is only replaced with `force`, and only when labelseed wrote it
    (:func:`check_output_free`); on failure nothing changes. The folder is marked as
    labelseed's (:data:`OUTPUT_MARKER`).
    """
    out = Path(out)
    check_output_free(out, force, inputs=inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        mark_output(tmp)
        yield tmp
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def mark_output(folder: Path) -> None:
    """Mark a folder as labelseed's output (:data:`OUTPUT_MARKER`): `--force` may replace it."""
    (folder / OUTPUT_MARKER).write_text("written by labelseed; `--force` may replace this folder\n")


def replace_dir(folder: Path, out: Path) -> None:
    """Move the finished `folder` to `out`, replacing an existing `out` (checked by the caller) by renames."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "x")
        os.replace(folder, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(folder, out)


def write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, allow_nan=False, default=str)
        f.write("\n")


@contextmanager
def _atomic_file(path: Path) -> Iterator[Any]:
    """An open text file that replaces `path` in one rename when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: A cell starting with one of these is a formula to a spreadsheet (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text == text.strip()


def csv_safe(value: Any) -> Any:
    """A text cell for a CSV file a spreadsheet may open: one starting with =, +, -, @, tab or
    CR gets a leading apostrophe (a plain number such as -1.5 stays as it is). Read back by
    :func:`csv_unsafe`, so a label round-trips through labelseed's CSVs unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _is_number(value):
        return "'" + value
    return value


def csv_unsafe(value: str) -> str:
    """The text a :func:`csv_safe` cell stands for."""
    if value.startswith("'") and value[1:].startswith(_FORMULA_START) and not _is_number(value[1:]):
        return value[1:]
    return value


def csv_safe_table(table: Any) -> Any:
    """`table` with its text columns made :func:`csv_safe`."""
    import pyarrow as pa

    cols = [pa.array([csv_safe(v) for v in col.to_pylist()], pa.string()) if pa.types.is_string(col.type) else col
            for col in table.columns]
    return pa.table(cols, names=table.column_names)


def write_table_csv(table: Any, path: str | Path) -> None:
    """A pyarrow table as CSV, its text columns made :func:`csv_safe` (Parquet needs no such care)."""
    import pyarrow.csv as pacsv

    pacsv.write_csv(csv_safe_table(table), path)


def write_csv_atomic(path: str | Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with _atomic_file(Path(path)) as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows({k: csv_safe(v) for k, v in r.items()} for r in rows)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    with _atomic_file(Path(path)) as f:
        json.dump(obj, f, indent=2, allow_nan=False, default=str)
        f.write("\n")


def write_items(path: str | Path, ids: list[Any], rows: list[int], ranks: dict[int, tuple[int, str, str]] | None = None,
                contents: list[str | None] | None = None, ref: str = "text",
                extra: dict[int, dict[str, Any]] | None = None, inclusion: dict[int, float] | None = None) -> None:
    """Items for a person: a CSV (id, rank, strategy, reason[, inclusion][, text|image]) or, for
    a ``.json`` path, Label Studio tasks with the same fields under ``data`` (plus `extra` per
    row, e.g. predictions). Written atomically. `ranks` maps a row to (rank, strategy, reason);
    `inclusion` a row a random draw took to its probability of being drawn (so that the labels
    can later calibrate, weighted: ``autolabel --picks``)."""
    ranks = ranks or {}
    contents = contents if contents is not None else [None] * len(rows)
    if str(path).lower().endswith(".json"):
        tasks = []
        for r, c in zip(rows, contents):
            data: dict[str, Any] = {"item_id": ids[r]}
            if c is not None:
                data[ref] = c
            if r in ranks:
                data.update(rank=ranks[r][0], strategy=ranks[r][1], reason=ranks[r][2])
            if inclusion is not None and r in inclusion:
                data["inclusion"] = inclusion[r]
            task: dict[str, Any] = {"data": data}
            task.update((extra or {}).get(r, {}))
            tasks.append(task)
        write_json_atomic(path, tasks)
        return
    has_ref = any(c is not None for c in contents)
    columns = (["id", "rank", "strategy", "reason"] + (["inclusion"] if inclusion is not None else [])
               + ([ref] if has_ref else []))
    out = []
    for r, c in zip(rows, contents):
        rank, strategy, reason = ranks.get(r, ("", "", ""))
        row: dict[str, Any] = {"id": ids[r], "rank": rank, "strategy": strategy, "reason": reason}
        if inclusion is not None:
            row["inclusion"] = repr(float(inclusion[r])) if r in inclusion else ""
        if has_ref:
            row[ref] = c or ""
        out.append(row)
    write_csv_atomic(path, columns, out)


def open_embeddings(path: str | Path, id_column: str = "id", *, option: str = "--embeddings") -> int:
    """The number of rows of a ``.npy`` or ``.parquet`` embeddings file, after its layout was
    checked (nothing else is read)."""
    p = _existing(path, option)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return int(_open_npy(p, option).shape[0])
    if suffix in (".parquet", ".pq"):
        pf = _parquet_file(p, option)
        if id_column not in pf.schema_arrow.names:
            raise InputError(f"{option} {str(p)!r} has no id column {id_column!r} (columns: "
                             f"{', '.join(pf.schema_arrow.names)}); pass --id-column.")
        n = int(pf.metadata.num_rows)
        if n == 0:
            raise InputError(f"{option} {str(p)!r} holds no rows; embed the items first.")
        return n
    raise InputError(f"{option} must be a .npy or .parquet file; got {str(p)!r}.")


def _parquet_file(p: Path, option: str) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(p)
    except Exception as exc:
        raise InputError(f"{option} {str(p)!r} is not a readable Parquet file: {exc}.") from exc


def iter_embedding_ids(path: str | Path, id_column: str = "id", *, chunk_rows: int = 65_536,
                       option: str = "--embeddings") -> Iterator[np.ndarray]:
    """The ids of a ``.parquet`` embeddings file, `chunk_rows` at a time, from its id column alone
    (a ``.npy``'s ids are its row numbers: nothing to read)."""
    p = Path(path)
    if p.suffix.lower() == ".npy":
        return
    import pyarrow as pa

    first = 0
    try:
        for batch in _parquet_file(p, option).iter_batches(batch_size=chunk_rows, columns=[id_column]):
            ids = np.asarray(batch.column(0).to_pylist(), dtype=object)
            _require_ids(ids, p, option, id_column, first)
            first += len(ids)
            yield ids
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{option} {str(p)!r} could not be read to the end: {exc}.") from exc


class EmbeddingReader:
    """Rows ``first:first + n`` of a ``.npy`` (memory-mapped; ids = row numbers) or ``.parquet``
    embeddings file as ``(ids, X)``, read where the reader lives (a Ray worker reads its own
    chunks). A Parquet file is read forward from where the last read ended when the next chunk
    starts there, so reading every chunk in order is one pass; a jump restarts at the row group
    that holds the chunk's first row. Each chunk is checked as it is read."""

    def __init__(self, path: str | Path, id_column: str = "id", vector_column: str | None = None, *,
                 chunk_rows: int = 65_536, option: str = "--embeddings") -> None:
        self.path, self.id_column, self.vector_column = Path(path), id_column, vector_column
        self.chunk_rows, self.option = chunk_rows, option
        self._X: np.ndarray | None = None
        self._pf: Any = None
        self._batches: Iterator[Any] | None = None
        self._pos = -1  # the file row of the next row to read
        self._rest: Any = None  # what the last read left of its last batch

    def read(self, first: int, n: int) -> tuple[np.ndarray, NDArray[np.float32]]:
        p, option = self.path, self.option
        if p.suffix.lower() == ".npy":
            if self._X is None:
                self._X = _open_npy(p, option)
            return np.arange(first, first + n), np.asarray(self._X[first:first + n])
        import pyarrow as pa

        try:
            table = self._parquet_rows(first, n)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{option} {str(p)!r} could not be read to the end: {exc}.") from exc
        ids, X = _table_vectors(table, p, option, self.id_column, self.vector_column)
        _check_pool(p, X, option)
        return ids, X

    def _parquet_rows(self, first: int, n: int) -> Any:
        import pyarrow as pa

        if self._pf is None:
            self._pf = _parquet_file(self.path, self.option)
        pf = self._pf
        if first != self._pos or self._batches is None:  # start at the row group holding `first`
            start, g = 0, 0
            while g < pf.metadata.num_row_groups and start + pf.metadata.row_group(g).num_rows <= first:
                start += pf.metadata.row_group(g).num_rows
                g += 1
            self._batches = pf.iter_batches(batch_size=self.chunk_rows,
                                            row_groups=list(range(g, pf.metadata.num_row_groups)))
            self._pos, self._rest = start, None
        got: list[Any] = []
        have = 0
        while have < n:
            b, self._rest = self._rest, None
            if b is None:
                b = next(self._batches, None)
                if b is None:
                    break
            if self._pos < first:  # rows before the chunk: skipped
                skip = min(first - self._pos, b.num_rows)
                b, self._pos = b.slice(skip), self._pos + skip
                if b.num_rows == 0:
                    continue
            take = min(n - have, b.num_rows)
            got.append(b.slice(0, take))
            if take < b.num_rows:
                self._rest = b.slice(take)
            have += take
            self._pos += take
        if have < n:
            raise InputError(f"{self.option} {str(self.path)!r} ended at row {self._pos}; it was changed while "
                             "being read.")
        return pa.Table.from_batches(got)
