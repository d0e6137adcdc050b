"""The project's store: one SQLite database (WAL, one transaction per change) beside the
items' vectors: a memory-mapped ``embeddings.npy`` (written by this process) and Parquet parts
in ``embeddings/`` (written by the workers of ``embed --engine ray``, one per batch).

Tables
------
meta(key, value)                   project settings (JSON values)
items(row, id, content, hash)      one per pool item; ``content`` is the text or the image path
labels(seq, row, label, source, source_row, who, at)
                                   append-only history of human labels; an item's label is its
                                   latest entry, earlier ones are never deleted
conflicts(seq, row, stored, offered, source, source_row, at)
                                   imports that disagreed with a stored label (not applied)
embedded(row, hash, error)         rows whose vector is written (error: skipped)
parts(row, part)                   rows whose vector is in the Parquet part ``embeddings/<part>``
                                   rather than in embeddings.npy
runs(run_id, started, finished, status, config, versions, summary)
auto_labels(run_id, row, label, confidence, threshold)
requests(seq, batch, kind, row, rank, strategy, reason, at)
                                   what select/query/audit asked a person to label
audits(batch, run_id, row, label, inclusion)
                                   each audited auto-label: the run it was drawn from, the label
                                   that run gave it and its probability of being drawn
draws(batch, row, inclusion)       rows a select/query drew at random with a known probability
                                   (strategies ``stratified`` and ``sampled``): their labels
                                   calibrate, each weighted by 1 / that probability
origins(row, origin, at)           labels imported as ``picked`` (chosen by a person or a tool,
                                   not at random) or ``validation`` (a random sample of the pool);
                                   a label with no entry here, in requests or in audits is
                                   assumed random

Every write is one transaction: a crash (even ``kill -9``) leaves the database as it was
before the transaction or after it, never half-way (SQLite's journal guarantees it).
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from typing import Any, Iterable, Iterator

import numpy as np
from numpy.typing import NDArray

from .exceptions import InputError

DB_NAME = "labelseed.db"
EMBEDDINGS = "embeddings.npy"
#: the folder of Parquet parts (columns ``row``, ``vector``) that workers write
PARTS = "embeddings"
#: each labeled item's current label and origin, rewritten after each import: what a user
#: restores from if the database is ever damaged
BACKUP = "backups/labels.csv"
SCHEMA_VERSION = 1
#: every origin :meth:`Store.label_origins` gives a label, and those whose labels may calibrate
#: an estimate (drawn at random: uniformly, or with a recorded probability)
ORIGINS = ("random", "validation", "sampled", "picked", "audit", "accepted")
CALIBRATING = ("random", "validation", "sampled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items(row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, content TEXT, hash TEXT);
CREATE TABLE IF NOT EXISTS labels(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, row INTEGER NOT NULL REFERENCES items(row), label TEXT NOT NULL,
    source TEXT NOT NULL, source_row INTEGER, who TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS labels_by_row ON labels(row, seq);
CREATE TABLE IF NOT EXISTS conflicts(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, row INTEGER NOT NULL, stored TEXT NOT NULL, offered TEXT NOT NULL,
    source TEXT NOT NULL, source_row INTEGER, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embedded(row INTEGER PRIMARY KEY, hash TEXT NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS embedded_by_hash ON embedded(hash);
CREATE TABLE IF NOT EXISTS parts(row INTEGER PRIMARY KEY, part TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs(
    run_id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT, status TEXT NOT NULL,
    config TEXT NOT NULL, versions TEXT NOT NULL, summary TEXT);
CREATE TABLE IF NOT EXISTS auto_labels(
    run_id TEXT NOT NULL REFERENCES runs(run_id), row INTEGER NOT NULL, label TEXT NOT NULL,
    confidence REAL NOT NULL, threshold REAL NOT NULL, PRIMARY KEY(run_id, row));
CREATE TABLE IF NOT EXISTS requests(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, batch TEXT NOT NULL, kind TEXT NOT NULL, row INTEGER NOT NULL,
    rank INTEGER NOT NULL, strategy TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audits(
    batch TEXT NOT NULL, run_id TEXT NOT NULL, row INTEGER NOT NULL, label TEXT NOT NULL, inclusion REAL NOT NULL,
    PRIMARY KEY(batch, row));
CREATE TABLE IF NOT EXISTS origins(row INTEGER PRIMARY KEY, origin TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS draws(
    batch TEXT NOT NULL, row INTEGER NOT NULL, inclusion REAL NOT NULL, PRIMARY KEY(batch, row));
"""


