"""A labeling project from raw data: init -> embed -> select/export -> import -> fit -> apply
-> query/audit -> status, the CLI's project commands as a Python API (``Project.open(DIR)``).

The folder holds ``labelseed.db`` (see :mod:`labelseed.store`), ``embeddings.npy``
(memory-mapped, written batch by batch; ``embeddings/`` holds the Parquet parts that Ray
workers write instead), ``runs/<run_id>/`` (each fit's scores) and
``exports/``. Every step can be interrupted and run again: embedding continues where it
stopped, a run's auto-labels are replaced in one transaction, files are renamed into place.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from .ops import FitSettings, LabelDesign

import numpy as np
from numpy.typing import NDArray

from ._io import check_location, check_output_free, read_csv_rows, write_items, write_json_atomic
from ._validation import check_paths
from .exceptions import InputError
from .userfiles import align_vectors, column, label_pairs, read_label_file, read_table, rows_text, str_ids
from .runs import accepted_labels, read_decisions, write_labels, write_table_file
from .store import BACKUP, DB_NAME, ORIGINS, ImportReport, Store, now

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
#: Longer texts are refused at init unless truncated: the text model reads ~256 tokens anyway.
MAX_TEXT_CHARS = 100_000
EMBED_BATCH = {"text": 256, "image": 64}
#: with ``engine="ray"`` each batch is a Parquet part and a round trip through Ray's object
#: store, so texts go in larger batches (the text model still encodes 64 at a time); images
#: stay at 64, which the image model takes in one pass
EMBED_BATCH_RAY = {"text": 2048, "image": 64}


@dataclass(frozen=True)
class EmbedReport:
    """What ``embed`` did: rows newly embedded, taken from the content-hash cache, already done,
    and the items it could not embed (id, error), which are left out of the pool."""

    model: str
    embedded: int
    from_cache: int
    already_done: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    #: Parquet parts the workers wrote (``engine="ray"``), in the project's ``embeddings/``
    parts: int = 0


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("labelseed", "numpy", "scipy", "scikit-learn", "faiss-cpu", "pyarrow", "torch",
                "sentence-transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


@contextmanager
def _only_one(folder: Path, command: str) -> Iterator[None]:
    """Hold an exclusive lock on the project folder while `command` runs, or say that another
    process runs it. flock on the folder itself: no lock file, released when the process ends
    (even by kill -9); where the file system has no flock (some network mounts) it guards nothing."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"Another `labelseed {command}` is running on {str(folder)!r}; wait for it to finish, "
                             f"or stop it and run `labelseed {command} {folder}` again (it goes on where it stopped)."
                             ) from None
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


def _backup_origins(p: Path) -> dict[str, tuple[str, str, float | None]] | None:
    """For a labels backup (:data:`labelseed.store.BACKUP`: columns id, label, origin[, draw,
    inclusion]): each id's origin, draw and inclusion probability; None for any other file (a
    user's CSV with an unrelated ``origin`` column among others imports as before)."""
    if p.suffix.lower() == ".json":
        return None
    rows = read_csv_rows(p, "labels file", ("id", "label"))  # unreadable: the message read_label_file gives
    fields = list(rows[0][0]) if rows else []
    if fields[:3] != ["id", "label", "origin"] or not set(fields) <= {"id", "label", "origin", "draw", "inclusion"}:
        return None
    out: dict[str, tuple[str, str, float | None]] = {}
    for r, line in rows:
        origin = (r.get("origin") or "random").strip()
        if origin not in ORIGINS:
            raise InputError(f"{str(p)!r} row {line - 1}: origin {origin!r} is not one labelseed writes "
                             f"({', '.join(ORIGINS)}); fix it or drop the origin column (nothing was imported).")
        inc_text = (r.get("inclusion") or "").strip()
        try:
            inc = float(inc_text) if inc_text else None
        except ValueError:
            inc = -1.0
        if inc is not None and not 0 < inc <= 1:
            raise InputError(f"{str(p)!r} row {line - 1}: inclusion must be a probability in (0, 1]; got "
                             f"{inc_text!r} (nothing was imported).")
        out[(r.get("id") or "").strip()] = (origin, (r.get("draw") or "").strip(), inc)
    return out


