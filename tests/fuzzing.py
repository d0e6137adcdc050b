"""Generators of damaged inputs and the oracle that judges labelseed's answer to each, shared by
tests/test_fuzz.py (2,000+ cases in CI) and bench/fuzz.py (10,000).

Every case runs the real entry point (:func:`labelseed.cli.main`, what the ``labelseed`` script
calls) in this process. A case passes when the command either succeeds with output that agrees
with its input, or stops with exit code 2 and one ``error:`` line, writing nothing; anything
else (an exception, exit 1, a success whose output contradicts the input) is a failure.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

N_POOL = 45  # rows of the valid pool the label fuzzers run against


def valid_pool() -> np.ndarray:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), N_POOL // 3)
    return (np.eye(3, 6)[y] * 4 + rng.normal(size=(N_POOL, 6))).astype(np.float32)


VALID_ROWS = [(i, f"c{i // (N_POOL // 3)}") for i in range(0, N_POOL, 3)]  # 5 per class, by the pool's class
VALID_LABELS = "id,label\n" + "".join(f"{i},{lab}\n" for i, lab in VALID_ROWS)


@dataclass
class Outcome:
    case: str
    exit_code: int | None
    stderr: str
    failure: str  # "" when labelseed answered as it should


def run_main(argv: list[str]) -> tuple[int | None, str, str]:
    """Run ``labelseed <argv>`` in-process; an exception becomes exit None with its traceback."""
    import traceback

    from labelseed.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: int | None = main(argv)
        except SystemExit as e:  # argparse: exit 2 with usage, which is a clear refusal
            code = int(e.code) if isinstance(e.code, int) else 2
        except BaseException:  # noqa: BLE001  (a traceback is exactly what the fuzzer hunts)
            code = None
            err.write(traceback.format_exc())
    return code, out.getvalue(), err.getvalue()


def judge_refusal(code: int | None, err: str, outputs: list[Path]) -> str:
    if code is None:
        return "traceback: " + err.strip().splitlines()[-1][:200]
    if code not in (0, 2):
        return f"exit {code}: {err.strip()[-200:]}"
    if code == 2:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        if not lines or not (lines[-1].startswith("error:") or lines[-1].startswith("usage:")
                             or "error:" in lines[-1]):
            return f"exit 2 without an error line: {err.strip()[-200:]}"
        if "Traceback" in err:
            return "exit 2 with a traceback"
        for p in outputs:
            if p.exists():
                return f"exit 2 but {p.name} was written"
    return ""


# ------------------------------------------------------------------ generators

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_ids = st.one_of(st.integers(-3, N_POOL + 3).map(str), _text, st.just(""), st.just("1.0"), st.just(" 2 "))
_labels = st.one_of(st.sampled_from(["c0", "c1", "c2"]), _text, st.just(""), st.just("=cmd()"),
                    st.just("+1"), st.just("@x"), st.just("\tt"), st.just("c0 "))


@st.composite
def label_csv_bytes(draw: st.DrawFn, id_prefix: str = "") -> bytes:
    """A labels CSV that may be right, or wrong in header, rows, ids, labels or encoding (valid ids
    are `id_prefix` + a row number)."""
    valid = [(f"{id_prefix}{i}", lab) for i, lab in VALID_ROWS]
    if draw(st.booleans()):  # a usable file with one thing changed: most should still be accepted
        rows = list(valid)
        tweak = draw(st.sampled_from(["none", "label", "blank label", "unlabeled row", "spaces", "quote", "bom",
                                      "crlf", "latin-1 ascii", "extra column", "label,id", "duplicate id",
                                      "unknown id", "drop class"]))
        header = "id,label"
        if tweak == "label":
            i = draw(st.integers(0, len(rows) - 1))
            rows[i] = (rows[i][0], draw(_labels))
        elif tweak == "blank label":
            rows[0] = (rows[0][0], "")
        elif tweak == "unlabeled row":
            rows.append((f"{id_prefix}1", ""))
        elif tweak == "spaces":
            rows = [(f" {a} ", f" {b}") for a, b in rows]
        elif tweak == "quote":
            rows = [(f'"{a}"', f'"{b}"') for a, b in rows]
        elif tweak == "extra column":
            header = "id,label,note"
            rows = [(a, f"{b},x") for a, b in rows]
        elif tweak == "label,id":
            header = "label,id"
            rows = [(b, a) for a, b in rows]
        elif tweak == "duplicate id":
            rows.append(rows[0])
        elif tweak == "unknown id":
            rows.append((f"{id_prefix}{N_POOL + 7}", "c0"))
        elif tweak == "drop class":
            rows = [r for r in rows if r[1] != "c2"]
        text = ("\ufeff" if tweak == "bom" else "") + "\n".join([header] + [",".join(r) for r in rows]) + "\n"
        if tweak == "crlf":
            text = text.replace("\n", "\r\n")
        return text.encode("latin-1" if tweak == "latin-1 ascii" else "utf-8", errors="replace")
    header = draw(st.sampled_from(["id,label", "label,id", "id", "ID,Label", "id,label,extra", "", "\ufeffid,label",
                                   "id;label"]))
    rows = draw(st.lists(st.tuples(_ids.map(lambda v: id_prefix + v if v.strip().isdigit() else v), _labels),
                         max_size=25))
    if draw(st.booleans()):
        rows = valid + rows
    sep = draw(st.sampled_from([",", ",", ";", "\t"]))
    quote = draw(st.booleans())
    lines = [header] + [sep.join(f'"{a}"' if quote else a for a in r) for r in rows]
    text = draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.integers(0, 9)) == 0:  # raw bytes
        data = draw(st.binary(max_size=200))
    return data


@st.composite
def npy_array(draw: st.DrawFn) -> np.ndarray:
    """Embeddings of any dtype and shape, with NaN/inf/huge values now and then."""
    kind = draw(st.sampled_from(["float32", "float64", "float16", "int64", "bool", "complex64", "object", "str"]))
    shape = draw(st.sampled_from([(N_POOL, 6), (N_POOL,), (N_POOL, 0), (0, 6), (N_POOL, 1), (N_POOL, 2, 3), (5, 6),
                                  (N_POOL + 5, 6), ()]))
    base = valid_pool()
    if shape == (N_POOL, 6):
        A = base.copy()
    else:
        A = np.random.default_rng(1).normal(size=shape) if shape != () else np.array(1.0)
    A = np.asarray(A, dtype=np.float64)
    poke = draw(st.sampled_from(["none", "nan", "inf", "huge", "tiny", "zero-row"]))
    if A.size:
        if poke == "nan":
            A.flat[draw(st.integers(0, A.size - 1))] = np.nan
        elif poke == "inf":
            A.flat[draw(st.integers(0, A.size - 1))] = -np.inf
        elif poke == "huge":
            A = A * 1e30
        elif poke == "tiny":
            A = A * 1e-30
        elif poke == "zero-row" and A.ndim == 2:
            A[0] = 0
    A = np.asarray(A)
    if kind == "object":
        return np.asarray(A.astype(object))
    if kind == "str":
        return np.asarray(A.astype(str))
    with np.errstate(all="ignore"):
        return np.asarray(A.astype(kind))


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 50), st.floats(allow_nan=False), _text)
_json = st.recursive(_json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_text, inner, max_size=4)), max_leaves=20)


@st.composite
def label_studio_json(draw: st.DrawFn) -> bytes:
    """Label Studio exports: well-formed, subtly wrong (types, missing keys, spans), or any JSON."""
    def task() -> object:
        item = draw(st.one_of(st.sampled_from([f"t{i}" for i in range(12)]), _json_leaf))
        choices = draw(st.one_of(st.lists(st.sampled_from(["a", "b", "c"]), max_size=2), _json_leaf))
        result = {"type": draw(st.sampled_from(["choices", "labels", "textarea", None])), "value": {"choices": choices}}
        ann = {"result": draw(st.one_of(st.just([result]), _json)), "was_cancelled": draw(st.booleans())}
        return {"data": draw(st.one_of(st.just({"item_id": item}), _json)),
                "annotations": draw(st.one_of(st.just([ann]), st.just([ann, ann]), _json))}

    shape = draw(st.integers(0, 4))
    if shape == 0:
        body: object = draw(_json)
    else:
        body = [task() for _ in range(draw(st.integers(0, 5)))]
    data = json.dumps(body).encode()
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]  # truncated
    return data


# --------------------------------------------------------------------- cases


def autolabel_case(tmp: Path, X: np.ndarray, labels: bytes, case: str) -> Outcome:
    """`labelseed autolabel` on the given pool and labels file; its output must match its input."""
    for p in list(tmp.iterdir()):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    np.save(tmp / "X.npy", X, allow_pickle=X.dtype == object)
    (tmp / "labels.csv").write_bytes(labels)
    out = tmp / "out"
    code, _, err = run_main(["autolabel", "--embeddings", str(tmp / "X.npy"), "--labels", str(tmp / "labels.csv"),
                             "--out", str(out), "--quiet", "--no-cache", "--target-precision", "0.8"])
    failure = judge_refusal(code, err, [out])
    if not failure and code == 0:
        failure = _check_autolabel_output(out, labels, len(X))
    if not failure and (tmp / "labels.csv").read_bytes() != labels:
        failure = "the labels file was changed"
    return Outcome(case, code, err, failure)


def _given_labels(labels: bytes) -> dict[str, str] | None:
    try:
        rows = list(csv.DictReader(io.StringIO(labels.decode("utf-8-sig"), newline="")))
    except (UnicodeDecodeError, csv.Error):
        return None
    return {(r.get("id") or "").strip(): (r.get("label") or "").strip() for r in rows if (r.get("label") or "").strip()}


def _check_autolabel_output(out: Path, labels: bytes, n_rows: int) -> str:
    from labelseed._io import csv_unsafe

    if not (out / "auto_labels.csv").exists() or not (out / "summary.json").exists():
        return "exit 0 without auto_labels.csv/summary.json"
    given = _given_labels(labels)
    if given is None:
        return "exit 0 on a labels file that is not UTF-8 CSV"
    rows = list(csv.DictReader(open(out / "auto_labels.csv", encoding="utf-8", newline="")))
    classes = set(given.values())
    for r in rows:
        rid, lab, src = csv_unsafe(r["id"]), csv_unsafe(r["label"]), r["source"]
        if not (rid.isdigit() and int(rid) < n_rows):
            return f"exit 0 but output id {rid!r} is not a pool row"
        if src == "seed" and given.get(rid) != lab:
            return f"exit 0 but seed row {rid} is {lab!r}, the file says {given.get(rid)!r}"
        if src == "auto" and (lab not in classes or rid in given):
            return f"exit 0 but auto row {rid} got {lab!r}"
    seeds = {csv_unsafe(r["id"]) for r in rows if r["source"] == "seed"}
    if seeds != set(given):
        return f"exit 0 but {len(set(given) - seeds)} labeled row(s) are missing from the output"
    s = json.loads((out / "summary.json").read_text())
    cov = s.get("coverage")
    if cov is not None and not 0 <= cov <= 1:
        return f"exit 0 but coverage {cov}"
    return ""


def import_case(project: Path, data: bytes, suffix: str, case: str) -> Outcome:
    """`labelseed import` of a fuzzed file: on refusal the store must be unchanged."""
    import hashlib

    db = project / "labelseed.db"
    f = project.parent / f"fuzz{suffix}"
    f.write_bytes(data)

    def digest() -> str:
        code, out, _ = run_main(["export", str(project), "--labels-history", "--out",
                                 str(project.parent / "h.csv"), "--force"])
        h = hashlib.sha256((project.parent / "h.csv").read_bytes()).hexdigest() if code == 0 else out
        return h

    before = digest()
    code, _, err = run_main(["import", str(project), str(f)])
    failure = judge_refusal(code, err, [])
    if not failure and code == 2 and digest() != before:
        failure = "refused, but the label history changed"
    if not failure and not db.exists():
        failure = "the database is gone"
    return Outcome(case, code, err, failure)
