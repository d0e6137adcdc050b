"""--force replaces only what labelseed wrote: never an input, a project's store, or a user's folder."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from conftest import blobs, run_cli, seed_labels
from test_project import write_data


def _digest(path: Path) -> str:
    if path.is_dir():
        return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes()
                                       for p in sorted(path.rglob("*")) if p.is_file())).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def files(tmp_path):
    X, y = blobs(n_per=30, n_classes=3, spread=1.0, seed=1)
    codes = seed_labels(y, 6)
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "X.npy", X)
    (tmp_path / "in" / "seed.csv").write_text(
        "id,label\n" + "".join(f"{i},c{codes[i]}\n" for i in np.flatnonzero(codes >= 0)))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file\n")
    return tmp_path


def _autolabel(d: Path, out: Path, *extra: str):
    return run_cli("autolabel", "--embeddings", str(d / "in" / "X.npy"), "--labels", str(d / "in" / "seed.csv"),
                   "--target-precision", "0.8", "--out", str(out), "--quiet", "--cache-dir", str(d / "cache"), *extra)


@pytest.mark.parametrize("case,out,phrase", [
    ("folder holding the inputs", "in", "contains the input"),
    ("a user's folder", "mine", "did not write"),
    ("the embeddings file itself", "in/X.npy", "is the input"),
])
def test_autolabel_force_never_replaces_inputs_or_user_folders(files, case, out, phrase):
    before = {p: _digest(files / p) for p in ("in", "mine")}
    r = _autolabel(files, files / out, "--force")
    assert r.returncode == 2, (case, r.stderr)
    assert phrase in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert {p: _digest(files / p) for p in ("in", "mine")} == before


def test_autolabel_force_replaces_its_own_output(files):
    assert _autolabel(files, files / "run").returncode == 0
    assert (files / "run" / ".labelseed-output").exists()
    again = _autolabel(files, files / "run")
    assert again.returncode == 2 and "--force" in again.stderr
    assert _autolabel(files, files / "run", "--force").returncode == 0
    r = run_cli("report", "--run", str(files / "run"), "--out", str(files / "run"), "--force")
    assert r.returncode == 2 and "is the input" in r.stderr


def test_select_out_never_overwrites_its_labels(files):
    before = _digest(files / "in" / "seed.csv")
    r = run_cli("select", "--embeddings", str(files / "in" / "X.npy"), "--labels", str(files / "in" / "seed.csv"),
                "--budget", "3", "--out", str(files / "in" / "seed.csv"), "--force")
    assert r.returncode == 2 and "is the input" in r.stderr
    assert _digest(files / "in" / "seed.csv") == before


@pytest.fixture
def project(tmp_path):
    write_data(tmp_path / "pool.csv", n_per=10)
    d = tmp_path / "proj"
    assert run_cli("init", str(d), "--data", str(tmp_path / "pool.csv"), "--text-column", "text").returncode == 0
    assert run_cli("embed", str(d), "--model", "hashing", "--quiet").returncode == 0
    assert run_cli("select", str(d), "--budget", "5").returncode == 0
    return d


@pytest.mark.parametrize("args,phrase", [
    (("export", "{p}", "--out", "{p}/labelseed.db", "--force"), "project's store"),
    (("export", "{p}", "--out", "{p}/embeddings.npy", "--force"), "project's store"),
    (("export", "{p}", "--out", "{p}", "--force"), "project's folder"),
    (("export", "{p}", "--out", "{p}/../tasks.xml"), "export writes a .csv"),
    (("apply", "{p}", "--out", "{p}/labelseed.db", "--force"), "project's store"),
])
def test_project_store_is_never_an_output(project, args, phrase):
    before = _digest(project)
    r = run_cli(*[a.format(p=project) for a in args])
    assert r.returncode == 2 and phrase in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert _digest(project) == before