class Project:
    """A project folder. Create with :meth:`init`, reopen with :meth:`open`."""

    def __init__(self, folder: Path, store: Store) -> None:
        self.folder = folder
        self.store = store

    # ------------------------------------------------------------------ life
    @classmethod
    def open(cls, folder: str | Path, *, read_only: bool | None = None) -> "Project":
        """Open a project. `read_only`: never write to it (None: only when the folder or its
        database cannot be written; commands that write then say so before any work)."""
        folder = Path(folder)
        return cls(folder, Store(folder, read_only=read_only))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def meta(self) -> dict[str, Any]:
        return self.store.meta()

    @property
    def reference(self) -> str:
        """What an item's content is, as Label Studio names it: "image" (a path) or "text"."""
        return "image" if self.meta.get("kind") == "image" else "text"

    @classmethod
    def init(
        cls,
        folder: str | Path,
        *,
        data: str | Path | None = None,
        id_column: str = "id",
        text_column: str | None = None,
        image_column: str | None = None,
        image_dir: str | Path | None = None,
        vectors: str | Path | None = None,
        vector_column: str | None = None,
        label_column: str | None = None,
        skip_empty: bool = False,
        truncate: bool = False,
    ) -> "Project":
        """Create a project from raw items (texts, image paths, an image folder, or vectors).

        Exactly one of `text_column`, `image_column`, `image_dir`, `vectors`,
        `vector_column` says what the items are. `label_column` (optional) names a
        column of the data whose non-empty values are seed labels.
        """
        check_paths(folder=folder, data=data, image_dir=image_dir, vectors=vectors)
        folder = Path(folder)
        sources = [x for x in (text_column, image_column, image_dir, vectors, vector_column) if x is not None]
        if len(sources) != 1:
            raise InputError("Say what the items are with exactly one of --text-column, --image-column, --image-dir, "
                             f"--vectors or --vector-column (got {len(sources)}).")
        if (folder / DB_NAME).exists():
            raise InputError(f"{str(folder)!r} is already a labelseed project; use it (`labelseed status {folder}`) "
                             "or choose a new folder.")
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{str(folder)!r} is a file, not a folder; choose a new or empty folder for the project.")
        if folder.exists() and any(folder.iterdir()):
            raise InputError(f"{str(folder)!r} exists and is not empty; choose a new or empty folder for the project.")
        if folder.is_symlink() and not folder.exists():
            raise InputError(f"{str(folder)!r} is a dangling symbolic link; remove it or choose another folder for the "
                             "project.")
        if not folder.exists():
            check_location(folder, "the project folder")
        elif not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"the project folder {str(folder)!r} is not writable; choose another folder or fix its "
                             "permissions.")
        label_values: list[Any] | None = None
        vec: NDArray[np.float32] | None = None
        meta: dict[str, Any] = {"created": now(), "id_column": id_column}
        if image_dir is not None:
            root = Path(image_dir).resolve()
            if not root.is_dir():
                raise InputError(f"--image-dir {str(image_dir)!r} is not a folder.")
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InputError(f"--image-dir {str(image_dir)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
            ids = [p.relative_to(root).as_posix() for p in files]
            contents: list[str | None] = [str(p) for p in files]
            meta.update(kind="image", source=str(root))
        else:
            if data is None and vectors is None:
                raise InputError("--data FILE is needed (the table of items), except with --image-dir or --vectors.")
            got = _read_items(data, id_column=id_column, text_column=text_column, image_column=image_column,
                              vectors=vectors, vector_column=vector_column, label_column=label_column,
                              skip_empty=skip_empty, truncate=truncate)
            ids, contents, label_values, vec = got.ids, got.contents, got.labels, got.vectors
            meta.update(got.meta)
        if vec is not None:
            from ._validation import check_embeddings

            vec = check_embeddings(vec)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{DB_NAME}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            Store.create(tmp, meta, ((i, ids[i], contents[i]) for i in range(len(ids))))
            for suffix in ("-wal", "-shm"):
                Path(str(tmp) + suffix).unlink(missing_ok=True)
            os.replace(tmp, folder / DB_NAME)  # the project exists only once it is complete
        finally:
            tmp.unlink(missing_ok=True)
        project = cls.open(folder)
        if vec is not None:
            project._store_vectors(vec, f"vectors:{meta.get('source', '')}")
        if label_values is not None:
            entries = [(i, str(v).strip(), i + 1) for i, v in enumerate(label_values)
                       if v is not None and str(v).strip()]
            project.store.add_labels(entries, source=str(Path(data).resolve()), who="init")  # type: ignore[arg-type]
        return project

    # ------------------------------------------------------------ embeddings
    def _store_vectors(self, X: NDArray[np.float32], name: str) -> None:
        self._write_embeddings(X.shape[0], X.shape[1], tail=X)
        with self.store.transaction() as db:
            db.execute("DELETE FROM embedded")
            db.execute("DELETE FROM parts")
            db.executemany("INSERT INTO embedded(row, hash, error) VALUES (?, ?, NULL)",
                           ((i, "vectors") for i in range(len(X))))
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           [("embed_model", json.dumps(name)), ("dim", json.dumps(int(X.shape[1])))])
        self._drop_unused_parts()

    def set_vectors(self, path: str | Path, *, force: bool = False) -> None:
        """Use the user's own vectors (.npy in item order, or .parquet with the project's ids)."""
        check_paths(path=path)
        self.store.require_writable("embed --vectors")
        from ._io import read_embeddings
        from ._validation import check_embeddings

        vid, X = read_embeddings(path, self.meta.get("id_column", "id"), option="--vectors")
        n = self.store.n_items()
        if len(X) != n:
            raise InputError(f"--vectors {str(path)!r} has {len(X)} rows but the project has {n} items; "
                             "give one vector per item, in the order of the data (or a .parquet with their ids).")
        X = align_vectors(vid, X, self.store.row_lookup(), path)
        dim = self.meta.get("dim")
        if dim is not None and int(dim) != X.shape[1] and not force:
            raise InputError(f"--vectors {str(path)!r} has {X.shape[1]} dimensions but the project's vectors have {dim}; "
                             "pass --force to replace them all.")
        if self.meta.get("embed_model") and not force:
            raise InputError(f"This project already has vectors ({self.meta['embed_model']!r}); pass --force to replace them.")
        self._store_vectors(check_embeddings(X), f"vectors:{Path(path).resolve()}")

    def add(self, data: str | Path | None = None, *, vectors: str | Path | None = None,
            vector_column: str | None = None, label_column: str | None = None, skip_empty: bool = False,
            truncate: bool = False) -> int:
        """Add items to the project after it was created (and perhaps fitted): a table of the
        project's kind, with new ids. Text and image items are embedded by the next `embed`;
        vectors come with them. A fitted run labels them without a refit (``apply --new``);
        the next `fit` takes them into the pool. Returns how many items were added."""
        check_paths(data=data, vectors=vectors)
        self.store.require_writable("add")
        meta = self.meta
        kind = meta.get("kind")
        id_column = meta.get("id_column", "id")
        if kind == "image" and not meta.get("image_column"):
            raise InputError("This project was made from an image folder; `add` takes a table (--data with the image "
                             "paths in a column): make a new project from a table to add images later.")
        if kind == "vectors" and vectors is None and vector_column is None:
            raise InputError("This project holds vectors: give the new items' vectors with --vectors (or "
                             "--vector-column of --data).")
        if data is None and kind != "vectors":
            raise InputError("--data FILE is needed: a table of the new items with the project's columns.")
        got = _read_items(data, id_column=id_column, text_column=meta.get("text_column"),
                          image_column=meta.get("image_column"), vectors=vectors,
                          vector_column=vector_column if kind == "vectors" else None, label_column=label_column,
                          skip_empty=skip_empty, truncate=truncate, own_columns=True)
        known = self.store.row_lookup()
        clash = [i for i in got.ids if i in known]
        if clash:
            raise InputError(f"{len(clash)} new item id(s) are already in the project (e.g. {clash[0]!r}); `add` only "
                             "adds new items: drop those rows or give them new ids.")
        n = self.store.n_items()
        rows = list(range(n, n + len(got.ids)))
        vec = None
        if got.vectors is not None:
            from ._validation import check_embeddings

            vec = check_embeddings(got.vectors, "--vectors")
            dim = meta.get("dim")
            if dim is not None and vec.shape[1] != int(dim):
                raise InputError(f"the new vectors have {vec.shape[1]} dimensions but the project's have {dim}; give "
                                 "vectors from the same model.")
            # the vectors first (a longer file is harmless: rows past the items are never read),
            # then the items, their marks and labels in one transaction
            self._write_embeddings(n + len(rows), int(vec.shape[1]), tail=vec)
        with self.store.transaction() as db:
            db.executemany("INSERT INTO items(row, id, content) VALUES (?, ?, ?)",
                           zip(rows, got.ids, got.contents))
            if vec is not None:
                db.executemany("INSERT OR REPLACE INTO embedded(row, hash, error) VALUES (?, ?, NULL)",
                               ((r, "vectors") for r in rows))
        if got.labels is not None:
            entries = [(n + i, str(v).strip(), i + 1) for i, v in enumerate(got.labels) if v is not None and str(v).strip()]
            if entries:
                self.store.add_labels(entries, source=str(Path(data).resolve()), who="add")  # type: ignore[arg-type]
                self._backup_labels()
        return len(rows)

    def _write_embeddings(self, n: int, dim: int, tail: NDArray[np.float32] | None = None) -> None:
        """(Re)write embeddings.npy with `n` rows of `dim`, a copy renamed into place: the rows the
        file has are kept (a new file: none), `tail` (if given) fills the last rows, the others are
        zero until embedded. The one writer of the whole file: `init --vectors`, `embed`'s first
        batch, `add` and `embed` after an `add`."""
        path = self.store.embeddings_path()
        old = np.load(path, mmap_mode="r") if path.exists() else None
        tmp = path.with_name(f".{path.name}.tmp")
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        keep = 0 if old is None or old.shape[1] != dim else min(old.shape[0], n - (0 if tail is None else len(tail)))
        for s in range(0, keep, 65536):
            mm[s:min(s + 65536, keep)] = old[s:min(s + 65536, keep)]  # type: ignore[index]
        if tail is not None:
            for s in range(0, len(tail), 65536):
                mm[n - len(tail) + s:n - len(tail) + s + 65536] = tail[s:s + 65536]
        mm.flush()
        del mm, old
        os.replace(tmp, path)

    def embed(
        self, model: str | None = None, *, batch_size: int | None = None, image_size: int = 224,
        progress: Progress | None = None, force: bool = False, embedder: Any = None, engine: str = "local",
        workers: int | None = None, device: str = "cpu",
    ) -> EmbedReport:
        """Embed every item not embedded yet, batch by batch (resumable, flat memory).

        Each batch's vectors are written and flushed before the rows are marked done in one
        transaction, so a kill at any point loses at most the batches in flight. Items with the
        same content hash are embedded once. Items that fail (an unreadable image) are recorded
        with their error and left out of the pool. A different `model` than the one used so far
        needs `force` (all vectors are recomputed). ``engine="local"`` writes the vectors to
        ``embeddings.npy``; ``engine="ray"`` embeds on a pool of Ray actors that each load the
        model once and write each batch's vectors to a Parquet part of their own
        (``embeddings/part-<first row>.parquet``, on a file system the workers share), which
        the store then points to: only the rows' marks come back to this process. `device` is
        where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``; on Ray each actor
        then holds a GPU of its own); the vectors' model name does not depend on it, so a run
        started on one device resumes on another.
        """
        self.store.require_writable("embed")
        t0 = time.perf_counter()
        meta = self.meta
        kind = meta["kind"]
        if kind == "vectors":
            return EmbedReport(meta.get("embed_model", "vectors"), 0, 0, self.store.n_items())
        from .engines import get_engine

        runner = get_engine(engine, workers=workers)  # a bad --engine or --workers before any model loads
        if embedder is None:
            from .embed import get_embedder

            embedder = get_embedder(kind, model, image_size=image_size, device=device)
        # a GPU that is not there is bad input before any model loads (hashing has no device)
        gpus = runner.gpus_for(embedder.device) if hasattr(embedder, "device") else 0.0
        with _only_one(self.folder, "embed"):  # a second embed would redo the same batches
            previous = meta.get("embed_model")
            path, parts_dir = self.store.embeddings_path(), self.store.parts_path()
            if previous is not None and previous != embedder.name:
                if not force:
                    raise InputError(f"This project's items were embedded with {previous!r}; embedding with "
                                     f"{embedder.name!r} would replace all vectors: pass --force to do so.")
                self._forget_vectors()
                path.unlink(missing_ok=True)
            self._forget_lost_vectors(force and previous == embedder.name)
            n = self.store.n_items()
            done = {r for (r,) in self.store.db.execute("SELECT row FROM embedded")}
            pending = [r for r in range(n) if r not in done]
            if batch_size is not None and batch_size < 1:
                raise InputError(f"--batch-size must be at least 1; got {batch_size}.")
            to_parts = runner.name != "local"
            bs = batch_size or (EMBED_BATCH_RAY if to_parts else EMBED_BATCH).get(kind, 128)
            n_new = n_cached = 0
            mm = None
            if path.exists() and not to_parts:
                mm = np.load(path, mmap_mode="r+")
                if mm.shape[0] < n and pending and min(pending) >= mm.shape[0]:  # items added since: room for them
                    del mm
                    self._write_embeddings(n, int(np.load(path, mmap_mode="r").shape[1]))
                    mm = np.load(path, mmap_mode="r+")
                if mm.shape[0] != n:
                    raise InputError(f"{str(path)!r} has {mm.shape[0]} rows but the project has {n} items; "
                                     f"run `labelseed embed {self.folder} --force` to rebuild it.")
            if to_parts:
                parts_dir.mkdir(exist_ok=True)
            batches = [_EmbedBatch(s, _row_runs(pending[s:s + bs]),
                                   str(parts_dir / f"part-{pending[s]:012d}.parquet") if to_parts else None)
                       for s in range(0, len(pending), bs)]
            named = previous == embedder.name
            n_parts = 0
            # the worker reads its batch from the store and the content-hash cache itself: only the
            # batches' row ranges go out, only the marks (and, locally, the vectors) come back
            make_worker = partial(_EmbedWorker, str(self.folder), embedder)
            for k, got in enumerate(runner.map_list(make_worker, _embed_batch, batches, gpus=gpus)):  # in batch order
                s, rows, hashes, errors = batches[k].first, got.rows, got.hashes, got.errors
                if got.vectors is not None:
                    if mm is None:
                        mm = self._create_embeddings(path, n, got.dim)
                    mm[np.asarray(rows)] = got.vectors
                    mm.flush()  # vectors on disk before the rows are marked done
                if not named:
                    self.store.set_meta(embed_model=embedder.name, dim=got.dim)
                    named = True
                kept = [r for i, r in enumerate(rows) if i not in errors]
                with self.store.transaction() as db:
                    db.executemany("INSERT OR REPLACE INTO embedded(row, hash, error) VALUES (?, ?, ?)",
                                   [(r, hashes[i], errors.get(i)) for i, r in enumerate(rows)])
                    if got.part is not None:  # a pending row is in no part: its marks and part go together
                        db.executemany("INSERT OR REPLACE INTO parts(row, part) VALUES (?, ?)",
                                       [(r, Path(got.part).name) for r in kept])
                n_new += got.embedded
                n_cached += len(kept) - got.embedded
                n_parts += got.part is not None and bool(kept)
                if progress:
                    progress("embedding", min(s + bs, len(pending)), len(pending))
            self._drop_unused_parts()
            failed = self.store.embed_errors()
            return EmbedReport(embedder.name, n_new, n_cached, len(done), failed, time.perf_counter() - t0, n_parts)

    def _forget_vectors(self) -> None:
        """Unmark every vector and delete the Parquet parts (files labelseed wrote)."""
        with self.store.transaction() as db:
            db.execute("DELETE FROM embedded")
            db.execute("DELETE FROM parts")
        self._drop_unused_parts()

    def _forget_lost_vectors(self, everything: bool) -> None:
        """Unmark what must be embedded again: everything (`--force` with the same model), the
        rows of embeddings.npy when it was deleted by hand, the rows of a missing Parquet part."""
        if everything:
            self._forget_vectors()
            return
        lost: list[int] = []
        if not self.store.embeddings_path().exists():
            lost = [r for (r,) in self.store.db.execute(
                "SELECT row FROM embedded WHERE error IS NULL AND row NOT IN (SELECT row FROM parts)")]
        if lost:
            log.warning("%s is missing: embedding its %d items again", self.store.embeddings_path(), len(lost))
        for part, count in self.store.part_names().items():
            if not (self.store.parts_path() / part).exists():
                log.warning("%s is missing: embedding its %d items again", self.store.parts_path() / part, count)
                lost += [r for (r,) in self.store.db.execute("SELECT row FROM parts WHERE part = ?", (part,))]
        if lost:
            with self.store.transaction() as db:
                db.executemany("DELETE FROM embedded WHERE row = ?", [(r,) for r in lost])
                db.executemany("DELETE FROM parts WHERE row = ?", [(r,) for r in lost])

    def _drop_unused_parts(self) -> None:
        """Delete Parquet parts no row points to (a batch killed after its part was written and
        before its rows were marked, then embedded again in another batch)."""
        folder = self.store.parts_path()
        if not folder.is_dir():
            return
        used = set(self.store.part_names())
        for f in folder.glob("part-*.parquet"):
            if f.name not in used:
                f.unlink(missing_ok=True)
        for f in folder.glob(".part-*.tmp"):
            f.unlink(missing_ok=True)

    def _create_embeddings(self, path: Path, n: int, dim: int) -> Any:
        self._write_embeddings(n, dim)
        return np.load(path, mmap_mode="r+")

    def _vectors_by_hash(self, hashes: list[str]) -> dict[str, NDArray[np.float32]]:
        """The stored vector of each hash already embedded (the content-hash cache)."""
        if not hashes:
            return {}
        found: dict[str, int] = {}
        uniq = list(set(hashes))
        for s in range(0, len(uniq), 900):
            chunk = uniq[s:s + 900]
            q = f"SELECT hash, MIN(row) FROM embedded WHERE error IS NULL AND hash IN ({','.join('?' * len(chunk))}) GROUP BY hash"
            found.update(self.store.db.execute(q, chunk).fetchall())
        if not found:
            return {}
        hs = list(found)
        X = self.stored_vectors(np.asarray([found[h] for h in hs], dtype=np.int64))
        return {h: X[k] for k, h in enumerate(hs)}

    def vectors(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """(rows with a vector, their vectors as float32 in memory)."""
        ok, _ = self.store.embedded_rows()
        n = self.store.n_items()
        if len(ok) == 0:
            raise InputError(f"No item of {str(self.folder)!r} is embedded yet; run `labelseed embed {self.folder}`.")
        missing = n - len(ok) - len(self.store.embedded_rows()[1])
        if missing:
            raise InputError(f"{missing} of {n} items are not embedded yet (an interrupted embed?); "
                             f"run `labelseed embed {self.folder}` to finish.")
        X = self.stored_vectors(ok)
        zero = np.flatnonzero(~X.any(axis=1))
        if len(zero):  # a vector of an embedded item is never all zero: the file was damaged or replaced
            row = int(ok[zero[0]])
            part = self.store.part_of(row)
            path = self.store.parts_path() / part if part else self.store.embeddings_path()
            raise InputError(f"{str(path)!r} holds {len(zero)} all-zero vector(s) for items marked embedded (e.g. row "
                             f"{row + 1}); it is damaged: rebuild it with `labelseed embed {self.folder} --force`.")
        return ok, X

    def stored_vectors(self, rows: NDArray[np.int64]) -> NDArray[np.float32]:
        """The vectors of embedded `rows`, in memory (from embeddings.npy and the Parquet parts)."""
        dim = self.meta.get("dim")
        if dim is None:  # a project from before the dimension was recorded: the array says it
            path = self.store.embeddings_path()
            dim = np.load(path, mmap_mode="r").shape[1] if path.exists() else 0
        return self.store.read_vectors(np.asarray(rows, dtype=np.int64), int(dim))

    # ---------------------------------------------------------------- labels
    def import_labels(self, path: str | Path | Any, *, who: str | None = None, replace: bool = False,
                      origin: str = "random") -> ImportReport:
        """Import human labels from a CSV (id,label) or a Label Studio JSON export, or given in
        Python: a mapping of id to label (a dict, a pandas Series indexed by id) or a table with
        columns ``id`` and ``label`` (a pandas DataFrame); ids are matched as text.

        All or nothing: unknown ids or an id labeled twice differently in the file stop
        the import with the rows named. Same label as stored: no change. A different
        one: reported as a conflict and kept out, unless `replace`.

        `origin` says how the rows were chosen, which decides what their labels may be
        used for: ``random`` (drawn at random, within classes or from the pool: they
        calibrate the precision estimate), ``picked`` (chosen by a person or another tool:
        they spread but never calibrate) or ``validation`` (a uniform random sample of the
        pool kept aside: it calibrates, and ``fit(certify="audit")`` uses it like an
        audit). Audit answers need no origin: the rows an audit asked about are known.
        """
        if origin not in ("random", "picked", "validation"):
            raise InputError(f"`origin` must be 'random', 'picked' or 'validation'; got {origin!r}.")
        self.store.require_writable("import")
        p: Path | None = None
        if isinstance(path, (str, os.PathLike)):
            p = file = Path(path)
            if not file.exists():
                raise InputError(f"Labels file {str(file)!r} does not exist.")
            name, source = repr(str(file)), str(file.resolve())
            restored = _backup_origins(file)
            if restored is not None and origin != "random":
                raise InputError(f"{name} has an origin column (a labels backup): each row's origin comes from it; "
                                 "drop --picked/--validation (nothing was imported).")
            pairs = read_label_file(file)
        else:  # labels given in Python
            name, source, restored = "The labels given", "python", None
            pairs = label_pairs(path)
        if not pairs:
            if p is None:
                raise InputError("The labels given hold no label (no id with a non-empty label); label some items "
                                 "first, then import them (nothing was imported).")
            raise InputError(f"{name} holds no labels (no row with an id and a label, or no annotated task); "
                             "label some items first, then import the file (nothing was imported).")
        lookup = self.store.row_lookup()
        unknown = [(line, i) for i, _, line in pairs if i not in lookup]
        if unknown:
            shown = ", ".join(f"{i!r} (row {line})" for line, i in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise InputError(f"{name} {'labels' if p else 'label'} {len(unknown)} id(s) that are not items of this "
                             f"project: {shown}{more}; fix the ids or drop those rows (nothing was imported).")
        seen: dict[str, tuple[str, int]] = {}
        clash = []
        for i, label, line in pairs:
            if i in seen and seen[i][0] != label:
                clash.append(f"{i!r} is {seen[i][0]!r} on row {seen[i][1]} and {label!r} on row {line}")
            seen.setdefault(i, (label, line))
        if clash:
            raise InputError(f"{name} {'gives' if p else 'give'} conflicting labels: {'; '.join(clash[:3])}; keep "
                             "one label per id (nothing was imported).")
        if origin == "validation":
            known = set(self.store.current_labels().values())
            new_classes = sorted({label for label, _ in seen.values()} - known)
            if known and new_classes:
                shown = ", ".join(repr(c) for c in new_classes[:5])
                verb = "is a validation sample but has" if p else "are a validation sample but have"
                raise InputError(f"{name} {verb} class(es) no human label has: {shown}; "
                                 "a validation sample checks the classes being auto-labeled; fix the labels "
                                 "or import those rows without --validation (nothing was imported).")
        entries = [(lookup[i], label, line) for i, (label, line) in seen.items()]
        who = who or os.environ.get("USER", "unknown")
        if restored is None or p is None:  # (a backup is always a file)
            report = self.store.add_labels(entries, source=source, who=who, replace=replace, origin=origin)
        else:
            report = self._restore(entries, {lookup[i]: o for i, o in restored.items() if i in lookup}, p, who,
                                   replace)
        self._backup_labels()
        return report

    def _restore(self, entries: list[tuple[int, str, int]], origins: dict[int, tuple[str, str, float | None]],
                 p: Path, who: str, replace: bool) -> ImportReport:
        """Import a labels backup with each row's origin: ``random``, ``validation`` and
        ``picked`` as written; ``sampled`` rows get their draw back (batch and probability),
        so they calibrate with the same weights as before; ``audit`` and ``accepted`` rows
        become ``picked`` (the runs they belonged to are not in this project)."""
        groups: dict[str, list[tuple[int, str, int]]] = {}
        draws: dict[str, list[tuple[int, float]]] = {}
        for e in entries:
            o, batch, inc = origins.get(e[0], ("random", "", None))
            if o == "sampled" and batch and inc is not None:
                draws.setdefault(batch, []).append((e[0], inc))
                o = "random"  # the recorded draw, not an origin row, makes it 'sampled'
            elif o not in ("random", "validation"):
                o = "picked"
            groups.setdefault(o, []).append(e)
        if draws:
            at = now()
            with self.store.transaction() as db:
                for batch, rows in draws.items():
                    kind = "select" if batch.startswith("select") else "query"
                    db.executemany("INSERT INTO requests(batch, kind, row, rank, strategy, reason, at) "
                                   "VALUES (?,?,?,?,?,?,?)", [(batch, kind, r, k + 1, "restored", "restored from "
                                                              "a labels backup", at) for k, (r, _) in enumerate(rows)])
                    db.executemany("INSERT OR REPLACE INTO draws(batch, row, inclusion) VALUES (?,?,?)",
                                   [(batch, r, inc) for r, inc in rows])
        reports = [self.store.add_labels(group, source=str(p.resolve()), who=who, replace=replace, origin=o)
                   for o, group in groups.items()]
        return ImportReport(sum(r.added for r in reports), sum(r.unchanged for r in reports),
                            sum(r.replaced for r in reports), [c for r in reports for c in r.conflicts])

    def label_items(self, rows: list[int], label: str, *, source: str = "web", who: str | None = None) -> ImportReport:
        """Give `rows` the human label `label` (a person's decision in the page: it replaces a
        stored label, the old one stays in the history)."""
        self.store.require_writable("label")
        entries = [(int(r), label, 0) for r in rows]
        report = self.store.add_labels(entries, source=source, who=who or os.environ.get("USER", "unknown"),
                                       replace=True, always=True)
        self._backup_labels()
        return report

    def accept(self, rows: list[int] | NDArray[np.int64], label: str, *, who: str | None = None) -> str:
        """A person accepts the run's label `label` for `rows` in one step (bulk accept in the page).

        Stored as human labels with source ``accept:<batch>`` and origin ``accepted``: they
        spread like any label but never calibrate an estimate (nobody looked at each row).
        Returns the batch id, which :meth:`undo_accept` takes."""
        self.store.require_writable("accept")
        batch = "accept-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:4]
        entries = [(int(r), label, 0) for r in rows]
        self.store.add_labels(entries, source=f"accept:{batch}", who=who or os.environ.get("USER", "unknown"),
                              replace=False, origin="accepted")
        self._backup_labels()
        return batch

    def undo_accept(self, batch: str, *, who: str | None = None) -> int:
        """Retract, in one transaction, every label of an accept batch that is still the row's
        current label; returns how many."""
        self.store.require_writable("accept")
        n = self.store.retract_source(f"accept:{batch}", who or os.environ.get("USER", "unknown"))
        self._backup_labels()
        return n

    def unlabel_item(self, row: int, *, source: str = "web", who: str | None = None) -> bool:
        """Retract `row`'s human label (an undo); the history keeps the label and the retraction."""
        self.store.require_writable("label")
        out = self.store.retract_label(int(row), source, who or os.environ.get("USER", "unknown"))
        self._backup_labels()
        return out

    def _backup_labels(self) -> None:
        """Rewrite the labels backup beside the database: each labeled item's current label and
        origin, a file `labelseed import` reads back (what a damaged database's message points
        at). One that cannot be written is a warning, never a failure."""
        from ._io import write_csv_atomic

        origins = self.store.label_origins()
        draws = self.store.draw_inclusion()
        labeled = sorted(self.store.current_labels().items())
        ids = self.store.ids_of([r for r, _ in labeled])  # only the labeled items' ids, not the pool's
        rows = []
        for i, (r, label) in zip(ids, labeled):
            origin = origins.get(r, "random")
            batch, inc = draws.get(r, ("", None)) if origin == "sampled" else ("", None)
            rows.append({"id": i, "label": label, "origin": origin, "draw": batch,
                         "inclusion": "" if inc is None else repr(inc)})
        try:
            write_csv_atomic(self.folder / BACKUP, ["id", "label", "origin", "draw", "inclusion"], rows)
        except OSError as exc:
            log.warning("could not write the labels backup %s: %s", self.folder / BACKUP, exc)

    def _require_labels(self) -> None:
        if not self.store.current_labels():
            raise InputError(f"{str(self.folder)!r} has no human labels yet: pick rows (`labelseed select "
                             f"{self.folder} --budget N`), have a person label them, then `labelseed import "
                             f"{self.folder} FILE`.")

    def labels(self) -> dict[int, str]:
        return self.store.current_labels()

    def _labels_for(self, rows: NDArray[np.int64]) -> NDArray[np.object_]:
        """Current human labels aligned to `rows` (the embedded rows), None where unlabeled."""
        pos = {int(r): i for i, r in enumerate(rows)}
        y = np.full(len(rows), None, dtype=object)
        ignored = 0
        for row, label in self.store.current_labels().items():
            if row in pos:
                y[pos[row]] = label
            else:
                ignored += 1
        if ignored:
            log.warning("%d labeled item(s) have no vector (failed to embed) and are left out", ignored)
        return y

    # ------------------------------------------------------------------- fit
    def _origins_for(self, rows: NDArray[np.int64], origins: dict[int, str] | None = None) -> NDArray[np.object_]:
        """Each row's label origin ('' when unlabeled), aligned to `rows`."""
        origins = self.store.label_origins() if origins is None else origins
        return np.array([origins.get(int(r), "") for r in rows], dtype=object)

    def _label_design(self, rows: NDArray[np.int64], y: NDArray[np.object_],
                      origin: NDArray[np.object_]) -> "LabelDesign":
        """What each label may be used for (:func:`labelseed.ops.label_design`), with the
        draws select/query recorded for the rows they drew at random."""
        from .ops import label_design

        draws = self.store.draw_inclusion()
        batch = np.array([draws.get(int(r), ("", 1.0))[0] for r in rows], dtype=object)
        inc = np.array([draws.get(int(r), ("", 1.0))[1] for r in rows], dtype=np.float64)
        return label_design(y, origin, batch, inc)

    def _audit_evidence(self, rows: NDArray[np.int64], origins: dict[int, str]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Project rows that may certify a run (audited or validation labels) and each one's
        probability of having been drawn. Refuses audit labels whose run is gone."""
        pos = {int(r): i for i, r in enumerate(rows)}
        inclusion: dict[int, float] = {}
        gone: set[str] = set()
        runs = {r for (r,) in self.store.db.execute("SELECT run_id FROM runs")}
        for run_id, row, _, inc in self.store.audit_records():
            if origins.get(row) != "audit" or row not in pos:
                continue
            if run_id not in runs or not (self.folder / "runs" / run_id / "decisions.npz").exists():
                gone.add(run_id)
                continue
            inclusion[row] = inc  # the newest audit that asked about the row
        if gone:
            raise InputError(f"Audit labels in {str(self.folder)!r} come from run(s) that no longer exist "
                             f"({', '.join(sorted(gone))}); draw a new audit of the last run with "
                             f"`labelseed audit {self.folder} --budget N` and import the verified labels.")
        validation = [r for r, o in origins.items() if o == "validation" and r in pos]
        if validation:
            share = len(validation) / max(len(rows), 1)
            for r in validation:
                inclusion[r] = share
        if not inclusion:
            raise InputError(f"`--certify audit` needs verified audit labels and there are none in {str(self.folder)!r}: "
                             f"run `labelseed audit {self.folder} --budget N`, have a person verify the rows, then "
                             f"`labelseed import {self.folder} FILE` (or import a random sample with --validation).")
        keys = sorted(inclusion)
        return np.array([pos[r] for r in keys], dtype=np.int64), np.array([inclusion[r] for r in keys])

    def fit(
        self, settings: "FitSettings | None" = None, *, progress: Progress | None = None, certify: str = "cv",
        engine: str = "local", workers: int | None = None, **params: Any,
    ) -> dict[str, Any]:
        """Run the core engine on the embedded items and the current human labels.

        `settings` (:class:`labelseed.ops.FitSettings`), or its fields as keyword arguments.
        Each label is used for what its origin supports (:meth:`Store.label_origins`): every
        label spreads; ``random``, ``validation`` and ``sampled`` labels calibrate the
        precision estimate, the last each weighted by 1 / its probability of being drawn
        (select ``stratified`` and query ``sampled`` draw at random with known probabilities).
        Rows other strategies picked, or imported as picked, are no sample of the pool, and
        audit rows are a sample of one run's *accepted* rows: they never calibrate. With no
        calibrating label the estimate is kept but marked untrusted.

        ``certify="audit"``: the audited and validation rows are left out of the spread and
        scored like any pool row; the thresholds are then raised until the exact bound on
        those rows that the new run still accepts (each weighted by its inclusion
        probability) meets the target (:meth:`AutoLabeler.certify_with_audit`).

        Records a run (config, package versions, summary) and its decisions under
        ``runs/<run_id>/``; ``apply`` writes them out. Returns the run record. ``engine="ray"``
        searches the kNN graph on Ray actors (the same graph; :func:`labelseed.ops.fit`).
        """
        from . import ops
        from .runs import write_run

        if certify not in ("cv", "audit"):
            raise InputError(f"`certify` must be 'cv' or 'audit'; got {certify!r}.")
        self.store.require_writable("fit")
        settings = ops.FitSettings.from_config(settings.config() if settings else {}, **params)
        rows, X = self.vectors()
        self._require_labels()
        labels_digest = self.store.labels_digest()
        y = self._labels_for(rows)
        origins = self.store.label_origins()
        origin = self._origins_for(rows, origins)
        human_rows = rows[np.flatnonzero(y != None)]  # noqa: E711  (audited rows too: they keep their human label)
        audit = None
        if certify == "audit":
            held, inclusion = self._audit_evidence(rows, origins)
            audit = ops.AuditEvidence(held, y[held].copy(), inclusion)
            y_cal = y.copy()
            y_cal[held] = None
        else:
            y_cal = y
        design = self._label_design(rows, y_cal, origin)
        outcome = ops.fit(X, y, settings, calibrate=design.calibrate, cache_dir=self.folder / "cache",
                          progress=progress, audit=audit, inputs={"project": str(self.folder.resolve())},
                          engine=engine, workers=workers, design_weight=design.design_weight)
        run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        config = {**settings.config(), "certify": certify, "embed_model": self.meta.get("embed_model"),
                  "labels_digest": labels_digest}
        summary = outcome.summary
        summary["estimate"]["labels"] = design.labels
        summary["estimate"]["calibrated_by"] = design.calibrated_by
        if audit is not None:
            summary["estimate"]["audit_rows"] = int(len(audit.rows))
        run_dir = self.folder / "runs" / run_id
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.tmp-", dir=self.folder))
        try:
            ids = self.store.ids()
            write_run(tmp, outcome.model, summary, rows, [ids[r] for r in rows], human_rows)
            (self.folder / "runs").mkdir(exist_ok=True)
            os.replace(tmp, run_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        with self.store.transaction() as db:
            db.execute("INSERT INTO runs(run_id, started, finished, status, config, versions, summary) "
                       "VALUES (?,?,?,?,?,?,?)", (run_id, now(), None, "fitted", json.dumps(config),
                                                  json.dumps(_versions()), json.dumps(summary)))
        return self.store.run(run_id)

    def run(self, run_id: str | None = None) -> dict[str, Any]:
        run = self.store.run(run_id) if run_id else self.store.latest_run()
        if run is None:
            raise InputError(f"{str(self.folder)!r} has no run yet; run `labelseed fit {self.folder}` first.")
        return run

    def decisions(self, run_id: str | None = None) -> dict[str, Any]:
        run = self.run(run_id)
        return {"run": run, **read_decisions(self.folder / "runs" / run["run_id"])}

    def set_threshold(self, label: str, threshold: float, *, run_id: str | None = None,
                      who: str | None = None) -> dict[str, Any]:
        """Set class `label`'s threshold of a run by hand.

        The run's decisions are rewritten (atomically) so that the class accepts exactly its
        unlabeled rows predicted `label` with confidence >= `threshold`; its summary records the
        new threshold with ``set_by: "hand"`` (who, when, the threshold it replaced) and the
        calibrated precision the run's curve gives there; the run goes back to "fitted" until
        it is applied again. `apply`, `status` and the report then say it was set by hand.
        Returns the class's new summary entry."""
        from .ops import RunArrays

        self.store.require_writable("set a threshold")
        run = self.run(run_id)
        run_dir = self.folder / "runs" / run["run_id"]
        summary = dict(run["summary"] or {})
        ra = RunArrays.load(run_dir, summary, run["run_id"])
        k = ra.class_index(label)
        if not (isinstance(threshold, (int, float)) and 0 <= float(threshold) <= 1):
            raise InputError(f"`threshold` must be a number in [0, 1]; got {threshold!r}.")
        d = read_decisions(run_dir)
        human = np.asarray(d["seed_rows"], dtype=np.int64)
        order = ra.order(k)
        mine = order[ra.confidence[order] >= threshold]
        new_rows = ra.rows[mine]
        new_rows = new_rows[~np.isin(new_rows, human)]
        keep = d["accepted_label"] != k
        conf = ra.confidence[np.searchsorted(ra.rows, new_rows)]
        accepted = np.concatenate([d["accepted"][keep], new_rows])
        order_all = np.argsort(accepted, kind="stable")
        d["accepted"] = accepted[order_all]
        d["accepted_label"] = np.concatenate([d["accepted_label"][keep],
                                              np.full(len(new_rows), k, dtype=np.int32)])[order_all]
        d["accepted_confidence"] = np.concatenate([d["accepted_confidence"][keep], conf.astype(np.float32)])[order_all]
        d["accepted_threshold"] = np.concatenate([d["accepted_threshold"][keep],
                                                  np.full(len(new_rows), float(threshold))])[order_all]
        entry: dict[str, Any] = {}
        for c in summary.get("classes", []):
            if str(c.get("label")) == label:
                from .ops import bulk_preview

                pv = bulk_preview(ra, label, float(threshold), set())
                c.setdefault("threshold_fitted", c.get("threshold"))
                c.update(threshold=float(threshold), set_by="hand", set_by_who=who or os.environ.get("USER", "unknown"),
                         set_at=now(), n_accepted=int(len(new_rows)), expected_precision=pv.expected_precision,
                         oof_right_above=pv.oof_right, oof_n_above=pv.oof_n, meets_target=None)
                entry = c
        if not entry:
            raise InputError(f"run {run['run_id']!r} has no class {label!r} in its summary.")
        unlabeled = max(int(len(ra.rows) - len(human)), 1)
        summary["n_auto"] = int(len(d["accepted"]))
        summary["coverage"] = len(d["accepted"]) / unlabeled
        summary["set_by_hand"] = sorted({*summary.get("set_by_hand", []), label})
        from .runs import AUTO, ABSTAINED, HUMAN, REPORT_DATA

        with np.load(run_dir / REPORT_DATA, allow_pickle=False) as z:
            report = {key: z[key] for key in z.files}
        status = report["status"]
        mine_all = (report["predicted"] == k) & (status != HUMAN)
        status[mine_all] = ABSTAINED
        status[np.searchsorted(ra.rows, new_rows)] = AUTO
        tmp_report = run_dir / f".report.{uuid.uuid4().hex[:6]}.npz"
        np.savez(tmp_report, **report)  # type: ignore[arg-type]
        os.replace(tmp_report, run_dir / REPORT_DATA)
        tmp = run_dir / f".decisions.{uuid.uuid4().hex[:6]}.npz"
        np.savez(tmp, **d)  # type: ignore[arg-type]
        os.replace(tmp, run_dir / "decisions.npz")
        write_json_atomic(run_dir / "summary.json", summary)
        with self.store.transaction() as db:
            db.execute("UPDATE runs SET summary = ?, status = 'fitted' WHERE run_id = ?",
                       (json.dumps(summary), run["run_id"]))
        return entry

    # ----------------------------------------------------------------- apply
    def apply(self, *, run_id: str | None = None, out: str | Path | None = None, force: bool = False,
              refit: bool = False, new: bool = False, progress: Progress | None = None) -> Path:
        """Record a run's auto-labels in the store (one transaction, replacing any earlier
        attempt) and write seed + auto labels (id, label, confidence, source) to `out`
        (default ``DIR/labels.csv``; ``.parquet`` works too), renamed into place.

        A run fitted before the human labels changed is stale (its auto-labels may contradict
        the new labels): it is refused, or with `refit` fitted again with the same settings
        and that new run applied.

        With `new`, items added after the run was fitted (``add``, then ``embed``) are labeled
        too, through the run's saved index and its thresholds for new items (no refit); their
        auto-labels are recorded with the run's."""
        target = Path(out) if out is not None else self.folder / "labels.csv"
        check_output_free(target, force or out is None)  # DIR/labels.csv is labelseed's own, replaced each time
        run = self.run(run_id)
        fitted_on = (run["config"] or {}).get("labels_digest")
        if fitted_on is not None and fitted_on != self.store.labels_digest():
            if not refit:
                raise InputError(f"Run {run['run_id']!r} was fitted before the human labels changed, so its auto-labels "
                                 f"may contradict them; fit again (`labelseed fit {self.folder}`) or pass --refit to "
                                 "refit with the run's settings and apply that.")
            from .ops import FitSettings

            run = self.fit(FitSettings.from_config(run["config"]), progress=progress,
                           certify=(run["config"] or {}).get("certify", "cv"))
            new = False  # the refit's pool holds every item added before it
        d = self.decisions(run["run_id"])
        if target.suffix.lower() not in (".csv", ".parquet"):
            raise InputError(f"--out {str(target)!r}: write a .csv or .parquet file.")
        classes = d["classes"]
        rows = [(run["run_id"], int(r), str(classes[c]), float(conf), float(t))
                for r, c, conf, t in zip(d["accepted"], d["accepted_label"], d["accepted_confidence"],
                                         d["accepted_threshold"])]
        human = self.store.current_labels()
        if new:
            rows += self._label_added(run["run_id"], d, human, progress)
        if self.store.read_only:  # the labels still come out; only the store's record of them is skipped
            log.warning("%s is read-only: the auto-labels are written to %s but not recorded in the project",
                        self.folder, target)
        else:
            with self.store.transaction() as db:
                db.execute("DELETE FROM auto_labels WHERE run_id = ?", (run["run_id"],))
                db.executemany("INSERT INTO auto_labels(run_id, row, label, confidence, threshold) VALUES (?,?,?,?,?)",
                               rows)
                db.execute("UPDATE runs SET status = 'applied', finished = ? WHERE run_id = ?", (now(), run["run_id"]))
        ids = self.store.ids()
        # every human label, also of an item that could not be embedded: it is known without a vector
        records = [(ids[r], label, 1.0, "seed") for r, label in sorted(human.items())]
        records += [(ids[r], label, conf, "auto") for _, r, label, conf, _ in rows]
        write_labels(target, records)
        return target

    def _label_added(self, run_id: str, d: dict[str, Any], human: dict[int, str], progress: Progress | None = None,
                     ) -> list[tuple[str, int, str, float, float]]:
        """Auto-labels of the items added after run `run_id` was fitted (embedded, without a
        human label): its labeler, chunk by chunk."""
        from .ops import LABEL_CHUNK_ROWS, label_vectors
        from .runs import read_labeler

        ok, failed = self.store.embedded_rows()
        pending = self.store.n_items() - len(ok) - len(failed)
        if pending:
            raise InputError(f"{pending} item(s) are not embedded yet; run `labelseed embed {self.folder}` first, then "
                             "apply --new again.")
        added = ok[~np.isin(ok, np.asarray(d["rows"]))]
        added = added[np.array([int(r) not in human for r in added], dtype=bool)] if len(added) else added
        if not len(added):
            raise InputError(f"No item was added after run {run_id!r} was fitted; add items with `labelseed add "
                             f"{self.folder} --data FILE`, embed them, then apply --new.")
        labeler = read_labeler(self.folder / "runs" / run_id)
        out: list[tuple[str, int, str, float, float]] = []
        for s in range(0, len(added), LABEL_CHUNK_ROWS):
            rows = added[s:s + LABEL_CHUNK_ROWS]
            got = label_vectors(labeler, self.stored_vectors(rows), "the added items' vectors")
            for r, c, conf, a in zip(rows, got.predicted, got.confidence, got.accepted):
                if a:
                    out.append((run_id, int(r), str(labeler.classes[c]), float(conf), float(labeler.thresholds[c])))
            if progress:
                progress("label added items", min(s + LABEL_CHUNK_ROWS, len(added)), len(added))
        return out

    # ------------------------------------------------------------- selection
    def _record(self, kind: str, sel: Any, audited: list[tuple[str, int, str, float]] | None = None) -> str:
        """Record a request batch (and, for an audit, each row's run, label and inclusion
        probability) in one transaction."""
        batch = f"{kind}-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:4]
        at = now()
        with self.store.transaction() as db:
            db.executemany("INSERT INTO requests(batch, kind, row, rank, strategy, reason, at) VALUES (?,?,?,?,?,?,?)",
                           [(batch, kind, int(r), k + 1, sel.strategy, reason, at)
                            for k, (r, reason) in enumerate(zip(sel.rows.tolist(), sel.reasons))])
            if audited:
                db.executemany("INSERT INTO audits(batch, run_id, row, label, inclusion) VALUES (?,?,?,?,?)",
                               [(batch, *a) for a in audited])
            elif "inclusion" in sel.extra:  # a random draw: its labels will calibrate, weighted
                db.executemany("INSERT INTO draws(batch, row, inclusion) VALUES (?,?,?)",
                               [(batch, int(r), float(p)) for r, p in zip(sel.rows.tolist(), sel.extra["inclusion"])])
        return batch

    def select(self, budget: int, *, strategy: str = "stratified", random_state: int = 0, engine: str = "local",
               workers: int | None = None, progress: Progress | None = None) -> tuple[str, Any]:
        """Cold-start picks among the unlabeled, embedded items; recorded as a request batch.
        Returns (batch id, Selection with project row numbers). ``engine="ray"``: the kNN graph
        of the graph-based strategies is searched on Ray actors (the same picks)."""
        from .engines import get_engine
        from .select import Selection, select

        self.store.require_writable("select")
        rows, X = self.vectors()
        labeled = np.flatnonzero(np.isin(rows, list(self.store.current_labels())))
        runner = get_engine(engine, workers=workers)
        sel = select(X, budget, strategy, labeled=labeled, random_state=random_state, engine=runner, progress=progress)
        sel = Selection(rows[sel.rows], sel.strategy, sel.reasons, sel.extra)
        return self._record("select", sel), sel

    def query(self, budget: int, *, strategy: str = "sampled", random_state: int = 0,
              target_precision: float | None = None, progress: Progress | None = None) -> tuple[str, Any]:
        """Warm queries from a fresh fit on the current labels with the last run's settings
        (`progress` sees the fit's stages)."""
        from .ops import FitSettings, query
        from .select import Selection

        self.store.require_writable("query")
        last = self.store.latest_run()
        settings = FitSettings.from_config(last["config"] if last else None, random_state=random_state,
                                           target_precision=target_precision)
        rows, X = self.vectors()
        self._require_labels()
        y = self._labels_for(rows)
        origin = self._origins_for(rows)
        design = self._label_design(rows, y, origin)
        sel = query(X, y, budget, strategy, settings=settings, calibrate=design.calibrate,
                    cache_dir=self.folder / "cache", design_weight=design.design_weight, progress=progress)
        sel = Selection(rows[sel.rows], sel.strategy, sel.reasons, sel.extra)
        return self._record("query", sel), sel

    def audit(self, budget: int, *, random_state: int = 0, run_id: str | None = None) -> tuple[str, Any]:
        """A stratified sample of the run's auto-labels for a person to verify (then `import`)."""
        from .ops import draw_audit

        self.store.require_writable("audit")
        d = self.decisions(run_id)
        draw = draw_audit(d, budget, run_id=str(d["run"]["run_id"]), random_state=random_state)
        audited = [(draw.run_id, int(r), label, inc)
                   for r, label, inc in zip(draw.selection.rows, draw.labels, draw.inclusion)]
        return self._record("audit", draw.selection, audited), draw.selection

    def audit_result(self, run_id: str | None = None) -> dict[str, Any] | None:
        """Realized precision of an audited run's auto-labels, from the audited rows a person
        has labeled since: the run's label for each row (recorded when the audit was drawn)
        against the person's. `run_id`: that run's audits, else the newest audit's run.
        Strata sizes come from the recorded inclusion probabilities."""
        from .ops import measure_audit

        recs = self.store.audit_records()
        if not recs:
            recs = self._unrecorded_audits(run_id)
        if run_id is None or not any(r == run_id for r, *_ in recs):
            if not recs:
                return None
            run_id = recs[-1][0]
        given: dict[int, tuple[str, float]] = {row: (label, inc) for r, row, label, inc in recs if r == run_id}
        per_class: dict[str, list[float]] = {}
        for label, inc in given.values():
            per_class.setdefault(label, []).append(inc)
        counts = {c: int(round(len(v) / float(np.mean(v)))) for c, v in per_class.items()}
        origins = self.store.label_origins()
        # a label accepted in bulk is nobody's verification of that row
        verified = {r: v for r, v in self.store.current_labels().items() if origins.get(r) != "accepted"}
        result = measure_audit({r: g[0] for r, g in given.items()}, verified, counts, run_id=run_id)
        return None if result is None else result.to_dict()

    def _unrecorded_audits(self, run_id: str | None) -> list[tuple[str, int, str, float]]:
        """Audits drawn by a labelseed that did not record them (before the audits table):
        their rows are taken as a sample of the given (or last) run's accepted rows."""
        rows = [r for (r,) in self.store.db.execute("SELECT DISTINCT row FROM requests WHERE kind = 'audit'")]
        if not rows or (run_id is None and self.store.latest_run() is None):
            return []
        d = self.decisions(run_id)
        pred = dict(zip(d["accepted"].tolist(), accepted_labels(d).tolist()))
        per_class = {c: sum(v == c for v in pred.values()) for c in set(pred.values())}
        mine = [r for r in rows if r in pred]
        asked = {c: sum(pred[r] == c for r in mine) for c in per_class}
        return [(str(d["run"]["run_id"]), r, str(pred[r]), asked[pred[r]] / per_class[pred[r]]) for r in mine]

    # ---------------------------------------------------------------- export
    def export(self, out: str | Path, *, items: str = "requested", batch: str | None = None, force: bool = False) -> Path:
        """Write items with their text or image reference: CSV or Label Studio tasks JSON (by suffix).

        `items`: ``requested`` (the last select/query/audit batch, or `batch`),
        ``unlabeled``, ``labeled`` or ``all``.
        """
        target = Path(out)
        check_output_free(target, force)
        if target.suffix.lower() not in (".csv", ".json"):
            raise InputError(f"--out {str(target)!r}: export writes a .csv file or Label Studio tasks as .json; "
                             f"got {target.suffix or 'no suffix'!r}.")
        db = self.store.db
        ranks: dict[int, tuple[int, str, str]] = {}
        if items == "requested":
            b = batch or (db.execute("SELECT batch FROM requests ORDER BY seq DESC LIMIT 1").fetchone() or [None])[0]
            if b is None:
                raise InputError(f"Nothing has been requested yet; run `labelseed select {self.folder} --budget N` "
                                 "first, or export --items unlabeled|labeled|all.")
            got = db.execute("SELECT row, rank, strategy, reason FROM requests WHERE batch = ? ORDER BY rank", (b,)).fetchall()
            if not got:
                raise InputError(f"No request batch {b!r}.")
            rows = [r for r, *_ in got]
            ranks = {r: (k, s, why) for r, k, s, why in got}
        else:
            human = self.store.current_labels()
            n = self.store.n_items()
            if items == "unlabeled":
                rows = [r for r in range(n) if r not in human]
            elif items == "labeled":
                rows = sorted(human)
            elif items == "all":
                rows = list(range(n))
            else:
                raise InputError(f"--items must be requested, unlabeled, labeled or all; got {items!r}.")
        write_items(target, self.store.ids(), rows, ranks, self.store.contents(rows), self.reference)
        return target

    def export_label_history(self, out: str | Path, *, force: bool = False) -> Path:
        """Every human label ever stored, oldest first (the append-only history, replaced and
        conflicting ones included as they were recorded), as .csv or .parquet: a user can
        always get their labels out of a project."""
        import pyarrow as pa

        target = Path(out)
        check_output_free(target, force)
        if target.suffix.lower() not in (".csv", ".parquet"):
            raise InputError(f"--out {str(target)!r}: the label history is written as .csv or .parquet; "
                             f"got {target.suffix or 'no suffix'!r}.")
        origins = self.store.label_origins()
        q = ("SELECT items.id, labels.label, labels.source, labels.source_row, labels.who, labels.at, labels.row "
             "FROM labels JOIN items USING(row) ORDER BY labels.seq")
        rec = self.store.db.execute(q).fetchall()
        table = pa.table({
            "id": pa.array([r[0] for r in rec], pa.string()),
            "label": pa.array([r[1] for r in rec], pa.string()),
            "origin": pa.array([origins.get(r[6], "random") for r in rec], pa.string()),
            "source": pa.array([r[2] for r in rec], pa.string()),
            "source_row": pa.array([r[3] for r in rec], pa.int64()),
            "who": pa.array([r[4] for r in rec], pa.string()),
            "at": pa.array([r[5] for r in rec], pa.string()),
        })
        write_table_file(target, table)
        return target

    # ---------------------------------------------------------------- status
    def status(self) -> dict[str, Any]:
        """Counts per class (seed, auto, abstained), embedding progress and the last run's estimates."""
        meta = self.meta
        n = self.store.n_items()
        ok, bad = self.store.embedded_rows()
        human = self.store.current_labels()
        origins = Counter(self.store.label_origins().values())
        per: dict[str, dict[str, int]] = {}
        for label in human.values():
            per.setdefault(label, {"seed": 0, "auto": 0, "abstained": 0})["seed"] += 1
        out: dict[str, Any] = {
            "project": str(self.folder.resolve()), "kind": meta.get("kind"), "items": n,
            "embedded": int(len(ok)), "failed_to_embed": int(len(bad)), "embed_model": meta.get("embed_model"),
            "vector_parts": len(self.store.part_names()),
            "labeled": len(human),
            "label_origins": {o: k for o in ORIGINS if (k := origins[o])},
            "conflicts": int(self.store.db.execute("SELECT COUNT(*) FROM conflicts").fetchone()[0]),
            "last_run": None,
        }
        run = self.store.latest_run()
        if run is not None:
            d = self.decisions(run["run_id"])
            classes = d["classes"]
            for label in accepted_labels(d):
                per.setdefault(str(label), {"seed": 0, "auto": 0, "abstained": 0})["auto"] += 1
            dist = d["distribution"]
            decided = np.zeros(len(d["rows"]), dtype=bool)
            decided[np.searchsorted(d["rows"], d["accepted"])] = True
            decided[np.searchsorted(d["rows"], d["seed_rows"])] = True
            reach = dist.sum(axis=1) > 0
            best = dist.argmax(axis=1)
            for c in np.flatnonzero(~decided & reach):
                per.setdefault(str(classes[best[c]]), {"seed": 0, "auto": 0, "abstained": 0})["abstained"] += 1
            s = run["summary"] or {}
            out["last_run"] = {"run_id": run["run_id"], "status": run["status"], "started": run["started"],
                               "expected_precision": s.get("expected_precision"),
                               "expected_precision_interval": s.get("expected_precision_interval"),
                               "coverage": s.get("coverage"), "target_precision": s.get("target_precision"),
                               "n_auto": s.get("n_auto"), "n_abstained": s.get("n_abstained"),
                               "unreached": int((~decided & ~reach).sum()), "estimate": s.get("estimate"),
                               "graph_space": s.get("graph_space"),
                               "graph_space_asked": (s.get("settings") or {}).get("graph_space"),
                               "per_class": {c["label"]: {k: c.get(k) for k in (
                                   "threshold", "expected_precision", "precision_low", "precision_high",
                                   "meets_target", "certified_by", "audit_needed", "labels_needed", "set_by")} for c in s.get("classes", [])}}
            out["audit"] = self.audit_result(run["run_id"])
        out["classes"] = {k: per[k] for k in sorted(per)}
        return out


@dataclass
class _Items:
    """Items read from a user's table: ids, what is embedded (text or image path; None for
    vectors), seed labels when a label column was named, vectors when given, and what the
    project's meta records about the source."""

    ids: list[str]
    contents: list[str | None]
    labels: list[Any] | None
    vectors: NDArray[np.float32] | None
    meta: dict[str, Any]


def _read_items(data: str | Path | None, *, id_column: str, text_column: str | None = None,
                image_column: str | None = None, vectors: str | Path | None = None,
                vector_column: str | None = None, label_column: str | None = None, skip_empty: bool = False,
                truncate: bool = False, own_columns: bool = False) -> _Items:
    """The items of a table (texts, image paths or vectors), checked: what `init` and `add` read.
    With `own_columns` (``add``) the id, text and image columns are the project's, not options."""
    flag = (lambda option: None) if own_columns else (lambda option: option)
    meta: dict[str, Any] = {}
    label_values: list[Any] | None = None
    vec: NDArray[np.float32] | None = None
    if data is None:
        from ._io import read_embeddings

        vid, vec = read_embeddings(vectors, id_column, option="--vectors")  # type: ignore[arg-type]
        ids = [str(v) for v in vid.tolist()]
        return _Items(ids, [None] * len(ids), None, vec, {"kind": "vectors",
                                                           "source": str(Path(vectors).resolve())})  # type: ignore[arg-type]
    path = Path(data)
    table = read_table(path, [c for c in (id_column, text_column, image_column, label_column) if c])
    if table.num_rows == 0:
        raise InputError(f"--data {str(path)!r} has no rows.")
    ids = str_ids(column(table, id_column, path, flag("--id-column")), path)
    meta.update(source=str(path.resolve()))
    if label_column is not None:
        label_values = column(table, label_column, path, "--label-column")
    contents: list[str | None]
    if text_column is not None:
        texts = ["" if t is None else str(t) for t in column(table, text_column, path, flag("--text-column"))]
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        huge = [i for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS]
        problems = []  # every problem of the file in one message, not one per attempt
        if empty and not skip_empty:
            problems.append(f"empty text in column {text_column!r} on row(s) {rows_text(empty)}; fill or "
                            "remove them, or pass --skip-empty to leave them out")
        if huge and not truncate:
            problems.append(f"text longer than {MAX_TEXT_CHARS:,} characters on row(s) {rows_text(huge)}; "
                            f"shorten them, or pass --truncate to keep the first {MAX_TEXT_CHARS:,} "
                            "(the text model reads only the first ~256 tokens)")
        if problems:
            raise InputError(f"--data {str(path)!r}: " + ". Also, ".join(problems) + ".")
        texts = [t[:MAX_TEXT_CHARS] for t in texts]
        keep = [i for i, t in enumerate(texts) if t.strip()]
        if len(keep) < len(texts):
            meta["skipped_empty"] = [ids[i] for i in range(len(ids)) if not texts[i].strip()]
        ids, contents = [ids[i] for i in keep], [texts[i] for i in keep]
        if label_values is not None:
            label_values = [label_values[i] for i in keep]
        meta.update(kind="text", text_column=text_column)
    elif image_column is not None:
        base = path.resolve().parent
        contents = [None if v is None else str((base / str(v)).resolve())
                    for v in column(table, image_column, path, flag("--image-column"))]
        meta.update(kind="image", image_column=image_column)
    else:
        from ._io import read_embeddings

        if vector_column is not None:
            _, vec = read_embeddings(path, id_column, vector_column, option="--data")
        else:
            vid, vec = read_embeddings(vectors, id_column, option="--vectors")  # type: ignore[arg-type]
            if len(vec) != len(ids):
                raise InputError(f"--vectors {str(vectors)!r} has {len(vec)} rows but --data {str(path)!r} "
                                 f"has {len(ids)}; they must describe the same items.")
            vec = align_vectors(vid, vec, {i: k for k, i in enumerate(ids)}, vectors)  # type: ignore[arg-type]
        contents = [None] * len(ids)
        meta.update(kind="vectors")
    return _Items(ids, contents, label_values, vec, meta)


@dataclass(frozen=True)
class _EmbedBatch:
    """One batch of :meth:`Project.embed`, as the work that goes to a worker: where it starts
    in the list of rows still to embed, its rows as ranges ``[start, stop)`` of project rows
    (a few numbers however large the batch) and the Parquet part its worker writes (None:
    the vectors come back)."""

    first: int
    runs: tuple[tuple[int, int], ...]
    part: str | None

    def rows(self) -> list[int]:
        return [r for start, stop in self.runs for r in range(start, stop)]


def _row_runs(rows: list[int]) -> tuple[tuple[int, int], ...]:
    """Ascending `rows` as maximal ranges ``[start, stop)``."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and runs[-1][1] == r:
            runs[-1] = (runs[-1][0], r + 1)
        else:
            runs.append((r, r + 1))
    return tuple(runs)


class _EmbedWorker:
    """What a worker holds while it embeds a project: the embedder (its model loads at the first
    batch, once per worker) and where the project is. Each batch opens its own read-only
    connection to the store, which sees every batch the driver has marked done (the
    content-hash cache), and closes it: no connection outlives its batch, so the driver's,
    closed last, merges the journal (a Ray actor is killed, not closed, when its pipeline ends)."""

    def __init__(self, folder: str, embedder: Any) -> None:
        self.folder = folder
        self.embedder = embedder

    def open(self) -> "Project":
        return Project(Path(self.folder), Store(self.folder, live=True))


@dataclass(frozen=True)
class _EmbedDone:
    """What a worker did with an :class:`_EmbedBatch`: its rows and their content hashes ("" for
    an item with nothing to embed), the batch's vectors (None when written to `part`), the
    errors by position, the dimension and how many items the model embedded."""

    rows: list[int]
    hashes: list[str]
    vectors: NDArray[np.float32] | None
    errors: dict[int, str]
    dim: int
    embedded: int
    part: str | None


def _embed_batch(worker: _EmbedWorker, batch: _EmbedBatch) -> _EmbedDone:
    """The per-batch function of both engines: read the batch's texts (or image paths) from the
    store, take the vectors the content-hash cache has, embed the rest, and return the batch's
    vectors or write them (rows without an error) to the batch's Parquet part, renamed into
    place."""
    rows = batch.rows()
    with worker.open() as project:
        kind = project.meta["kind"]
        items = project.store.contents(rows)
        hashes = [_content_hash(kind, c) for c in items]
        known_by_hash = project._vectors_by_hash([h for h in hashes if h])
    todo = [i for i, h in enumerate(hashes) if h and h not in known_by_hash]
    known = {i: known_by_hash[h] for i, h in enumerate(hashes) if h in known_by_hash}
    errors = {i: "missing file" if kind == "image" else "empty item" for i, h in enumerate(hashes) if not h}
    vecs = None
    if todo:
        vecs, errs = worker.embedder.embed([str(items[i]) for i in todo])
        errors.update({todo[j]: e for j, e in dict(errs).items()})
    dim = int(vecs.shape[1]) if vecs is not None else (len(next(iter(known.values()))) if known
                                                         else int(worker.embedder.dim))
    out = np.zeros((len(rows), dim), dtype=np.float32)
    if vecs is not None:
        out[todo] = vecs
    for i, v in known.items():
        if i not in errors:
            out[i] = v
    embedded = len(todo) - sum(1 for i in todo if i in errors)
    marks = [h or "" for h in hashes]
    if batch.part is None:
        return _EmbedDone(rows, marks, out, errors, dim, embedded, None)
    import pyarrow as pa

    keep = np.asarray([i for i in range(len(rows)) if i not in errors], dtype=np.int64)
    kept = out[keep] if len(keep) else np.zeros((0, dim), dtype=np.float32)
    table = pa.table({"row": pa.array(np.asarray(rows, dtype=np.int64)[keep] if len(keep) else [], pa.int64()),
                      "vector": pa.FixedSizeListArray.from_arrays(pa.array(kept.ravel(), pa.float32()), dim)})
    write_table_file(Path(batch.part), table)  # renamed into place, on disk before its rows are marked done
    return _EmbedDone(rows, marks, None, errors, dim, embedded, batch.part)


def _content_hash(kind: str, content: str | None) -> str | None:
    """sha256 of a text, or of an image file's bytes (None: nothing to embed)."""
    if content is None:
        return None
    if kind == "image":
        try:
            h = hashlib.sha256()
            with open(content, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest()
        except OSError:
            return None
    return hashlib.sha256(content.encode("utf-8")).hexdigest() if content.strip() else None


__all__ = ["Project", "EmbedReport", "MAX_TEXT_CHARS"]
