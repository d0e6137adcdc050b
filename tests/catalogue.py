"""The bad-input catalogue: every way a user's input or environment has gone wrong that we know
of, as one table of (command, input, expected exit code, a phrase the message must contain,
what must be unchanged afterwards), run through the real CLI entry point by
tests/test_bad_input.py.

Exit 2 cases: exactly one line on stderr (warnings aside), starting with ``error:``, holding the
phrase, no traceback, and every file of the working folder byte-for-byte as before.
Exit 0 cases (inputs that look wrong but have a right answer): the phrase appears in the
output, the case's check holds, and every file that existed before is unchanged except the
ones the case writes.

``python tests/catalogue.py`` runs every case and writes docs/bad-inputs.md: the table with the
message each input gets.
"""
from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).parent / "labelseed")


@dataclass
class Case:
    group: str
    name: str
    args: tuple[str, ...]  # "{d}" is the working folder
    phrase: str
    exit: int = 2
    setup: str | None = None  # a key of SETUPS, applied to the working folder first
    runner: str = "plain"  # plain | ro:<folder> (read-only) | full:<folder> (a 4 KiB disk)
    check: str | None = None  # exit 0: a key of CHECKS that must hold afterwards
    writes: tuple[str, ...] = ()  # exit 0: globs (relative to {d}) of files the case may create or change


# ----------------------------------------------------------------------------- the working folder


def _labels(path: Path, rows: list[tuple[object, object]], header: str = "id,label") -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(header + "\n")
        csv.writer(f).writerows(rows)


def cli(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, env=env)


def cli_ok(*args: str, cache: Path | None = None) -> None:
    """A set-up step through the CLI that must succeed (the case's own command is checked by run_case)."""
    r = cli(*args, cache=cache)
    if r.returncode != 0:
        raise RuntimeError(f"set-up step `labelseed {' '.join(args)}` failed: {r.stderr}")


