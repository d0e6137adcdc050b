"""Bad input through the real CLI: one line naming the problem and the fix, exit code 2, and the
user's files and the project's store exactly as they were (the issue-12 cases fixed so far)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from catalogue import CASES, Unsupported, build_base, run_case
from conftest import run_cli


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "cache" not in p.parts}


@pytest.fixture(scope="module")
def catalogue_base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("catalogue") / "base")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_catalogue(catalogue_base, tmp_path, case):
    """One row of docs/bad-inputs.md: exit 2 with one line naming the problem and the fix and
    every file as it was, or exit 0 with the right answer."""
    d = tmp_path / "w"
    shutil.copytree(catalogue_base, d, symlinks=True)
    try:
        run_case(case, d)
    except Unsupported as exc:
        pytest.skip(str(exc))


def test_the_catalogue_is_documented():
    """docs/bad-inputs.md lists every case of the catalogue (regenerate: python tests/catalogue.py)."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "bad-inputs.md").read_text(encoding="utf-8")
    rows = [ln.split(" | ")[2] for ln in doc.splitlines() if ln.startswith("| ") and ln[2:3].isdigit()]
    assert rows == [c.name.replace("|", "\\|") for c in CASES]
    assert len(CASES) >= 150


@pytest.mark.parametrize("blank", [None, "", "  "])
def test_a_vector_without_id_is_refused(tmp_path, blank):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    ids = [f"i{k}" for k in range(20)]
    ids[3] = blank
    pq.write_table(pa.table({"id": ids, "vector": [x.tolist() for x in X]}), tmp_path / "V.parquet")
    (tmp_path / "s.csv").write_text("id,label\n" + "".join(f"i{k},c{k % 2}\n" for k in range(4, 20)))
    r = run_cli("autolabel", "--embeddings", str(tmp_path / "V.parquet"), "--labels", str(tmp_path / "s.csv"),
                "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 2 and "no id" in r.stderr and "rows 4" in r.stderr
    assert not (tmp_path / "o").exists()


def test_apply_refuses_a_stale_run_and_refit_applies_a_fresh_one(tmp_path):
    from test_project import write_data, write_labels

    truth = write_data(tmp_path / "pool.csv", n_per=30)
    d = tmp_path / "proj"
    assert run_cli("init", str(d), "--data", str(tmp_path / "pool.csv"), "--text-column", "text").returncode == 0
    assert run_cli("embed", str(d), "--model", "hashing", "--quiet").returncode == 0
    write_labels(tmp_path / "a.csv", [(f"t{i}", truth[i]) for i in range(30)])
    write_labels(tmp_path / "b.csv", [(f"t{i}", truth[i]) for i in range(30, 45)])
    assert run_cli("import", str(d), str(tmp_path / "a.csv")).returncode == 0
    assert run_cli("fit", str(d), "--target-precision", "0.8", "--quiet").returncode == 0
    assert run_cli("import", str(d), str(tmp_path / "b.csv")).returncode == 0  # new labels: the run is stale
    before = _digest(d)
    r = run_cli("apply", str(d))
    assert r.returncode == 2 and "before the human labels changed" in r.stderr and "--refit" in r.stderr
    assert _digest(d) == before and not (d / "labels.csv").exists()
    r = run_cli("apply", str(d), "--refit", "--quiet")
    assert r.returncode == 0, r.stderr
    st = json.loads(run_cli("status", str(d), "--json").stdout)
    assert st["last_run"]["status"] == "applied"
    import csv

    rows = list(csv.DictReader(open(d / "labels.csv")))
    seed = {r["id"] for r in rows if r["source"] == "seed"}
    assert seed == {f"t{i}" for i in range(45)}  # the refit saw every human label


def test_embed_rebuilds_a_deleted_embeddings_file(catalogue_base, tmp_path):
    d = tmp_path / "w"
    shutil.copytree(catalogue_base / "proj", d)
    X = np.load(d / "embeddings.npy")
    (d / "embeddings.npy").unlink()
    r = run_cli("embed", str(d), "--model", "hashing", "--quiet")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(d / "embeddings.npy"), X)
    assert run_cli("select", str(d), "--budget", "2").returncode == 0


@pytest.mark.parametrize("label", ["=cmd()", "+1+1", "-2+3", "@SUM(A1)", "=HYPERLINK(\"http://x\")"])
def test_formula_labels_are_neutralised_in_csv_and_round_trip(tmp_path, label):
    from test_project import write_data

    truth = write_data(tmp_path / "pool.csv", n_per=20)
    d = tmp_path / "proj"
    assert run_cli("init", str(d), "--data", str(tmp_path / "pool.csv"), "--text-column", "text").returncode == 0
    assert run_cli("embed", str(d), "--model", "hashing", "--quiet").returncode == 0
    import csv

    names = {"animal": label, "food": "food", "tool": "-1.5"}  # a plain negative number stays as it is
    with open(tmp_path / "seed.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows((f"t{i}", names[truth[i]]) for i in range(30))
    assert run_cli("import", str(d), str(tmp_path / "seed.csv")).returncode == 0
    assert run_cli("fit", str(d), "--target-precision", "0.8", "--quiet").returncode == 0
    assert run_cli("apply", str(d), "--out", str(tmp_path / "labels.csv")).returncode == 0
    raw = [row for row in csv.reader(open(tmp_path / "labels.csv"))][1:]
    cells = {row[1] for row in raw}
    assert "'" + label in cells and label not in cells  # what a spreadsheet opens is text, not a formula
    assert "-1.5" in cells
    # and labelseed reads its own CSV back to the same labels
    assert run_cli("import", str(d), str(tmp_path / "labels.csv")).returncode == 0
    from labelseed.project import Project

    with Project.open(d) as p:
        assert set(p.labels().values()) <= {label, "food", "-1.5"}
