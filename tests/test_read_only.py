"""Read-only and damaged projects: the commands that only read work on a project nobody may
write to (a read-only mount as root, a write-protected folder otherwise); the ones that write
say so before any work; a damaged database points at the labels backup, and that backup
brings the labels back."""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import EXE, run_cli

LABELSEED = str(EXE)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    d = tmp_path_factory.mktemp("ro")
    (d / "pool.csv").write_text("id,text\n" + "".join(f"t{i},word{i % 3} thing {i}\n" for i in range(60)))
    (d / "seed.csv").write_text("id,label\n" + "".join(f"t{i},c{i % 3}\n" for i in range(0, 60, 4)))
    proj = d / "proj"
    for args in (("init", str(proj), "--data", str(d / "pool.csv"), "--text-column", "text"),
                 ("embed", str(proj), "--model", "hashing", "--quiet"),
                 ("import", str(proj), str(d / "seed.csv")),
                 ("fit", str(proj), "--target-precision", "0.6", "--quiet"),
                 ("apply", str(proj))):
        r = run_cli(*args)
        assert r.returncode == 0, (args, r.stderr)
    return d


def _read_only_runner(folder: Path):
    """Run the CLI with `folder` read-only: a read-only bind mount in a private mount namespace
    when root (root ignores permission bits), else the folder write-protected."""
    env = {**os.environ, "XDG_CACHE_HOME": str(folder.parent / "xdg")}
    if os.geteuid() == 0:
        probe = subprocess.run(["unshare", "-m", "sh", "-c",
                                'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && ! touch "$0/.probe"',
                                str(folder)], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"cannot make a read-only mount here: {probe.stderr.strip()}")

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
            return subprocess.run(["unshare", "-m", "sh", "-c", script, str(folder), LABELSEED, *args],
                                  capture_output=True, text=True, env=env)
        return run, lambda: None
    for p in [folder, *folder.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)

    def restore() -> None:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)

    def run_plain(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([LABELSEED, *args], capture_output=True, text=True, env=env)
    return run_plain, restore


def test_reading_commands_work_on_a_read_only_project_and_writing_ones_refuse(project, tmp_path):
    proj = tmp_path / "proj"
    shutil.copytree(project / "proj", proj)
    before = _digest(proj)
    run, restore = _read_only_runner(proj)
    try:
        st = run("status", str(proj))
        assert st.returncode == 0, st.stderr
        assert "last run" in st.stdout and "auto" in st.stdout
        js = run("status", str(proj), "--json")
        assert js.returncode == 0 and '"labeled": 15' in js.stdout
        ex = run("export", str(proj), "--items", "all", "--out", str(tmp_path / "items.csv"))
        assert ex.returncode == 0, ex.stderr
        assert len(list(csv.DictReader(open(tmp_path / "items.csv")))) == 60
        hist = run("export", str(proj), "--labels-history", "--out", str(tmp_path / "history.csv"))
        assert hist.returncode == 0, hist.stderr
        assert len(list(csv.DictReader(open(tmp_path / "history.csv")))) == 15
        ap = run("apply", str(proj), "--out", str(tmp_path / "labels.csv"))
        assert ap.returncode == 0, ap.stderr
        assert "read-only" in ap.stderr
        assert (tmp_path / "labels.csv").read_text() == (project / "proj" / "labels.csv").read_text()
        rep = run("report", "--project", str(proj), "--out", str(tmp_path / "report"))
        assert rep.returncode == 0, rep.stderr
        assert (tmp_path / "report" / "report.html").exists()
        for args, what in [(("import", str(proj), str(project / "seed.csv")), "import"),
                           (("fit", str(proj), "--quiet"), "fit"),
                           (("select", str(proj), "--budget", "3", "--out", str(tmp_path / "s.csv")), "select"),
                           (("audit", str(proj), "--budget", "3", "--out", str(tmp_path / "a.csv")), "audit"),
                           (("embed", str(proj), "--model", "hashing", "--force"), "embed")]:
            r = run(*args)
            assert r.returncode == 2, (what, r.stderr)
            assert f"`{what}` writes to the project" in r.stderr and "Traceback" not in r.stderr, (what, r.stderr)
        r = run("report", "--project", str(proj))  # its default output is inside the project
        assert r.returncode == 2 and "not writable" in r.stderr and "Traceback" not in r.stderr, r.stderr
    finally:
        restore()
    assert _digest(proj) == before


def test_a_damaged_database_points_at_the_labels_backup_which_restores_them(project, tmp_path):
    proj = tmp_path / "proj"
    shutil.copytree(project / "proj", proj)
    backup = proj / "backups" / "labels.csv"
    assert backup.exists()
    db = proj / "labelseed.db"
    db.write_bytes(b"garbage" * 1000)
    for side in ("-wal", "-shm"):
        Path(str(db) + side).unlink(missing_ok=True)
    r = run_cli("status", str(proj))
    assert r.returncode == 2 and "is damaged" in r.stderr and str(backup) in r.stderr, r.stderr
    assert db.read_bytes() == b"garbage" * 1000  # never deleted or rewritten
    new = tmp_path / "new"
    assert run_cli("init", str(new), "--data", str(project / "pool.csv"), "--text-column", "text").returncode == 0
    r = run_cli("import", str(new), str(backup))
    assert r.returncode == 0 and "15 new" in r.stdout, r.stderr
    got = {row["id"]: row["label"] for row in csv.DictReader(open(new / "backups" / "labels.csv"))}
    want = {row["id"]: row["label"] for row in csv.DictReader(open(project / "seed.csv"))}
    assert got == want


def test_a_project_from_before_draws_were_recorded(project, tmp_path):
    """A project made before select/query recorded their draw probabilities (no `draws` table):
    read-only, every reading command still works; opened writable, the table is added and the
    next drawn selection is recorded in it."""
    import json
    import sqlite3

    proj = tmp_path / "proj"
    shutil.copytree(project / "proj", proj)
    con = sqlite3.connect(proj / "labelseed.db")
    con.execute("DROP TABLE draws")
    con.commit()
    con.close()
    before = _digest(proj)
    run, restore = _read_only_runner(proj)
    try:
        st = run("status", str(proj), "--json")
        assert st.returncode == 0, st.stderr
        assert json.loads(st.stdout)["label_origins"] == {"random": 15}
    finally:
        restore()
    assert _digest(proj) == before
    r = run_cli("select", str(proj), "--budget", "3", "--out", str(tmp_path / "s.csv"))
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(proj / "labelseed.db")
    n, = con.execute("SELECT COUNT(*) FROM draws").fetchone()
    con.close()
    assert n == 3