def build_base(d: Path) -> Path:
    """Every input the cases use, made once (the cases run on copies)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d.mkdir(parents=True, exist_ok=True)
    cache = d.parent / f"{d.name}-cache"
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    X = (y[:, None] * 3 + rng.normal(size=(90, 8))).astype(np.float32)
    np.save(d / "X.npy", X)
    np.save(d / "X1.npy", (y[:, None] * 3 + rng.normal(size=(90, 1))).astype(np.float32))
    bad = X.copy()
    bad[5, 2] = np.nan
    np.save(d / "X_nan.npy", bad)
    bad = X.copy()
    bad[7, 0] = np.inf
    np.save(d / "X_inf.npy", bad)
    np.save(d / "X_1d.npy", X[:, 0])
    np.save(d / "X_3d.npy", X.reshape(90, 2, 4))
    np.save(d / "X_str.npy", X.astype(str))
    np.save(d / "X_obj.npy", X.astype(object), allow_pickle=True)
    np.save(d / "X_complex.npy", X.astype(np.complex64))
    np.save(d / "X_empty.npy", np.zeros((0, 8), dtype=np.float32))
    np.save(d / "X_zero.npy", np.zeros((90, 8), dtype=np.float32))
    np.save(d / "X_int.npy", np.rint(X * 10).astype(np.int64))
    np.save(d / "X_big.npy", (X.astype(np.float64) * 1e20).astype(np.float32))
    np.save(d / "X_f16.npy", X.astype(np.float16))
    (d / "X_fake.npy").write_bytes(b"not a numpy file" * 10)
    raw = (d / "X.npy").read_bytes()
    (d / "X_trunc.npy").write_bytes(raw[: len(raw) // 2])
    (d / "X.txt").write_text("1 2 3\n")
    Xnew = (np.repeat([0, 1, 2], 7)[:, None] * 3 + rng.normal(size=(21, 8))).astype(np.float32)
    np.save(d / "new.npy", Xnew)
    np.save(d / "new_dim.npy", Xnew[:, :7])
    bad = Xnew.copy()
    bad[4, 1] = np.nan
    np.save(d / "new_nan.npy", bad)
    new_ids = [f"n{k}" for k in range(21)]
    pq.write_table(pa.table({"id": new_ids, "vector": [x.tolist() for x in Xnew]}), d / "new.parquet")
    pq.write_table(pa.table({"id": ["n0", "7"] + new_ids[2:], "vector": [x.tolist() for x in Xnew]}),
                   d / "new_pool_id.parquet")
    pq.write_table(pa.table({"id": ["n0", "n0"] + new_ids[2:], "vector": [x.tolist() for x in Xnew]}),
                   d / "new_dup.parquet")
    ids = [f"i{k}" for k in range(90)]
    vec = [x.tolist() for x in X]
    pq.write_table(pa.table({"id": ids, "vector": vec}), d / "V.parquet")
    pq.write_table(pa.table({"id": ids, "emb": vec}), d / "V_nocol.parquet")
    pq.write_table(pa.table({"id": ids, "vector": [v[: 8 - (k % 2)] for k, v in enumerate(vec)]}), d / "V_ragged.parquet")
    pq.write_table(pa.table({"id": ids, "vector": [str(v) for v in vec]}), d / "V_str.parquet")
    pq.write_table(pa.table({"id": [None if k == 3 else i for k, i in enumerate(ids)], "vector": vec}),
                   d / "V_nullid.parquet")
    pq.write_table(pa.table({"id": ["i0" if k == 9 else i for k, i in enumerate(ids)], "vector": vec}),
                   d / "V_dupid.parquet")
    (d / "V_garbage.parquet").write_bytes(b"PAR1 but not really" * 20)
    _labels(d / "seed.csv", [(i, f"c{y[i]}") for i in range(0, 90, 5)])
    _labels(d / "seed_v.csv", [(f"i{i}", f"c{y[i]}") for i in range(0, 90, 5)])
    _labels(d / "truth.csv", [(i, f"c{y[i]}") for i in range(90)])
    _labels(d / "truth_one.csv", [(i, "c0") for i in range(90)])
    _labels(d / "truth_unknown.csv", [(i, f"c{y[i]}") for i in range(90)] + [(777, "c1")])
    (d / "latin.csv").write_bytes(("id,label\n" + "".join(f"{i},caf\xe9{y[i]}\n" for i in range(0, 90, 5)))
                                  .encode("latin-1"))
    (d / "utf16.csv").write_bytes(("id,label\n0,c0\n").encode("utf-16"))
    (d / "empty.csv").write_text("")
    (d / "header.csv").write_text("id,label\n")
    (d / "nolabel.csv").write_text("id,name\n0,c0\n")
    (d / "tabs.csv").write_text("id\tlabel\n0\tc0\n5\tc0\n")
    (d / "semicolons.csv").write_text("id;label\n" + "".join(f"{i};c{i % 2}\n" for i in range(10)))
    (d / "upper.csv").write_text("ID,Label\n" + "".join(f"{i},c{i % 2}\n" for i in range(10)))
    (d / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (d / "seed.csv").read_bytes())
    _labels(d / "unknown.csv", [(1000, "c0"), (1001, "c1")])
    _labels(d / "conflict.csv", [(0, "c0"), (0, "c1"), (45, "c1")])
    _labels(d / "one_class.csv", [(i, "c0") for i in range(0, 30, 3)])
    _labels(d / "one_each.csv", [(0, "c0"), (30, "c1"), (60, "c2")])
    _labels(d / "empty_id.csv", [("", "c0"), (5, "c0"), (35, "c1")])
    _labels(d / "all.csv", [(i, f"c{y[i]}") for i in range(90)])
    (d / "binary.csv").write_bytes(b"\x00\x01\x02id,label\x00\n")
    picks = "id,rank,strategy,reason,inclusion\n"
    (d / "picks_ok.csv").write_text(picks + "".join(f"{i},{k + 1},stratified,r,0.05\n"
                                                    for k, i in enumerate(range(0, 90, 5))))
    (d / "picks_bad_id.csv").write_text(picks + "0,1,stratified,r,0.05\n999,2,stratified,r,0.05\n")
    (d / "picks_no_inc.csv").write_text("id,rank,strategy,reason\n0,1,sampled,r\n5,2,sampled,r\n")
    (d / "picks_bad_inc.csv").write_text(picks + "0,1,sampled,r,1.5\n")
    (d / "picks_strategy.csv").write_text(picks + "0,1,mystery,r,\n")
    (d / "adir").mkdir()
    (d / "afile").write_text("a user's file\n")
    (d / "mine").mkdir()
    (d / "mine" / "notes.txt").write_text("a user's notes\n")
    (d / "rodir").mkdir()
    (d / "full").mkdir()
    (d / "pool.csv").write_text("id,text\n" + "".join(f"t{i},word{i % 3} thing {i}\n" for i in range(40)))
    (d / "pool_dupid.csv").write_text("id,text\nt1,a\nt1,b\nt2,c\n")
    (d / "pool_new.csv").write_text("id,text\n" + "".join(f"n{i},word{i % 3} thing {i}\n" for i in range(9)))
    (d / "pool_new_dupid.csv").write_text("id,text\nn1,a\nn1,b\n")
    (d / "pool_emptyid.csv").write_text("id,text\nt1,a\n,b\nt3,c\n")
    (d / "pool_emptytext.csv").write_text("id,text\nt1,a b\nt2,\nt3,c d\n")
    (d / "pool_header.csv").write_text("id,text\n")
    (d / "pool_notext.csv").write_text("id,body\nt1,a\n")
    (d / "pool_huge.csv").write_text("id,text\nt1,a b\nt2," + "word " * 2_100_000 + "\nt3,c d\n")
    (d / "pool.txt").write_text("id,text\nt1,a\n")
    (d / "pool_bad.parquet").write_bytes(b"not parquet" * 10)
    (d / "pool_vec.csv").write_text("id,text\n" + "".join(f"i{k},x\n" for k in range(90)))
    perm = rng.permutation(90)
    pq.write_table(pa.table({"id": [ids[k] for k in perm], "vector": [vec[k] for k in perm]}), d / "V_perm.parquet")
    (d / "imgs_empty").mkdir()
    (d / "t0.csv").write_text("id,label\nt0,a\nt1,b\nt2,a\nt3,b\n")
    (d / "t_new.csv").write_text("id,label\nt4,a\nt5,b\n")
    (d / "t_unknown.csv").write_text("id,label\nt0,a\nnope,b\n")
    (d / "t_conflict.csv").write_text("id,label\nt6,a\nt6,b\n")
    (d / "t_formula.csv").write_text("id,label\n" + "".join(f"t{i},{'=cmd()' if i % 3 == 0 else 'x' + str(i % 3)}\n"
                                                             for i in range(0, 40, 2)))
    ls = {
        "ls_types.json": [{"data": {"item_id": 5}, "annotations": "x"}],
        "ls_string_choice.json": [{"data": {"item_id": "t5"}, "annotations": [{"result": [{"value": {"choices": "dog"}}]}]}],
        "ls_disagree.json": [{"data": {"item_id": "t6"}, "annotations": [
            {"result": [{"value": {"choices": ["a"]}}]}, {"result": [{"value": {"choices": ["b"]}}]}]}],
        "ls_item.json": [{"data": {"item_id": {"x": 1}}}],
        "ls_spans.json": [{"data": {"item_id": "t7"}, "annotations": [
            {"result": [{"type": "labels", "value": {"start": 0, "end": 4, "labels": ["a"]}}]}]}],
        "ls_object.json": {"data": {"item_id": "t5"}},
        "ls_unknown.json": [{"data": {"item_id": "zzz"}, "annotations": [{"result": [{"value": {"choices": ["a"]}}]}]}],
        "ls_noid.json": [{"data": {"text": "hello"}, "annotations": [{"result": [{"value": {"choices": ["a"]}}]}]}],
        "ls_none.json": [{"data": {"item_id": "t8"}, "annotations": []}],
    }
    for name, body in ls.items():
        (d / name).write_text(json.dumps(body))
    (d / "ls_broken.json").write_text('[{"data": {"item_id": "t5"}, ')
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    steps = [
        ("init", f"{d}/proj", "--data", f"{d}/pool.csv", "--text-column", "text"),
        ("embed", f"{d}/proj", "--model", "hashing", "--quiet"),
        ("import", f"{d}/proj", f"{d}/t0.csv"),
        ("init", f"{d}/projraw", "--data", f"{d}/pool.csv", "--text-column", "text"),
        ("init", f"{d}/projfit", "--data", f"{d}/pool.csv", "--text-column", "text"),
        ("embed", f"{d}/projfit", "--model", "hashing", "--quiet"),
        ("import", f"{d}/projfit", f"{d}/t_formula.csv"),
        ("fit", f"{d}/projfit", "--target-precision", "0.6", "--quiet"),
        ("apply", f"{d}/projfit"),
        ("init", f"{d}/projnorun", "--data", f"{d}/pool.csv", "--text-column", "text"),
        ("embed", f"{d}/projnorun", "--model", "hashing", "--quiet"),
        ("autolabel", "--embeddings", f"{d}/X.npy", "--labels", f"{d}/seed.csv", "--out", f"{d}/run", "--quiet",
         "--target-precision", "0.8"),
    ]
    for step in steps:
        cli_ok(*step, cache=cache)
    os.symlink(d / "nowhere", d / "dangling")
    return d


# ----------------------------------------------------------------------------- setups and checks


def _damage(rel: str, how: str) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        path = d / rel
        if how == "delete":
            path.unlink()
        elif how == "other-dim":
            n = np.load(path, mmap_mode="r").shape[0]
            np.save(path, np.ones((n, 7), dtype=np.float32))
        elif how == "zero":
            n, dim = np.load(path, mmap_mode="r").shape
            np.save(path, np.zeros((n, dim), dtype=np.float32))
        elif how == "rows":
            X = np.load(path)
            np.save(path, X[:-3])
        else:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2] if how == "truncate" else b"" if how == "empty"
                             else b"garbage" * 700)
        for side in ("-wal", "-shm"):  # a damaged database has no journal of its own
            Path(str(path) + side).unlink(missing_ok=True)
    return apply


def _stale(d: Path) -> None:
    cli_ok("import", str(d / "projfit"), str(d / "t_new.csv"))


def _audit_drawn(d: Path) -> None:
    cli_ok("audit", "--run", str(d / "run"), "--budget", "4", "--out", str(d / "aud.csv"))


def _audit_measured(d: Path) -> None:
    _audit_drawn(d)
    predicted = {r["id"]: r["label"] for r in _read_csv(d / "run" / "auto_labels.csv")}
    _labels(d / "ver.csv", [(r["id"], predicted[r["id"]]) for r in _read_csv(d / "aud.csv")])
    cli_ok("audit", "--run", str(d / "run"), "--verified", str(d / "ver.csv"))


def _labeler_other_version(d: Path) -> None:
    path = d / "run" / "labeler.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["format"] = np.array(99)
    np.savez(path, **arrays)


def _added(d: Path) -> None:
    cli_ok("add", str(d / "projfit"), "--data", str(d / "pool_new.csv"))


def _added_embedded(d: Path) -> None:
    _added(d)
    cli_ok("embed", str(d / "projfit"), "--model", "hashing", "--quiet")


def _added_no_labeler(d: Path) -> None:
    _added_embedded(d)
    for p in (d / "projfit" / "runs").glob("*/labeler.npz"):
        p.unlink()


SETUPS: dict[str, Callable[[Path], None]] = {
    "items added": _added,
    "items added and embedded": _added_embedded,
    "items added, run without labeler": _added_no_labeler,
    "labeler other version": _labeler_other_version,
    "labeler deleted": _damage("run/labeler.npz", "delete"),
    "labeler garbage": _damage("run/labeler.npz", "garbage"),
    "index garbage": _damage("run/index.faiss", "garbage"),
    "index truncated": _damage("run/index.faiss", "truncate"),
    "db garbage": _damage("proj/labelseed.db", "garbage"),
    "db empty": _damage("proj/labelseed.db", "empty"),
    "db truncated": _damage("proj/labelseed.db", "truncate"),
    "embeddings truncated": _damage("proj/embeddings.npy", "truncate"),
    "embeddings other dim": _damage("proj/embeddings.npy", "other-dim"),
    "embeddings deleted": _damage("proj/embeddings.npy", "delete"),
    "embeddings zeroed": _damage("proj/embeddings.npy", "zero"),
    "embeddings fewer rows": _damage("proj/embeddings.npy", "rows"),
    "report data truncated": _damage("run/report_data.npz", "truncate"),
    "summary garbage": _damage("run/summary.json", "garbage"),
    "decisions deleted": _damage("run/decisions.npz", "delete"),
    "decisions garbage": _damage("run/decisions.npz", "garbage"),
    "run decisions deleted": lambda d: [p.unlink() for p in (d / "projfit" / "runs").glob("*/decisions.npz")] and None,
    "labels changed after fit": _stale,
    "audit drawn": _audit_drawn,
    "audit measured": _audit_measured,
}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _check_aligned_by_id(d: Path) -> None:
    import pyarrow.parquet as pq

    t = pq.read_table(d / "V.parquet")
    want = np.asarray(t.column("vector").to_pylist(), dtype=np.float32)
    np.testing.assert_array_equal(np.load(d / "pv" / "embeddings.npy"), want)  # item i0 has i0's vector


def _check_huge_like_small(d: Path) -> None:
    big = json.loads((d / "o" / "summary.json").read_text())["n_auto"]
    small = json.loads((d / "run" / "summary.json").read_text())["n_auto"]
    if not (small > 0 and big == small):
        raise AssertionError(f"1e20-scaled vectors gave {big} auto-labels, the same vectors {small}")


def _check_formula_neutralised(d: Path) -> None:
    raw = list(csv.reader(open(d / "l.csv", newline="", encoding="utf-8")))[1:]
    cells = {row[1] for row in raw}
    if "=cmd()" in cells or "'=cmd()" not in cells:
        raise AssertionError(f"formula label written raw: {sorted(cells)[:5]}")


def _check_output(name: str) -> Callable[[Path], None]:
    def check(d: Path) -> None:
        if not (d / name).exists():
            raise AssertionError(f"{name} was not written")
    return check


def _check_truncated(d: Path) -> None:
    import sqlite3

    with sqlite3.connect(d / "ph" / "labelseed.db") as db:
        longest = db.execute("SELECT MAX(LENGTH(content)) FROM items").fetchone()[0]
    if longest > 100_000:
        raise AssertionError(f"a text of {longest} characters was kept")


def _check_bom_same_as_plain(d: Path) -> None:
    if (d / "o" / "auto_labels.csv").read_text() != (d / "run" / "auto_labels.csv").read_text():
        raise AssertionError("a UTF-8 BOM changed the labels")


def _check_all_seed(d: Path) -> None:
    rows = _read_csv(d / "o" / "auto_labels.csv")
    if len(rows) != 90 or {r["source"] for r in rows} != {"seed"}:
        raise AssertionError("a fully labeled pool should come back as its labels")


def _check_all_abstain(d: Path) -> None:
    s = json.loads((d / "o" / "summary.json").read_text())
    if s["n_auto"] != 0:
        raise AssertionError(f"single class: {s['n_auto']} auto-labels, expected none")


def _check_drawn_calibrate(d: Path) -> None:
    e = json.loads((d / "o" / "summary.json").read_text())["estimate"]
    if e["calibrated_by"]["sampled"] != 18 or e["labels"]["sampled"] != 18 or not e["trusted"]:
        raise AssertionError(f"drawn labels: {e['labels']}, calibrated by {e['calibrated_by']}")


def _check_new_labeled(d: Path) -> None:
    rows = _read_csv(d / "new_labels.csv")
    assert [r["id"] for r in rows] == [str(k) for k in range(21)], "every new item once, in order"
    assert {r["source"] for r in rows} <= {"auto", "abstain"}
    assert all((r["label"] == "") == (r["source"] == "abstain") for r in rows)
    assert not list(d.glob(".new_labels.csv.parts")), "no parts folder left behind"


CHECKS: dict[str, Callable[[Path], None]] = {
    "aligned by id": _check_aligned_by_id,
    "huge like small": _check_huge_like_small,
    "formula neutralised": _check_formula_neutralised,
    "run written": _check_output("o/summary.json"),
    "labels written": _check_output("l.csv"),
    "report written": _check_output("r/report.html"),
    "texts truncated": _check_truncated,
    "bom same as plain": _check_bom_same_as_plain,
    "all seed": _check_all_seed,
    "all abstain": _check_all_abstain,
    "drawn labels calibrate": _check_drawn_calibrate,
    "embeddings rebuilt": _check_output("proj/embeddings.npy"),
    "new items labeled": _check_new_labeled,
}


# ----------------------------------------------------------------------------- the cases


def _al(emb: str = "{d}/X.npy", labels: str = "{d}/seed.csv", *extra: str, out: str = "{d}/o") -> tuple[str, ...]:
    return ("autolabel", "--embeddings", emb, "--labels", labels, "--out", out, "--quiet", *extra)


def _lb(emb: str = "{d}/new.npy", *extra: str, out: str = "{d}/nl.csv", run: str = "{d}/run") -> tuple[str, ...]:
    return ("label", "--run", run, "--embeddings", emb, "--out", out, *extra)


def _sel(emb: str = "{d}/X.npy", *extra: str, out: str = "{d}/s.csv") -> tuple[str, ...]:
    return ("select", "--embeddings", emb, "--budget", "3", "--out", out, *extra)


def _q(emb: str = "{d}/X.npy", labels: str = "{d}/seed.csv", *extra: str, out: str = "{d}/q.csv") -> tuple[str, ...]:
    return ("query", "--embeddings", emb, "--labels", labels, "--budget", "3", "--out", out, *extra)


def _sim(*extra: str, truth: str = "{d}/truth.csv", budget: str = "30") -> tuple[str, ...]:
    return ("simulate", "--embeddings", "{d}/X.npy", "--truth", truth, "--budget", budget, "--out", "{d}/sim",
            "--quiet", *extra)


C = Case
CASES: list[Case] = [
    # --- --force and outputs: never over an input, the store, or a folder labelseed did not write
    C("outputs", "autolabel --out is the folder holding its inputs (--force)", _al(out="{d}") + ("--force",),
      "contains the input"),
    C("outputs", "autolabel --out is the embeddings file (--force)", _al(out="{d}/X.npy") + ("--force",), "is the input"),
    C("outputs", "autolabel --out is the labels file (--force)", _al(out="{d}/seed.csv") + ("--force",), "is the input"),
    C("outputs", "autolabel --out is a user's folder (--force)", _al(out="{d}/mine") + ("--force",), "did not write"),
    C("outputs", "autolabel --out exists, no --force", _al(out="{d}/run"), "--force"),
    C("outputs", "autolabel --out is a project folder (--force)", _al(out="{d}/proj") + ("--force",), "project"),
    C("outputs", "export --out is the project database (--force)",
      ("export", "{d}/proj", "--items", "all", "--out", "{d}/proj/labelseed.db", "--force"), "store"),
    C("outputs", "export --out is the project's embeddings (--force)",
      ("export", "{d}/proj", "--items", "all", "--out", "{d}/proj/embeddings.npy", "--force"), "store"),
    C("outputs", "export --out with a suffix it cannot write (.xml)",
      ("export", "{d}/proj", "--items", "all", "--out", "{d}/items.xml"), "'.xml'"),
    C("outputs", "export --labels-history --out .txt",
      ("export", "{d}/proj", "--labels-history", "--out", "{d}/h.txt"), "'.txt'"),
    C("outputs", "export --out exists, no --force", ("export", "{d}/proj", "--items", "all", "--out", "{d}/afile"),
      "--force"),
    C("outputs", "select --out is its own --labels file (--force)",
      _sel("{d}/X.npy", "--labels", "{d}/seed.csv", out="{d}/seed.csv") + ("--force",), "is the input"),
    C("outputs", "select --out is the embeddings (--force)", _sel(out="{d}/X.npy") + ("--force",), "is the input"),
    C("outputs", "select --out exists, no --force", _sel(out="{d}/afile"), "--force"),
    C("outputs", "query --out is its --labels file (--force)", _q(out="{d}/seed.csv") + ("--force",), "is the input"),
    C("outputs", "apply --out is the project database (--force)",
      ("apply", "{d}/projfit", "--out", "{d}/projfit/labelseed.db", "--force"), "store"),
    C("outputs", "apply --out with a suffix it cannot write (.xlsx)", ("apply", "{d}/projfit", "--out", "{d}/l.xlsx"),
      ".csv or .parquet"),
    C("outputs", "apply --out exists, no --force", ("apply", "{d}/projfit", "--out", "{d}/afile"), "--force"),
    C("outputs", "report --out is a user's folder (--force)", ("report", "--run", "{d}/run", "--out", "{d}/mine",
                                                              "--force"), "did not write"),
    C("outputs", "report --out is the run it reports on (--force)",
      ("report", "--run", "{d}/run", "--out", "{d}/run", "--force"), "is the input"),
    C("outputs", "simulate --out is the folder of its inputs (--force)",
      ("simulate", "--embeddings", "{d}/X.npy", "--truth", "{d}/truth.csv", "--budget", "30", "--out", "{d}",
       "--force"), "input"),
    C("outputs", "simulate --out is the truth file (--force)",
      ("simulate", "--embeddings", "{d}/X.npy", "--truth", "{d}/truth.csv", "--budget", "30", "--out",
       "{d}/truth.csv", "--force"), "is the input"),
    C("outputs", "run --out is the project database (--force)",
      ("run", "{d}/proj", "--out", "{d}/proj/labelseed.db", "--force"), "store"),
    C("outputs", "audit --out is the run folder (--force)",
      ("audit", "--run", "{d}/run", "--budget", "3", "--out", "{d}/run", "--force"), "is the input"),
    C("outputs", "audit --verified: audit.json exists, no --force",
      ("audit", "--run", "{d}/run", "--verified", "{d}/ver.csv"), "--force", setup="audit measured"),
    # --- paths that cannot be written
    C("unwritable", "autolabel --out under a file", _al(out="{d}/afile/o"), "is a file, not a folder"),
    C("unwritable", "select --out under a file", _sel(out="{d}/afile/s.csv"), "is a file, not a folder"),
    C("unwritable", "query --out under a file", _q(out="{d}/afile/q.csv"), "is a file, not a folder"),
    C("unwritable", "apply --out under a file", ("apply", "{d}/projfit", "--out", "{d}/afile/l.csv"),
      "is a file, not a folder"),
    C("unwritable", "report --out under a file", ("report", "--run", "{d}/run", "--out", "{d}/afile/r"),
      "is a file, not a folder"),
    C("unwritable", "init into a path under a file", ("init", "{d}/afile/p", "--data", "{d}/pool.csv",
                                                      "--text-column", "text"), "is a file"),
    C("unwritable", "export --out under a file", ("export", "{d}/proj", "--items", "all", "--out", "{d}/afile/x.csv"),
      "is a file, not a folder"),
    C("unwritable", "simulate --out under a file",
      ("simulate", "--embeddings", "{d}/X.npy", "--truth", "{d}/truth.csv", "--budget", "30", "--out",
       "{d}/afile/sim"), "is a file, not a folder"),
    C("unwritable", "autolabel --out a dangling symlink", _al(out="{d}/dangling"), "--force"),
    C("unwritable", "select --out a dangling symlink", _sel(out="{d}/dangling"), "--force"),
    C("unwritable", "apply --out a dangling symlink", ("apply", "{d}/projfit", "--out", "{d}/dangling"), "--force"),
    C("unwritable", "report --out a dangling symlink", ("report", "--run", "{d}/run", "--out", "{d}/dangling"),
      "--force"),
    C("unwritable", "init into a dangling symlink", ("init", "{d}/dangling", "--data", "{d}/pool.csv",
                                                     "--text-column", "text"), "dangling"),
    C("unwritable", "autolabel --out in a read-only folder", _al(out="{d}/rodir/o"), "not writable", runner="ro:rodir"),
    C("unwritable", "select --out in a read-only folder", _sel(out="{d}/rodir/s.csv"), "not writable",
      runner="ro:rodir"),
    C("unwritable", "apply --out in a read-only folder", ("apply", "{d}/projfit", "--out", "{d}/rodir/l.csv"),
      "not writable", runner="ro:rodir"),
    C("unwritable", "report --out in a read-only folder", ("report", "--run", "{d}/run", "--out", "{d}/rodir/r"),
      "not writable", runner="ro:rodir"),
    C("unwritable", "init in a read-only folder", ("init", "{d}/rodir/p", "--data", "{d}/pool.csv", "--text-column",
                                                   "text"), "not writable", runner="ro:rodir"),
    C("unwritable", "autolabel on a full disk", _al(out="{d}/full/o"), "No space left", runner="full:full"),
    C("unwritable", "select on a full disk", _sel(out="{d}/full/s.csv"), "No space left", runner="full:full"),
    C("unwritable", "report on a full disk", ("report", "--run", "{d}/run", "--out", "{d}/full/r"), "No space left",
      runner="full:full"),
    C("unwritable", "an unwritable --cache-dir is only a warning", _al("{d}/X.npy", "{d}/seed.csv",
                                                                       "--cache-dir", "{d}/afile/c"),
      "could not cache", exit=0, check="run written", writes=("o/*",)),
    # --- embeddings files (file mode)
    C("embeddings", "--embeddings missing", _al("{d}/nope.npy"), "does not exist"),
    C("embeddings", "--embeddings is a folder", _al("{d}/adir"), ".npy or .parquet"),
    C("embeddings", "--embeddings of an unknown type (.txt)", _al("{d}/X.txt"), ".npy"),
    C("embeddings", "--embeddings not a .npy file inside", _al("{d}/X_fake.npy"), "lacks the .npy header); save the array with numpy.save"),
    C("embeddings", "--embeddings truncated", _al("{d}/X_trunc.npy"), "truncated"),
    C("embeddings", "--embeddings with NaN", _al("{d}/X_nan.npy"), "NaN"),
    C("embeddings", "--embeddings with inf", _al("{d}/X_inf.npy"), "inf"),
    C("embeddings", "--embeddings 1-D", _al("{d}/X_1d.npy"), "2-D"),
    C("embeddings", "--embeddings 3-D", _al("{d}/X_3d.npy"), "2-D"),
    C("embeddings", "--embeddings of strings", _al("{d}/X_str.npy"), "not numbers"),
    C("embeddings", "--embeddings pickled objects", _al("{d}/X_obj.npy"), "holds Python objects, not numbers; save a float array"),
    C("embeddings", "--embeddings complex", _al("{d}/X_complex.npy"), "complex numbers"),
    C("embeddings", "--embeddings with no rows", _al("{d}/X_empty.npy"), "holds no rows"),
    C("embeddings", "--embeddings all zero", _al("{d}/X_zero.npy"), "zero"),
    C("embeddings", "--embeddings near 1e20 label like their scaled-down selves",
      _al("{d}/X_big.npy", "{d}/seed.csv", "--target-precision", "0.8"), "", exit=0, check="huge like small",
      writes=("o/*",)),
    C("embeddings", "--embeddings of integers are used as numbers", _al("{d}/X_int.npy", "{d}/seed.csv",
                                                                        "--target-precision", "0.8"),
      "", exit=0, check="run written", writes=("o/*",)),
    C("embeddings", "--embeddings float16 are used", _al("{d}/X_f16.npy", "{d}/seed.csv", "--target-precision", "0.8"),
      "", exit=0, check="run written", writes=("o/*",)),
    C("embeddings", "1-column vectors, then a report", ("report", "--run", "{d}/o", "--out", "{d}/r"), "", exit=0,
      setup="one-column run", check="report written", writes=("o/*", "r/*")),
    C("embeddings", "parquet whose one vector column has another name: it is used",
      _al("{d}/V_nocol.parquet", "{d}/seed_v.csv", "--target-precision", "0.8"), "", exit=0, check="run written",
      writes=("o/*",)),
    C("embeddings", "parquet with vectors of different lengths", _al("{d}/V_ragged.parquet", "{d}/seed_v.csv"),
      "length"),
    C("embeddings", "parquet with vectors as strings", _al("{d}/V_str.parquet", "{d}/seed_v.csv"), "vector"),
    C("embeddings", "parquet with a null id", _al("{d}/V_nullid.parquet", "{d}/seed_v.csv"), "no id"),
    C("embeddings", "parquet with a duplicate id", _al("{d}/V_dupid.parquet", "{d}/seed_v.csv"), "twice"),
    C("embeddings", "parquet that is not parquet", _al("{d}/V_garbage.parquet", "{d}/seed_v.csv"), "V_garbage"),
    C("embeddings", "--id-column that is not there", _al("{d}/V.parquet", "{d}/seed_v.csv", "--id-column", "key"),
      "key"),
    C("embeddings", "--vector-column that is not there",
      _al("{d}/V.parquet", "{d}/seed_v.csv", "--vector-column", "emb"), "emb"),
    # --- labels files (file mode)
    C("labels", "--labels missing", _al("{d}/X.npy", "{d}/nope.csv"), "does not exist"),
    C("labels", "--labels is a folder", _al("{d}/X.npy", "{d}/adir"), "is a folder"),
    C("labels", "--labels Latin-1 (autolabel)", _al("{d}/X.npy", "{d}/latin.csv"), "not UTF-8"),
    C("labels", "--labels Latin-1 (query)", _q("{d}/X.npy", "{d}/latin.csv"), "not UTF-8"),
    C("labels", "--labels Latin-1 (select)", _sel("{d}/X.npy", "--labels", "{d}/latin.csv"), "not UTF-8"),
    C("labels", "--labels UTF-16", _al("{d}/X.npy", "{d}/utf16.csv"), "not UTF-8"),
    C("labels", "--labels binary", _al("{d}/X.npy", "{d}/binary.csv"), "binary.csv"),
    C("labels", "--labels empty file", _al("{d}/X.npy", "{d}/empty.csv"), "lacks column"),
    C("labels", "--labels header only", _al("{d}/X.npy", "{d}/header.csv"), "no labeled rows"),
    C("labels", "--labels without a label column", _al("{d}/X.npy", "{d}/nolabel.csv"), "lacks column"),
    C("labels", "--labels tab-separated", _al("{d}/X.npy", "{d}/tabs.csv"), "separated by tabs; save the file comma"),
    C("labels", "--labels separated by semicolons", _al("{d}/X.npy", "{d}/semicolons.csv"),
      "separated by semicolons; save the file comma-separated"),
    C("labels", "--labels with a header in capitals", _al("{d}/X.npy", "{d}/upper.csv"),
      "rename 'ID' -> 'id', 'Label' -> 'label'"),
    C("labels", "--labels with ids not in the pool", _al("{d}/X.npy", "{d}/unknown.csv"), "not in the pool"),
    C("labels", "--labels with one id labeled twice differently", _al("{d}/X.npy", "{d}/conflict.csv"), "twice"),
    C("labels", "--labels with an empty id", _al("{d}/X.npy", "{d}/empty_id.csv"), "the id is empty"),
    C("labels", "--labels with one class", _al("{d}/X.npy", "{d}/one_class.csv"), "--allow-single-class"),
    C("labels", "--labels with one class, allowed: everything abstains",
      _al("{d}/X.npy", "{d}/one_class.csv", "--allow-single-class"), "", exit=0, check="all abstain",
      writes=("o/*",)),
    C("labels", "--labels with one label per class", _al("{d}/X.npy", "{d}/one_each.csv"), "fewer labeled rows"),
    C("labels", "--labels covering every row", _al("{d}/X.npy", "{d}/all.csv"), "nothing to auto-label"),
    C("labels", "--labels with a UTF-8 BOM read like without", _al("{d}/X.npy", "{d}/bom.csv", "--target-precision",
                                                                    "0.8"), "", exit=0, check="bom same as plain",
      writes=("o/*",)),
    C("labels", "--labels of a .npy pool with string ids", _al("{d}/X.npy", "{d}/seed_v.csv"), "not in the pool"),
    C("labels", "--picks with an id not in the pool", _al("{d}/X.npy", "{d}/seed.csv", "--picks",
                                                            "{d}/picks_bad_id.csv"), "is not in the pool"),
    C("labels", "--picks: a drawn row without its inclusion", _q("{d}/X.npy", "{d}/seed.csv", "--picks",
                                                                  "{d}/picks_no_inc.csv"), "has no inclusion"),
    C("labels", "--picks: an inclusion that is no probability", _al("{d}/X.npy", "{d}/seed.csv", "--picks",
                                                                     "{d}/picks_bad_inc.csv"), "(0, 1]"),
    C("labels", "--picks: a strategy labelseed does not write", _al("{d}/X.npy", "{d}/seed.csv", "--picks",
                                                                     "{d}/picks_strategy.csv"), "does not write"),
    C("labels", "--picks: the same file twice", _al("{d}/X.npy", "{d}/seed.csv", "--picks", "{d}/picks_ok.csv",
                                                     "{d}/picks_ok.csv"), "listed in both"),
    C("labels", "--picks is a labels file (no strategy column)", _al("{d}/X.npy", "{d}/seed.csv", "--picks",
                                                                      "{d}/seed.csv"), "lacks column(s) strategy"),
    C("labels", "--picks: drawn labels calibrate, weighted", _al("{d}/X.npy", "{d}/seed.csv", "--picks",
                                                                  "{d}/picks_ok.csv", "--target-precision", "0.8"),
      "", exit=0, check="drawn labels calibrate", writes=("o/*",)),
    C("options", "query --picks in a project", ("query", "{d}/projfit", "--budget", "3", "--picks",
                                                  "{d}/picks_ok.csv"), "drop --picks"),
    # --- engine options
    C("options", "--target-precision 1.5", _al("{d}/X.npy", "{d}/seed.csv", "--target-precision", "1.5"),
      "`target_precision` must be in (0, 1]"),
    C("options", "--target-precision 0", _al("{d}/X.npy", "{d}/seed.csv", "--target-precision", "0"),
      "`target_precision` must be in (0, 1]"),
    C("options", "--target-precision nan", _al("{d}/X.npy", "{d}/seed.csv", "--target-precision", "nan"),
      "`target_precision` must be a number in (0, 1]"),
    C("options", "--target-precision -1 (fit)", ("fit", "{d}/proj", "--target-precision", "-1", "--quiet"),
      "`target_precision` must be in (0, 1]"),
    C("options", "--n-neighbors 0", _al("{d}/X.npy", "{d}/seed.csv", "--n-neighbors", "0"), "`n_neighbors`"),
    C("options", "--n-neighbors -3 (fit)", ("fit", "{d}/proj", "--n-neighbors", "-3", "--quiet"), "`n_neighbors`"),
    C("options", "--n-neighbors larger than the pool: every other row is a neighbour",
      _al("{d}/X.npy", "{d}/seed.csv", "--n-neighbors", "500", "--target-precision", "0.8"), "", exit=0,
      check="run written", writes=("o/*",)),
    C("options", "--alpha 1", _al("{d}/X.npy", "{d}/seed.csv", "--alpha", "1"), "`alpha`"),
    C("options", "--alpha -0.5", _al("{d}/X.npy", "{d}/seed.csv", "--alpha", "-0.5"), "`alpha`"),
    C("options", "--folds 1", _al("{d}/X.npy", "{d}/seed.csv", "--folds", "1"), "`n_splits`"),
    C("options", "--min-support -1", _al("{d}/X.npy", "{d}/seed.csv", "--min-support", "-1"), "`min_support`"),
    C("options", "--confidence-level 1.2", _al("{d}/X.npy", "{d}/seed.csv", "--confidence-level", "1.2"),
      "`confidence_level`"),
    C("options", "--graph-space pca", _al("{d}/X.npy", "{d}/seed.csv", "--graph-space", "pca"), "--graph-space"),
    C("options", "--graph-space auto with --fast", _al("{d}/X.npy", "{d}/seed.csv", "--graph-space", "auto",
                                                       "--fast"), "graph_space='auto'"),
    C("options", "--graph-space auto with --fast (fit)", ("fit", "{d}/proj", "--graph-space", "auto", "--fast",
                                                          "--quiet"), "graph_space='auto'"),
    C("options", "--graph-space whitened on a small pool: the map still has full rank",
      _al("{d}/X.npy", "{d}/seed.csv", "--graph-space", "whitened", "--target-precision", "0.8"), "", exit=0,
      check="run written", writes=("o/*",)),
    C("options", "--metric auc", _al("{d}/X.npy", "{d}/seed.csv", "--metric", "auc"), "`metric` must be one of"),
    C("options", "--metric f-1", _al("{d}/X.npy", "{d}/seed.csv", "--metric", "f-1"), "`metric`"),
    C("options", "--random-seed -1", _al("{d}/X.npy", "{d}/seed.csv", "--random-seed", "-1"),
      "--random-seed must be"),
    C("options", "--seed 2**40 (the older spelling)", _al("{d}/X.npy", "{d}/seed.csv", "--seed", str(2**40)),
      "--random-seed must be"),
    C("options", "select --budget 0", ("select", "--embeddings", "{d}/X.npy", "--budget", "0", "--out", "{d}/s.csv"), "at least 1"),
    C("options", "select --budget -5", ("select", "--embeddings", "{d}/X.npy", "--budget", "-5", "--out", "{d}/s.csv"), "at least 1"),
    C("options", "select --budget above the pool", ("select", "--embeddings", "{d}/X.npy", "--budget", "1000", "--out", "{d}/s.csv"), "only"),
    C("options", "select --strategy unknown", _sel("{d}/X.npy", "--strategy", "nope"), "strategy"),
    C("options", "query --strategy unknown", _q("{d}/X.npy", "{d}/seed.csv", "--strategy", "nope"), "strategy"),
    C("options", "query --run that is not a run", _q("{d}/X.npy", "{d}/seed.csv", "--run", "{d}/mine"),
      "summary.json"),
    C("options", "query --run in a project", ("query", "{d}/projfit", "--budget", "3", "--run", "{d}/run"),
      "drop --run"),
    C("options", "select with neither a project nor --embeddings", ("select", "--budget", "3"), "--embeddings"),
    C("options", "query without --labels", ("query", "--embeddings", "{d}/X.npy", "--budget", "3", "--out",
                                            "{d}/q.csv"), "--labels"),
    C("options", "audit with neither a project nor --run", ("audit", "--budget", "3"), "--run"),
    # --- audits (file mode)
    C("audit", "audit --run that does not exist", ("audit", "--run", "{d}/nope", "--budget", "3", "--out",
                                                   "{d}/a.csv"), "not a folder"),
    C("audit", "audit --run that is not a run", ("audit", "--run", "{d}/mine", "--budget", "3", "--out",
                                                 "{d}/a.csv"), "decisions.npz"),
    C("audit", "audit --run whose decisions were deleted", ("audit", "--run", "{d}/run", "--budget", "3", "--out",
                                                            "{d}/a.csv"), "decisions.npz", setup="decisions deleted"),
    C("audit", "audit --run whose decisions are garbage", ("audit", "--run", "{d}/run", "--budget", "3", "--out",
                                                           "{d}/a.csv"), "is damaged", setup="decisions garbage"),
    C("audit", "audit --budget above the auto-labels", ("audit", "--run", "{d}/run", "--budget", "5000", "--out",
                                                        "{d}/a.csv"), "only"),
    C("audit", "audit --budget 0", ("audit", "--run", "{d}/run", "--budget", "0", "--out", "{d}/a.csv"),
      "at least 1"),
    C("audit", "audit --verified with ids that are not auto-labels",
      ("audit", "--run", "{d}/run", "--verified", "{d}/truth_unknown.csv"), "not auto-labels"),
    C("audit", "audit --verified with no labeled row", ("audit", "--run", "{d}/run", "--verified", "{d}/header.csv"),
      "no labeled rows"),
    C("audit", "audit --verified Latin-1", ("audit", "--run", "{d}/run", "--verified", "{d}/latin.csv"), "not UTF-8"),
    C("audit", "audit in a project with --verified", ("audit", "{d}/projfit", "--verified", "{d}/t0.csv"), "import"),
    C("audit", "audit in a project without --budget", ("audit", "{d}/projfit"), "--budget"),
    C("audit", "audit of a project with no run", ("audit", "{d}/projnorun", "--budget", "3"), "no run yet"),
    # --- labeling new items against a run (issue 14)
    C("label", "label: new items as the run expects them", _lb("{d}/new.npy", "--quiet", out="{d}/new_labels.csv"),
      "", exit=0, check="new items labeled",
      writes=("new_labels.csv",)),
    C("label", "label: new items of another dimension", _lb("{d}/new_dim.npy"), "dimensions"),
    C("label", "label: a new item with NaN", _lb("{d}/new_nan.npy"), "NaN"),
    C("label", "label: a new id already in the run's pool", _lb("{d}/new_pool_id.parquet", out="{d}/nl.parquet"),
      "already in the run's pool"),
    C("label", "label: the same new id twice", _lb("{d}/new_dup.parquet", out="{d}/nl.parquet"), "twice"),
    C("label", "label: a run from another labelseed version", _lb(),
      "another labelseed version", setup="labeler other version"),
    C("label", "label: a run without a labeler (older version)", _lb(), "fit the run again", setup="labeler deleted"),
    C("label", "label: a damaged labeler", _lb(), "is damaged", setup="labeler garbage"),
    C("label", "label: a damaged index", _lb(), "is damaged", setup="index garbage"),
    C("label", "label: a truncated index", _lb(), "is damaged", setup="index truncated"),
    C("label", "label: --run is not a run", _lb(run="{d}/mine"), "summary.json"),
    C("label", "label: --run does not exist", _lb(run="{d}/nope"), "not a folder"),
    C("label", "label: --out neither .parquet nor .csv", _lb(out="{d}/nl.txt"), ".parquet or .csv"),
    C("label", "label: --out exists, no --force", _lb(out="{d}/seed.csv"), "--force"),
    C("label", "label: --out is the new items' file (--force)",
      _lb("{d}/new.parquet", "--force", out="{d}/new.parquet"),
      "is the input"),
    C("label", "label: --chunk-rows 0", _lb("{d}/new.npy", "--chunk-rows", "0"), "at least 1"),
    C("label", "label: --workers 0", _lb("{d}/new.npy", "--workers", "0"), "--workers must be at least 1"),
    C("label", "label: --engine that does not exist", _lb("{d}/new.npy", "--engine", "spark"), "--engine"),
    C("label", "label: new items file missing", _lb("{d}/none.npy"), "does not exist"),
    C("label", "label: new items file garbage", _lb("{d}/V_garbage.parquet"), "not a readable Parquet"),
    # --- adding items to a project after a fit, and labeling them (issue 14)
    C("add", "add: new items", ("add", "{d}/projfit", "--data", "{d}/pool_new.csv"), "added 9 items", exit=0,
      writes=("projfit/labelseed.db*", "projfit/embeddings.npy")),
    C("add", "add: ids already in the project", ("add", "{d}/projfit", "--data", "{d}/pool.csv"),
      "already in the project"),
    C("add", "add: the same new id twice", ("add", "{d}/projfit", "--data", "{d}/pool_new_dupid.csv"), "duplicate id"),
    C("add", "add: an empty text", ("add", "{d}/projfit", "--data", "{d}/pool_emptytext.csv"), "empty text"),
    C("add", "add: no text column", ("add", "{d}/projfit", "--data", "{d}/pool_notext.csv"), "text"),
    C("add", "add: the data file does not exist", ("add", "{d}/projfit", "--data", "{d}/none.csv"), "does not exist"),
    C("add", "add: no --data", ("add", "{d}/projfit"), "--data"),
    C("add", "add: not a project", ("add", "{d}/mine", "--data", "{d}/pool_new.csv"), "not a labelseed project"),
    C("add", "apply --new with nothing added", ("apply", "{d}/projfit", "--new"), "No item was added"),
    C("add", "apply --new before the added items are embedded", ("apply", "{d}/projfit", "--new"),
      "not embedded yet", setup="items added"),
    C("add", "apply --new with a run from an older version", ("apply", "{d}/projfit", "--new"), "fit the run again",
      setup="items added, run without labeler"),
    # --- reports
    C("report", "report --run that does not exist", ("report", "--run", "{d}/nope"), "summary.json"),
    C("report", "report --run that is not a run", ("report", "--run", "{d}/mine"), "summary.json"),
    C("serve", "serve on a port above 65535", ("serve", "{d}/proj", "--port", "99999"), "in 0..65535"),
    C("serve", "serve on a negative port", ("serve", "{d}/proj", "--port", "-1"), "in 0..65535"),
    C("report", "report with truncated report data", ("report", "--run", "{d}/run"), "is damaged",
      setup="report data truncated"),
    C("report", "report with a garbage summary.json", ("report", "--run", "{d}/run"), "is damaged",
      setup="summary garbage"),
    C("report", "report --project with no run", ("report", "--project", "{d}/projnorun"), "no run yet"),
    C("report", "report --project with an unknown --run-id", ("report", "--project", "{d}/projfit", "--run-id",
                                                              "nope"), "nope"),
    C("report", "report --project that is not a project", ("report", "--project", "{d}/mine"),
      "not a labelseed project"),
    # --- init
    C("init", "init --data missing", ("init", "{d}/p", "--data", "{d}/nope.csv", "--text-column", "text"),
      "does not exist"),
    C("init", "init --data of an unknown type (.txt)", ("init", "{d}/p", "--data", "{d}/pool.txt", "--text-column",
                                                        "text"), ".csv, .parquet or .jsonl"),
    C("init", "init --data parquet that is not parquet", ("init", "{d}/p", "--data", "{d}/pool_bad.parquet",
                                                          "--text-column", "text"), "could not be read"),
    C("init", "init --data Latin-1 labels column file", ("init", "{d}/p", "--data", "{d}/latin.csv",
                                                         "--text-column", "label"), "latin.csv"),
    C("init", "init without a text column", ("init", "{d}/p", "--data", "{d}/pool_notext.csv", "--text-column",
                                             "text"), "no column 'text'"),
    C("init", "init with a wrong --id-column", ("init", "{d}/p", "--data", "{d}/pool.csv", "--text-column", "text",
                                                "--id-column", "key"), "--id-column"),
    C("init", "init with duplicate ids", ("init", "{d}/p", "--data", "{d}/pool_dupid.csv", "--text-column", "text"),
      "duplicate id"),
    C("init", "init with an empty id", ("init", "{d}/p", "--data", "{d}/pool_emptyid.csv", "--text-column", "text"),
      "empty id"),
    C("init", "init with an empty text", ("init", "{d}/p", "--data", "{d}/pool_emptytext.csv", "--text-column",
                                          "text"), "--skip-empty"),
    C("init", "init with no rows", ("init", "{d}/p", "--data", "{d}/pool_header.csv", "--text-column", "text"),
      "no rows"),
    C("init", "init with a 10 MB text", ("init", "{d}/p", "--data", "{d}/pool_huge.csv", "--text-column", "text"),
      "--truncate"),
    C("init", "init with a 10 MB text and --truncate", ("init", "{d}/ph", "--data", "{d}/pool_huge.csv",
                                                        "--text-column", "text", "--truncate"), "", exit=0,
      check="texts truncated", writes=("ph/*",)),
    C("init", "init into an existing project", ("init", "{d}/proj", "--data", "{d}/pool.csv", "--text-column",
                                                "text"), "already a labelseed project"),
    C("init", "init into a non-empty folder", ("init", "{d}/mine", "--data", "{d}/pool.csv", "--text-column",
                                               "text"), "not empty"),
    C("init", "init --image-dir that is not a folder", ("init", "{d}/p", "--image-dir", "{d}/afile"),
      "is not a folder"),
    C("init", "init --image-dir with no images", ("init", "{d}/p", "--image-dir", "{d}/imgs_empty"), "holds no images"),
    C("init", "init without --data", ("init", "{d}/p", "--text-column", "text"), "--data"),
    C("init", "init --vectors with fewer rows than --data", ("init", "{d}/p", "--data", "{d}/pool.csv", "--vectors",
                                                             "{d}/X.npy"), "rows"),
    C("init", "init --vectors parquet paired by id, not row order",
      ("init", "{d}/pv", "--data", "{d}/pool_vec.csv", "--vectors", "{d}/V_perm.parquet"), "", exit=0,
      check="aligned by id", writes=("pv/*",)),
    C("init", "init --vectors parquet with a null id", ("init", "{d}/p", "--data", "{d}/pool_vec.csv", "--vectors",
                                                        "{d}/V_nullid.parquet"), "no id"),
    C("init", "init --vectors parquet with ids not in --data",
      ("init", "{d}/p", "--data", "{d}/pool.csv", "--vectors", "{d}/V.parquet"), "pool.csv"),
    C("init", "init --vectors with NaN", ("init", "{d}/p", "--data", "{d}/pool_vec.csv", "--vectors",
                                          "{d}/X_nan.npy"), "NaN"),
    # --- projects: opening, embedding
    C("project", "a folder that is not a project", ("status", "{d}/mine"), "not a labelseed project"),
    C("project", "a project path that does not exist", ("status", "{d}/nope"), "not a labelseed project"),
    C("project", "a project path that is a file", ("status", "{d}/afile"), "not a labelseed project"),
    C("project", "a garbage database", ("status", "{d}/proj"), "is damaged", setup="db garbage"),
    C("project", "a garbage database names the labels backup", ("fit", "{d}/proj"), "backups/labels.csv",
      setup="db garbage"),
    C("project", "a 0-byte database", ("status", "{d}/proj"), "holds no project", setup="db empty"),
    C("project", "a 0-byte database, then embed", ("embed", "{d}/proj", "--model", "hashing"), "holds no project",
      setup="db empty"),
    C("project", "a truncated database", ("status", "{d}/proj"), "is damaged", setup="db truncated"),
    C("project", "embed --model typo", ("embed", "{d}/proj", "--model", "hashng"), "not a text model"),
    C("project", "embed --model of images for texts", ("embed", "{d}/proj", "--model", "efficientnet-lite0"),
      "not a text model"),
    C("project", "embed --device misspelled", ("embed", "{d}/projraw", "--device", "gpu"), "`device` must be"),
    C("project", "embed --device cuda where torch sees no GPU", ("embed", "{d}/projraw", "--device", "cuda"),
      "sees no CUDA GPU"),
    C("project", "run --device cuda:1 where torch sees no GPU", ("run", "{d}/projraw", "--device", "cuda:1"),
      "sees no CUDA GPU"),
    C("project", "embed --batch-size 0", ("embed", "{d}/projraw", "--model", "hashing", "--batch-size", "0"),
      "--batch-size"),
    C("project", "embed --vectors of another dimension count", ("embed", "{d}/projraw", "--vectors", "{d}/X.npy"),
      "rows"),
    C("project", "embed --vectors missing", ("embed", "{d}/projraw", "--vectors", "{d}/nope.npy"), "does not exist"),
    C("project", "embeddings.npy truncated", ("select", "{d}/proj", "--budget", "2"), "embed",
      setup="embeddings truncated"),
    C("project", "embeddings.npy of another dimension", ("select", "{d}/proj", "--budget", "2"), "does not belong",
      setup="embeddings other dim"),
    C("project", "embeddings.npy with fewer rows", ("select", "{d}/proj", "--budget", "2"), "--force",
      setup="embeddings fewer rows"),
    C("project", "embeddings.npy deleted: fit says how", ("fit", "{d}/proj"), "embed", setup="embeddings deleted"),
    C("project", "embeddings.npy deleted: embed rebuilds it", ("embed", "{d}/proj", "--model", "hashing", "--quiet"),
      "", exit=0, setup="embeddings deleted", check="embeddings rebuilt", writes=("proj/*",)),
    C("project", "embeddings.npy zeroed", ("fit", "{d}/proj"), "is damaged: rebuild it", setup="embeddings zeroed"),
    C("project", "fit before embed", ("fit", "{d}/projraw"), "labelseed embed"),
    C("project", "select before embed", ("select", "{d}/projraw", "--budget", "3"), "labelseed embed"),
    C("project", "fit with no labels", ("fit", "{d}/projnorun"), "no human labels yet"),
    C("project", "fit with one class", ("fit", "{d}/proj", "--quiet"), "--allow-single-class", setup="one-class proj"),
    C("project", "fit --certify audit with no audit", ("fit", "{d}/projfit", "--certify", "audit"),
      "needs verified audit labels"),
    C("project", "query with no labels", ("query", "{d}/projnorun", "--budget", "3"), "no human labels yet"),
    C("project", "select --budget above the unlabeled rows", ("select", "{d}/proj", "--budget", "500"), "only"),
    C("project", "run with other --data on an existing project",
      ("run", "{d}/proj", "--data", "{d}/pool_vec.csv", "--text-column", "text", "--model", "hashing"),
      "was made from"),
    C("project", "run without --data on a new folder", ("run", "{d}/newproj", "--text-column", "text"), "--data"),
    # --- imports
    C("import", "import a missing file", ("import", "{d}/proj", "{d}/nope.csv"), "does not exist"),
    C("import", "import a Latin-1 CSV", ("import", "{d}/proj", "{d}/latin.csv"), "not UTF-8"),
    C("import", "import a folder", ("import", "{d}/proj", "{d}/adir"), "folder"),
    C("import", "import ids that are not items", ("import", "{d}/proj", "{d}/t_unknown.csv"), "not items of this project"),
    C("import", "import one id with two labels", ("import", "{d}/proj", "{d}/t_conflict.csv"), "conflicting labels"),
    C("import", "import a CSV without a label column", ("import", "{d}/proj", "{d}/nolabel.csv"), "lacks column"),
    C("import", "import an empty file", ("import", "{d}/proj", "{d}/empty.csv"), "lacks column"),
    C("import", "import --validation with a class no label has",
      ("import", "{d}/projfit", "{d}/t0.csv", "--validation"), "validation sample"),
    C("import", "Label Studio: fields of the wrong type", ("import", "{d}/proj", "{d}/ls_types.json"), "is not a list"),
    C("import", "Label Studio: choices as a string", ("import", "{d}/proj", "{d}/ls_string_choice.json"),
      "must be a list of labels"),
    C("import", "Label Studio: annotations that disagree", ("import", "{d}/proj", "{d}/ls_disagree.json"), "disagree"),
    C("import", "Label Studio: item id of the wrong type", ("import", "{d}/proj", "{d}/ls_item.json"),
      "item_id must be"),
    C("import", "Label Studio: nested 100k deep", ("import", "{d}/proj", "{d}/deep.json"), "nested too deeply"),
    C("import", "Label Studio: span labels, no choices", ("import", "{d}/proj", "{d}/ls_spans.json"),
      "no classification choice"),
    C("import", "Label Studio: an object, not a list of tasks", ("import", "{d}/proj", "{d}/ls_object.json"), "list"),
    C("import", "Label Studio: broken JSON", ("import", "{d}/proj", "{d}/ls_broken.json"), "ls_broken.json"),
    C("import", "Label Studio: an unknown item id", ("import", "{d}/proj", "{d}/ls_unknown.json"),
      "not items of this project"),
    C("import", "Label Studio: a task without item_id", ("import", "{d}/proj", "{d}/ls_noid.json"), "item_id"),
    C("import", "Label Studio: tasks without annotations", ("import", "{d}/proj", "{d}/ls_none.json"),
      "holds no labels"),
    C("import", "import a CSV with a header only", ("import", "{d}/proj", "{d}/header.csv"), "holds no labels"),
    # --- apply, export, status
    C("apply", "apply with no run", ("apply", "{d}/projnorun"), "no run yet"),
    C("apply", "apply --run unknown", ("apply", "{d}/projfit", "--run", "nope"), "nope"),
    C("apply", "apply after the human labels changed", ("apply", "{d}/projfit"), "--refit",
      setup="labels changed after fit"),
    C("apply", "apply a run whose decisions were deleted", ("apply", "{d}/projfit", "--out", "{d}/l.csv"),
      "decisions.npz", setup="run decisions deleted"),
    C("apply", "apply writes formula-like labels as text", ("apply", "{d}/projfit", "--out", "{d}/l.csv"), "", exit=0,
      check="formula neutralised", writes=("l.csv", "projfit/*")),
    C("export", "export --items requested before any request", ("export", "{d}/proj", "--out", "{d}/x.csv"),
      "Nothing has been requested"),
    C("export", "export --batch unknown", ("export", "{d}/projfit", "--batch", "nope", "--out", "{d}/x.csv"), "nope"),
    C("read-only", "status on a read-only project", ("status", "{d}/projfit"), "last run", exit=0, runner="ro:projfit"),
    C("read-only", "export from a read-only project", ("export", "{d}/projfit", "--items", "all", "--out", "{d}/x.csv"),
      "", exit=0, runner="ro:projfit", writes=("x.csv",)),
    C("read-only", "apply --out elsewhere from a read-only project", ("apply", "{d}/projfit", "--out", "{d}/l.csv"),
      "read-only", exit=0, runner="ro:projfit", check="labels written", writes=("l.csv",)),
    C("read-only", "report --out elsewhere from a read-only project",
      ("report", "--project", "{d}/projfit", "--out", "{d}/r"), "", exit=0, runner="ro:projfit",
      check="report written", writes=("r/*",)),
    C("read-only", "import into a read-only project", ("import", "{d}/projfit", "{d}/t_new.csv"),
      "`import` writes to the project", runner="ro:projfit"),
    C("read-only", "fit on a read-only project", ("fit", "{d}/projfit"), "`fit` writes to the project",
      runner="ro:projfit"),
    C("read-only", "select on a read-only project", ("select", "{d}/projfit", "--budget", "2", "--out", "{d}/s.csv"),
      "`select` writes to the project", runner="ro:projfit"),
    C("read-only", "report into a read-only project", ("report", "--project", "{d}/projfit"), "not writable",
      runner="ro:projfit"),
    # --- simulate
    C("simulate", "simulate: truth with unknown ids", _sim(truth="{d}/truth_unknown.csv"), "not in the pool"),
    C("simulate", "simulate: truth missing rows", _sim(truth="{d}/seed.csv"), "true label of every row"),
    C("simulate", "simulate --graph-space auto with --fast", _sim("--graph-space", "auto", "--fast"),
      "graph_space='auto'"),
    C("simulate", "simulate: budget below the classes", _sim(budget="2"), "number of classes (3)"),
    C("simulate", "simulate: rounds < 1", _sim("--rounds", "0"), "`rounds` must be"),
    C("simulate", "simulate: random share > 1", _sim("--random-share", "1.5"), "`random_share` must be"),
    C("simulate", "simulate: audits eat the budget", _sim("--audit", "10"), "must leave labels"),
    C("simulate", "simulate: Latin-1 truth", _sim(truth="{d}/latin.csv"), "not UTF-8"),
    C("simulate", "simulate: truth of one class", _sim(truth="{d}/truth_one.csv"), "class"),
]


def _one_column_run(d: Path) -> None:
    cli_ok("autolabel", "--embeddings", str(d / "X1.npy"), "--labels", str(d / "seed.csv"), "--out", str(d / "o"),
            "--quiet", "--target-precision", "0.8")


def _one_class_proj(d: Path) -> None:
    (d / "oc.csv").write_text("id,label\nt10,a\nt11,a\n")
    cli_ok("import", str(d / "proj"), str(d / "oc.csv"), "--replace")
    (d / "oc2.csv").write_text("id,label\nt1,a\nt3,a\n")
    cli_ok("import", str(d / "proj"), str(d / "oc2.csv"), "--replace")


SETUPS["one-column run"] = _one_column_run
SETUPS["one-class proj"] = _one_class_proj


# ----------------------------------------------------------------------------- running a case


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


class Unsupported(Exception):
    """This machine cannot make the environment the case needs (a read-only mount, a full disk)."""


def _command(case: Case, d: Path) -> list[str]:
    args = [a.format(d=d) for a in case.args]
    kind, _, where = case.runner.partition(":")
    if kind == "plain":
        return [EXE, *args]
    target = str(d / where)
    if os.geteuid() != 0:
        raise Unsupported("needs root for a private mount namespace")
    mount = ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0"' if kind == "ro"
             else 'mount -t tmpfs -o size=4k tmpfs "$0"')
    return ["unshare", "-m", "sh", "-c", mount + ' && exec "$@"', target, EXE, *args]


def run_case(case: Case, d: Path) -> subprocess.CompletedProcess[str]:
    """Run `case` in the working folder `d` (a fresh copy of the base); raise AssertionError
    if it does not end as the catalogue says."""
    if case.setup:
        SETUPS[case.setup](d)
    before = digest(d)
    env = {**os.environ, "XDG_CACHE_HOME": str(d.parent / "xdg-cache")}
    r = subprocess.run(_command(case, d), capture_output=True, text=True, timeout=300, env=env)
    where = f"{case.name}: exit {r.returncode}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}"
    if "mount:" in r.stderr and r.returncode not in (0, 2):
        raise Unsupported(r.stderr.strip())
    assert "Traceback" not in r.stderr, where
    assert r.returncode == case.exit, where
    after = digest(d)
    if case.exit == 2:
        # not stripped: a blank line before the error (a progress bar stopped by it) is a second line
        lines = [ln for ln in r.stderr.splitlines() if not ln.startswith(("warning:", "WARNING"))]
        assert len(lines) == 1 and lines[0].startswith("error: "), where
        assert case.phrase in lines[0], where
        assert after == before, (where, set(after.items()) ^ set(before.items()))
    else:
        assert case.phrase in r.stdout + r.stderr, where
        if case.check:
            CHECKS[case.check](d)
        changed = {k for k in before if after.get(k) != before[k]}
        allowed = {k for k in changed if any(fnmatch.fnmatch(k, g) for g in case.writes)}
        assert changed == allowed, (where, sorted(changed - allowed))
    return r


def message(r: subprocess.CompletedProcess[str], d: Path) -> str:
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error: ")]
    text = lines[0][len("error: "):] if lines else (r.stdout.strip().splitlines() or [""])[-1]
    return text.replace(str(d), "{d}").replace(str(d.parent / "base"), "{base}")


def write_docs(path: Path) -> None:
    """Run every case and write the table (with the message each input gets) to `path`."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        base = build_base(Path(tmp) / "base")

        def one(k: int) -> tuple[Case, str]:
            case, d = CASES[k], Path(tmp) / f"c{k}"
            shutil.copytree(base, d, symlinks=True)
            try:
                got = message(run_case(case, d), d)
            except Unsupported as exc:
                got = f"(not run here: {exc})"
            shutil.rmtree(d, ignore_errors=True)
            return case, got

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(3) as pool:  # each case is a subprocess
            rows = list(pool.map(one, range(len(CASES))))
    out = ["# What each bad input gets", "",
           f"The bad-input catalogue ({len(CASES)} cases, `tests/catalogue.py`), run by `make test` through the real "
           "`labelseed` entry point. Every exit-2 case ends in one line naming the problem and the fix and leaves "
           "every file as it was; every exit-0 case is an input that looks wrong but has a right answer, checked. "
           "`{d}` stands for the folder holding the inputs. Regenerate with `python tests/catalogue.py`.", "",
           "| # | group | input | command | exit | message (or last line of output) |",
           "| --- | --- | --- | --- | --- | --- |"]
    for k, (case, got) in enumerate(rows, 1):
        cmd = "labelseed " + " ".join(case.args)
        cells = [str(k), case.group, case.name, f"`{cmd}`", str(case.exit), got]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    target = HERE.parent / "docs" / "bad-inputs.md"
    target.parent.mkdir(exist_ok=True)
    write_docs(target)
    print(f"wrote {target} ({len(CASES)} cases)")
