"""README's examples run as written: every `sh` block (but `make`) through the real CLI, in a
folder holding the files they name, with the test playing the person where a comment says a
person steps in (labeling the picks, verifying an audit); and the Python block."""
from __future__ import annotations

import csv
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from conftest import blobs, run_cli, write_text_pool

README = Path(__file__).resolve().parent.parent / "README.md"

def blocks(kind: str) -> list[list[str]]:
    """The commands (comments and `make` lines dropped) of each ```kind block."""
    out = []
    for body in re.findall(rf"```{kind}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        lines = [re.sub(r"\s+#.*$", "", ln).strip() for ln in body.splitlines()]
        out.append([ln for ln in lines if ln and not ln.startswith(("#", "make "))])
    return out


def _answer(request: Path, truth: dict[str, str], out: Path) -> None:
    """The person: the true label of every item a request file asks about."""
    with open(request, newline="") as f:
        ids = [row["id"] for row in csv.DictReader(f)]
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows((i, truth[i]) for i in ids)


def _run(folder: Path, line: str):
    args = shlex.split(line)
    assert args[0] == "labelseed", line
    import os

    here = os.getcwd()
    os.chdir(folder)
    try:
        return run_cli(*args[1:])
    finally:
        os.chdir(here)


def test_readme_shell_examples_run_as_written(tmp_path):
    pytest.importorskip("sentence_transformers")
    sh = blocks("sh")
    assert len(sh) >= 4, "README lost its examples"
    project_loop = next(b for b in sh if any(c.startswith("labelseed init proj") for c in b))
    simulate = next(b for b in sh if any(c.startswith("labelseed simulate") for c in b))
    file_mode = next(b for b in sh if any(c.startswith("labelseed autolabel") for c in b))
    choosing = next(b for b in sh if any(c.startswith("labelseed select --embeddings") for c in b))
    ran = 0

    # the project loop, on texts embedded with the offline MiniLM
    loop = tmp_path / "loop"
    loop.mkdir()
    truth = write_text_pool(loop / "pool.csv", 1200, words=4, suffix=" here")
    rng = np.random.default_rng(1)
    _answer_rows = rng.choice(sorted(truth), 30, replace=False)
    with open(loop / "seed.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "label"], *[[i, truth[i]] for i in _answer_rows]])
    # items that arrive after the fit: the same kind of texts under new ids
    write_text_pool(loop / "later.csv", 60, words=4, suffix=" today")
    (loop / "more.csv").write_text((loop / "later.csv").read_text().replace("\nt", "\nnew-t"))
    for line in project_loop:
        r = _run(loop, line)
        assert r.returncode == 0, (line, r.stdout[-2000:], r.stderr[-2000:])
        ran += 1
        if line.startswith("labelseed select proj"):  # a person labels the picks
            _answer(max((loop / "proj" / "exports").glob("select-*.csv")), truth, loop / "labeled.csv")
        if line.startswith("labelseed audit proj"):  # ... verifies the audit, which is then imported
            _answer(max((loop / "proj" / "exports").glob("audit-*.csv")), truth, loop / "verified.csv")
            r = _run(loop, "labelseed import proj verified.csv")
            assert r.returncode == 0, r.stderr
    assert (loop / "labels.parquet").exists() and (loop / "proj" / "labels.csv").exists()

    # simulate, on vectors with their truth
    plan = tmp_path / "plan"
    plan.mkdir()
    X, y = blobs(n_per=200, n_classes=3, dim=16, spread=1.0, seed=3)
    np.save(plan / "sample.npy", X)
    with open(plan / "truth.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "label"], *[[i, f"c{c}"] for i, c in enumerate(y)]])
    for line in simulate:
        r = _run(plan, line)
        assert r.returncode == 0, (line, r.stderr[-2000:])
        ran += 1
    assert (plan / "plan" / "label_efficiency.csv").exists()

    # files, no project: autolabel, report, then choosing what to label
    files = tmp_path / "files"
    files.mkdir()
    X, y = blobs(n_per=300, n_classes=3, dim=16, spread=0.8, seed=4)
    np.save(files / "X.npy", X)
    # new items: near the pool's rows, not in it
    np.save(files / "new.npy", (X[::5] + 0.05 * np.random.default_rng(5).standard_normal(X[::5].shape)).astype("f4"))
    pick = np.concatenate([np.flatnonzero(y == c)[:12] for c in range(3)])
    with open(files / "seed.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "label"], *[[i, f"c{y[i]}"] for i in pick]])
    file_truth = {str(i): f"c{c}" for i, c in enumerate(y)}
    for line in file_mode + choosing:
        r = _run(files, line)
        assert r.returncode == 0, (line, r.stderr[-2000:])
        ran += 1
        if "--out audit.csv" in line:  # a person verifies the sample
            _answer(files / "audit.csv", file_truth, files / "audit_done.csv")
    assert (files / "run" / "audit.json").exists()
    assert (files / "new_labels.parquet").exists()
    assert ran == len(project_loop) + len(simulate) + len(file_mode) + len(choosing)


def test_readme_python_example_runs_as_written():
    (body,) = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    X, truth = blobs(n_per=80, n_classes=3, dim=8, spread=1.0, seed=2)
    rng = np.random.default_rng(0)
    y = np.full(len(truth), -1)
    for c in range(3):
        keep = rng.choice(np.flatnonzero(truth == c), 10, replace=False)
        y[keep] = c
    unlabeled = np.flatnonzero(y < 0)
    rows = rng.choice(unlabeled, 30, replace=False)  # an audit: rows a person verified
    verified_labels = truth[rows]
    exec(compile(body, str(README), "exec"), {"X": X, "y": y, "rows": rows, "verified_labels": verified_labels})