def _writable(path: Path) -> bool:
    """Whether the database and its folder (SQLite keeps its journal beside it) can be written."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class ImportReport:
    """What an import did: ``added`` new labels, ``unchanged`` (already stored, same label),
    ``conflicts`` (id, stored, offered) not applied, ``replaced`` (with ``replace=True``)."""

    added: int
    unchanged: int
    replaced: int
    conflicts: list[tuple[str, str, str]]


class Store:
    """Open (or create with :meth:`create`) the SQLite store of a project folder.

    `read_only`: never write (None: only when the folder or the database cannot be written).
    `live`: read-only while another process writes the store (an embedding worker beside the
    ``embed`` that marks its rows): every read sees the writer's latest commit.
    """

    def __init__(self, folder: str | Path, *, read_only: bool | None = None, live: bool = False) -> None:
        self.folder = Path(folder)
        path = self.folder / DB_NAME
        if not path.exists():
            raise InputError(f"{str(self.folder)!r} is not a labelseed project (no {DB_NAME}); "
                             f"create one with `labelseed init {self.folder} --data FILE ...`.")
        self._check_is_project(path)
        #: opened without write access: a read-only folder or file (a shared drive, a read-only
        #: mount, a copy from an archive), or asked for by a command that only reads
        self.read_only = live or ((not _writable(path)) if read_only is None else read_only)
        self.db = self._connect_read_only(path, live=live) if self.read_only else self._connect(path)
        self._part_cache: dict[tuple[str, int], tuple[NDArray[np.int64], NDArray[np.float32]]] = {}
        if not self.read_only:
            self.db.executescript(SCHEMA)  # idempotent: brings a project made by an older version up to date

    def require_writable(self, what: str) -> None:
        """Refuse, before any work, a command that writes to a project opened read-only."""
        if self.read_only:
            raise InputError(f"{str(self.folder)!r} is read-only, and `{what}` writes to the project; make the folder "
                             "and its labelseed.db writable (or work on a copy). Commands that only read work as it is: "
                             "status, export, report --out DIR, apply --out FILE.")

    @staticmethod
    def _check_is_project(path: Path) -> None:
        """Refuse a damaged, empty or foreign database before anything writes to it."""
        backup = path.parent / BACKUP
        restore = (f"your labels as of the last import are in {str(backup)!r}: create a new project with `labelseed "
                   f"init` and `labelseed import NEW {backup}` (each label keeps its origin and draw)"
                   if backup.exists() else
                   "restore it from a backup, or create the project again with `labelseed init` and import your labels")
        empty = InputError(f"{str(path)!r} holds no project (an empty or foreign database); {restore}.")
        if path.stat().st_size == 0:
            raise empty
        try:
            wal = Path(str(path) + "-wal")
            # without a pending journal the probe is immutable: it creates no -wal/-shm beside a damaged file
            pending = wal.exists() and wal.stat().st_size > 0
            probe = sqlite3.connect(f"file:{quote(str(path))}?mode=ro" + ("" if pending else "&immutable=1"), uri=True)
            try:
                has_meta = probe.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
                kind = probe.execute("SELECT value FROM meta WHERE key = 'kind'").fetchone() if has_meta else None
            finally:
                probe.close()
        except sqlite3.DatabaseError as exc:
            if "unable to open" in str(exc) and not _writable(path):
                return  # a read-only WAL database: opened below with the right flags
            raise InputError(f"{str(path)!r} is damaged ({exc}); {restore} (labelseed never deletes the damaged "
                             "file).") from None
        if kind is None:
            raise empty

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), isolation_level=None, timeout=30)  # explicit transactions below
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a committed label survives a power cut, not just a crash
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @staticmethod
    def _connect_read_only(path: Path, *, live: bool = False) -> sqlite3.Connection:
        """A connection that never writes. Without a pending journal the database is opened as
        immutable (SQLite then needs no -shm file, which a read-only folder cannot hold), unless
        `live`: another process writes meanwhile, and every read must see its latest commit."""
        wal = Path(str(path) + "-wal")
        pending = wal.exists() and wal.stat().st_size > 0
        uri = f"file:{quote(str(path))}?mode=ro" + ("" if pending or live else "&immutable=1")
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
            db.execute("SELECT COUNT(*) FROM meta").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{str(path)!r} is read-only and holds changes not yet merged from {wal.name} ({exc}); "
                             "open the project once where it is writable (any labelseed command merges them).") from None
        return db

    @classmethod
    def create(cls, path: Path, meta: dict[str, Any], items: Iterable[tuple[int, str, str | None]]) -> None:
        """Write a new database at `path` (a temporary name the caller renames into place)."""
        db = cls._connect(path)
        try:
            db.executescript(SCHEMA)
            with _tx(db):
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [(k, json.dumps(v)) for k, v in {**meta, "schema": SCHEMA_VERSION}.items()])
                db.executemany("INSERT INTO items(row, id, content) VALUES (?, ?, ?)", items)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.require_writable("this command")
        with _tx(self.db):
            yield self.db

    # ------------------------------------------------------------------ meta
    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values: Any) -> None:
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])

    # ----------------------------------------------------------------- items
    def n_items(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM items ORDER BY row")]

    def contents(self, rows: NDArray[np.int64] | list[int]) -> list[str | None]:
        rows = [int(r) for r in rows]
        got: dict[int, str | None] = {}
        for s in range(0, len(rows), 900):  # SQLite caps the number of bound parameters
            chunk = rows[s:s + 900]
            q = f"SELECT row, content FROM items WHERE row IN ({','.join('?' * len(chunk))})"
            got.update(self.db.execute(q, chunk).fetchall())
        return [got.get(r) for r in rows]

    def ids_of(self, rows: list[int]) -> list[str]:
        """The ids of `rows` (a page of them: no scan of every item)."""
        got: dict[int, str] = {}
        for s in range(0, len(rows), 900):
            chunk = [int(r) for r in rows[s:s + 900]]
            got.update(self.db.execute(f"SELECT row, id FROM items WHERE row IN ({','.join('?' * len(chunk))})",
                                       chunk).fetchall())
        return [got[int(r)] for r in rows]

    def row_lookup(self) -> dict[str, int]:
        return {i: r for r, i in self.db.execute("SELECT row, id FROM items")}

    # ---------------------------------------------------------------- labels
    def current_labels(self) -> dict[int, str]:
        """Each labeled row's latest label."""
        # an empty label retracts the row's label (an undo in the page): the history keeps both
        q = "SELECT row, label FROM labels WHERE seq IN (SELECT MAX(seq) FROM labels GROUP BY row) AND label != ''"
        return dict(self.db.execute(q).fetchall())

    def label_history(self, row: int) -> list[tuple[str, str, str, str]]:
        q = "SELECT label, source, who, at FROM labels WHERE row = ? ORDER BY seq"
        return [tuple(r) for r in self.db.execute(q, (row,))]  # type: ignore[misc]

    def labels_digest(self) -> str:
        """A fingerprint of the current human labels (which row has which label)."""
        import hashlib

        h = hashlib.sha256()
        for row, label in sorted(self.current_labels().items()):
            h.update(f"{row}\t{label}\n".encode())
        return h.hexdigest()[:16]

    def label_origins(self) -> dict[int, str]:
        """How each labeled row came to be labeled: ``audit``, ``validation``, ``picked`` (by
        select/query, or imported as picked), ``sampled`` (drawn by select/query at random with
        a known probability, :meth:`draw_inclusion`), ``accepted`` (a run's label accepted in
        bulk in the page) or ``random`` (the default for imports)."""
        out = {r: "random" for r in self.current_labels()}
        q = ("SELECT r.row, d.row IS NOT NULL FROM requests r LEFT JOIN draws d ON d.batch = r.batch AND d.row = r.row "
             "WHERE r.kind IN ('select', 'query') ORDER BY r.seq") if self._has_draws() else (
            "SELECT row, 0 FROM requests WHERE kind IN ('select', 'query') ORDER BY seq")
        for r, drawn in self.db.execute(q):  # the newest request for a row decides
            if r in out:
                out[r] = "sampled" if drawn else "picked"
        for r, origin in self.db.execute("SELECT row, origin FROM origins"):
            if r in out:
                out[r] = origin
        for (r,) in self.db.execute("SELECT row FROM audits"):
            if r in out:
                out[r] = "audit"
        for (r,) in self.db.execute("SELECT row FROM origins WHERE origin = 'accepted'"):
            if r in out:  # accepted in bulk and not looked at since: never evidence, audited row or not
                out[r] = "accepted"
        return out

    def draw_inclusion(self) -> dict[int, tuple[str, float]]:
        """(batch, probability of being drawn) of each row a select/query drew at random,
        from its newest such draw."""
        if not self._has_draws():
            return {}
        q = ("SELECT d.row, d.batch, d.inclusion FROM draws d JOIN "
             "(SELECT batch, MIN(seq) AS first FROM requests GROUP BY batch) b USING(batch) ORDER BY b.first")
        return {int(r): (str(b), float(inc)) for r, b, inc in self.db.execute(q)}

    def _has_draws(self) -> bool:
        """False for a project made before draws were recorded and opened read-only (a writable
        open adds the table)."""
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'draws'").fetchone() is not None

    def audit_records(self) -> list[tuple[str, int, str, float]]:
        """(run_id, row, label the run gave, inclusion probability) of every audited row, newest
        audit last."""
        q = ("SELECT audits.run_id, audits.row, audits.label, audits.inclusion FROM audits "
             "JOIN (SELECT batch, MIN(seq) AS first FROM requests GROUP BY batch) b USING(batch) ORDER BY b.first")
        return [(str(a), int(r), str(lab), float(inc)) for a, r, lab, inc in self.db.execute(q)]

    def retract_label(self, row: int, source: str, who: str) -> bool:
        """Append a retraction (an empty label) for `row` if it has a label; True if it had one."""
        with self.transaction() as db:
            last = db.execute("SELECT label FROM labels WHERE row = ? ORDER BY seq DESC LIMIT 1", (int(row),)).fetchone()
            if last is None or last[0] == "":
                return False
            _retract(db, [int(row)], source, who)
        return True

    def retract_source(self, source: str, who: str) -> int:
        """Retract every current label that came from `source` (one transaction); how many."""
        with self.transaction() as db:
            q = ("SELECT row FROM labels WHERE seq IN (SELECT MAX(seq) FROM labels GROUP BY row) AND source = ? "
                 "AND label != ''")
            rows = [r for (r,) in db.execute(q, (source,))]
            _retract(db, rows, f"undo {source}", who)
            db.executemany("DELETE FROM origins WHERE row = ? AND origin = 'accepted'", [(r,) for r in rows])
        return len(rows)

    def add_labels(self, entries: list[tuple[int, str, int]], source: str, who: str, replace: bool = False,
                   origin: str = "random", always: bool = False) -> ImportReport:
        """Add (row, label, source_row) entries in one transaction.

        Same label as stored: nothing happens (so importing a file twice is a no-op).
        A different label: recorded as a conflict and not applied, unless `replace`,
        which appends it (the old label stays in the history). `origin` ``picked`` or
        ``validation`` is recorded for every row of the file, in the same transaction.
        `always`: every entry is a person's decision (a click in the page) and is appended even
        when it repeats the stored label; a row accepted in bulk then counts as looked at.
        """
        at = now()
        with self.transaction() as db:
            stored = self.current_labels()
            added = unchanged = replaced = 0
            conflicts: list[tuple[str, str, str]] = []
            new: list[tuple[int, str, str, int, str, str]] = []
            for row, label, source_row in entries:
                old = stored.get(row)
                if old == label and not always:
                    unchanged += 1
                    continue
                if old is not None and not replace:
                    item_id = db.execute("SELECT id FROM items WHERE row = ?", (row,)).fetchone()[0]
                    conflicts.append((item_id, old, label))
                    db.execute("INSERT INTO conflicts(row, stored, offered, source, source_row, at) VALUES (?,?,?,?,?,?)",
                               (row, old, label, source, source_row, at))
                    continue
                replaced += old is not None
                added += old is None
                new.append((row, label, source, source_row, who, at))
            db.executemany("INSERT INTO labels(row, label, source, source_row, who, at) VALUES (?,?,?,?,?,?)", new)
            if origin != "random":
                db.executemany("INSERT OR REPLACE INTO origins(row, origin, at) VALUES (?,?,?)",
                               [(row, origin, at) for row, _, _ in entries])
            elif always:
                db.executemany("DELETE FROM origins WHERE row = ? AND origin = 'accepted'",
                               [(row,) for row, _, _ in entries])
        return ImportReport(added, unchanged, replaced, conflicts)

    # ------------------------------------------------------------ embeddings
    def embedded_rows(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(rows with a vector, rows that failed to embed)."""
        ok = np.fromiter((r for (r,) in self.db.execute("SELECT row FROM embedded WHERE error IS NULL ORDER BY row")),
                         dtype=np.int64)
        bad = np.fromiter((r for (r,) in self.db.execute("SELECT row FROM embedded WHERE error IS NOT NULL ORDER BY row")),
                          dtype=np.int64)
        return ok, bad

    def embed_errors(self) -> list[tuple[str, str]]:
        q = "SELECT items.id, embedded.error FROM embedded JOIN items USING(row) WHERE error IS NOT NULL ORDER BY row"
        return [tuple(r) for r in self.db.execute(q)]  # type: ignore[misc]

    def embeddings_path(self) -> Path:
        return self.folder / EMBEDDINGS

    def parts_path(self) -> Path:
        return self.folder / PARTS

    def part_names(self) -> dict[str, int]:
        """Each Parquet part the store points to, with its number of rows (the rows of no part
        have their vector in embeddings.npy)."""
        try:
            return dict(self.db.execute("SELECT part, COUNT(*) FROM parts GROUP BY part").fetchall())
        except sqlite3.OperationalError:  # a read-only project made before parts existed
            return {}

    def part_of(self, row: int) -> str | None:
        """The Parquet part that holds `row`'s vector (None: embeddings.npy)."""
        got = self._parts_of(np.asarray([row], dtype=np.int64))
        return next(iter(got), None)

    def _parts_of(self, rows: NDArray[np.int64]) -> dict[str, list[int]]:
        """The Parquet parts that hold some of `rows`, each with those rows."""
        out: dict[str, list[int]] = {}
        try:
            if self.db.execute("SELECT 1 FROM parts LIMIT 1").fetchone() is None:
                return out  # every vector is in embeddings.npy
            if len(rows) > 20_000:  # one pass over the table beats many lookups
                want = set(rows.tolist())
                got: Iterable[tuple[int, str]] = ((r, p) for r, p in self.db.execute("SELECT row, part FROM parts")
                                                  if r in want)
            else:
                found: list[tuple[int, str]] = []
                for s in range(0, len(rows), 900):
                    chunk = rows[s:s + 900].tolist()
                    found += self.db.execute(f"SELECT row, part FROM parts WHERE row IN ({','.join('?' * len(chunk))})",
                                             chunk).fetchall()
                got = found
        except sqlite3.OperationalError:  # a read-only project made before parts existed
            return {}
        for r, p in got:
            out.setdefault(p, []).append(int(r))
        return out

    def _read_part(self, path: Path, fix: str) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """(rows, vectors) of a Parquet part; the last few read are kept (the content-hash cache
        reads a few rows of the same parts batch after batch)."""
        key = (str(path), path.stat().st_mtime_ns)
        cache = self._part_cache
        if key not in cache:
            try:
                import pyarrow.parquet as pq

                from ._io import vector_matrix

                table = pq.read_table(path, columns=["row", "vector"])
                got_rows = table.column("row").to_numpy()
                vec = table.column("vector").combine_chunks()
                V = vector_matrix(vec, vec.type.list_size)
            except Exception as exc:
                raise InputError(f"{str(path)!r} is damaged ({exc}); {fix}") from None
            if len(cache) >= 4:
                cache.pop(next(iter(cache)))
            cache[key] = (got_rows, V)
        return cache[key]

    def read_vectors(self, rows: NDArray[np.int64], dim: int) -> NDArray[np.float32]:
        """The stored vectors of `rows` (embedded ones), from embeddings.npy and the Parquet
        parts, as float32 in memory; a missing or damaged file is one InputError naming the fix."""
        rows = np.asarray(rows, dtype=np.int64)
        X = np.zeros((len(rows), dim), dtype=np.float32)
        fix = f"rebuild it with `labelseed embed {self.folder} --force`."
        in_part = np.zeros(len(rows), dtype=bool)
        parts = self._parts_of(rows)
        order = np.argsort(rows, kind="stable") if parts else None
        for part, prow in parts.items():
            path = self.parts_path() / part
            if not path.exists():
                raise InputError(f"{str(path)!r} is missing although {len(prow)} items are marked embedded in it; run "
                                 f"`labelseed embed {self.folder}` to embed them again.")
            got_rows, V = self._read_part(path, fix)
            if V.shape[1] != dim:
                raise InputError(f"{str(path)!r} holds vectors of {V.shape[1]} dimensions but the project's have {dim}; "
                                 f"it does not belong to this store: {fix}")
            want = np.asarray(prow, dtype=np.int64)
            by_row = np.argsort(got_rows, kind="stable")
            at = by_row[np.minimum(np.searchsorted(got_rows, want, sorter=by_row), len(got_rows) - 1)] \
                if len(got_rows) else np.zeros(len(want), dtype=np.int64)
            lost = want[(got_rows[at] != want) if len(got_rows) else np.ones(len(want), dtype=bool)]
            if len(lost):
                raise InputError(f"{str(path)!r} lacks {len(lost)} of the rows marked embedded in it (e.g. row "
                                 f"{int(lost[0]) + 1}); it is damaged: {fix}")
            assert order is not None
            mine = order[np.searchsorted(rows, want, sorter=order)]
            X[mine] = V[at]
            in_part[mine] = True
        rest = np.flatnonzero(~in_part)
        if len(rest):
            path = self.embeddings_path()
            if not path.exists():
                raise InputError(f"{str(path)!r} is missing although {len(rest)} items are marked embedded; {fix}")
            try:
                mm = np.load(path, mmap_mode="r")
            except (ValueError, OSError, EOFError) as exc:
                raise InputError(f"{str(path)!r} is damaged ({exc}); {fix}") from None
            need = int(rows[rest].max()) + 1
            # a longer file is what an interrupted `add` of vectors leaves: rows past the items are never read
            if mm.ndim != 2 or mm.shape[0] < need or mm.shape[1] != dim:
                raise InputError(f"{str(path)!r} has shape {mm.shape} but the project has {self.n_items()} items of "
                                 f"{dim} dimensions; it does not belong to this store: {fix}")
            X[rest] = mm[rows[rest]]
        return X

    # ------------------------------------------------------------------ runs
    def latest_run(self, status: tuple[str, ...] = ("fitted", "applied")) -> dict[str, Any] | None:
        q = (f"SELECT run_id, started, finished, status, config, versions, summary FROM runs "
             f"WHERE status IN ({','.join('?' * len(status))}) ORDER BY started DESC, rowid DESC LIMIT 1")
        r = self.db.execute(q, status).fetchone()
        return None if r is None else _run_dict(r)

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.db.execute("SELECT run_id, started, finished, status, config, versions, summary FROM runs "
                            "WHERE run_id = ?", (run_id,)).fetchone()
        if r is None:
            raise InputError(f"No run {run_id!r} in {str(self.folder)!r}; `labelseed status {self.folder}` lists the last one.")
        return _run_dict(r)


def _retract(db: sqlite3.Connection, rows: list[int], source: str, who: str) -> None:
    """Append an empty label (a retraction: the row is unlabeled again) for each of `rows`."""
    at = now()
    db.executemany("INSERT INTO labels(row, label, source, source_row, who, at) VALUES (?,?,?,?,?,?)",
                   [(r, "", source, None, who, at) for r in rows])


def _run_dict(r: tuple[Any, ...]) -> dict[str, Any]:
    keys = ("run_id", "started", "finished", "status", "config", "versions", "summary")
    d = dict(zip(keys, r))
    for k in ("config", "versions", "summary"):
        d[k] = json.loads(d[k]) if d[k] else None
    return d


@contextmanager
def _tx(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
