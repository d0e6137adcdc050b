"""The report: every section present, self-contained, correct on edge cases, and it really
renders in headless Chromium with no network request (skipped where Chromium is missing)."""
from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from labelseed.report import SECTIONS

from conftest import blobs, run_cli

pytest.importorskip("matplotlib", reason="the report needs labelseed[report] (matplotlib)")


def _run(tmp: Path, y: np.ndarray, labeled: list[tuple[int, str]], X: np.ndarray | None = None, *extra: str) -> Path:
    if X is None:
        X, _ = blobs(n_per=len(y) // 3, n_classes=3, dim=8, spread=1.0, seed=0)
    np.save(tmp / "X.npy", X)
    with open(tmp / "seed.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows(labeled)
    r = run_cli("autolabel", "--embeddings", str(tmp / "X.npy"), "--labels", str(tmp / "seed.csv"),
                "--out", str(tmp / "run"), "--quiet", *extra)
    assert r.returncode == 0, r.stderr
    r = run_cli("report", "--run", str(tmp / "run"))
    assert r.returncode == 0, r.stderr
    return tmp / "run" / "report"


def _check_page(report: Path) -> dict:
    page = (report / "report.html").read_text()
    for s in SECTIONS:
        assert f'<section id="{s}">' in page, s
    # self-contained: every src/href is inline data or an in-page anchor
    for ref in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert ref.startswith(("data:", "#")), ref
    rec = json.loads((report / "report.json").read_text())
    for png in ("curves", "confusion", "map", "balance"):
        assert (report / f"{png}.png").stat().st_size > 1000
    return rec


def test_report_of_a_normal_run(tmp_path):
    X, y = blobs(n_per=80, n_classes=3, dim=8, spread=1.0, seed=0)
    labeled = [(i, f"c{y[i]}") for c in range(3) for i in np.flatnonzero(y == c)[:10]]
    rec = _check_page(_run(tmp_path, y, labeled, X, "--target-precision", "0.9"))
    assert rec["summary"]["auto"] > 0
    assert sum(c["seed"] for c in rec["per_class"]) == 30
    assert np.array(rec["confusion"]["matrix"]).sum() == 30
    assert rec["map"]["method"] in ("UMAP", "PCA")
    assert len(rec["next_queries"]) == 20


def test_report_with_a_class_without_auto_labels(tmp_path):
    X, y = blobs(n_per=80, n_classes=3, dim=8, spread=1.0, seed=0)
    labeled = [(i, f"c{y[i]}") for c in range(3) for i in np.flatnonzero(y == c)[:10]]
    labeled += [(int(np.flatnonzero(y == 0)[20]), "rare"), (int(np.flatnonzero(y == 1)[20]), "rare")]
    rec = _check_page(_run(tmp_path, y, labeled, X, "--target-precision", "0.9"))
    rare = next(c for c in rec["per_class"] if c["class"] == "rare")
    assert rare["auto"] == 0 and not rare["meets_target"] and rare["more_labels_needed"] >= 1
    page = (tmp_path / "run" / "report" / "report.html").read_text()
    assert "Target not supported" in page and "rare" in page


def test_report_when_every_row_abstains(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8)).astype(np.float32)  # noise: nothing can meet 0.99
    y = rng.integers(0, 3, 200)
    labeled = [(i, f"c{y[i]}") for i in range(30)]
    rec = _check_page(_run(tmp_path, y, labeled, X, "--target-precision", "0.99"))
    assert rec["summary"]["auto"] == 0
    assert "Every row abstained" in (tmp_path / "run" / "report" / "report.html").read_text()


def test_report_of_a_single_class_run(tmp_path):
    X, y = blobs(n_per=40, n_classes=3, dim=8, spread=1.0, seed=0)
    labeled = [(i, "only") for i in range(10)]
    rec = _check_page(_run(tmp_path, y, labeled, X, "--allow-single-class"))
    assert rec["classes"] == ["only"] and rec["summary"]["auto"] == 0


def test_report_of_a_project_with_an_audit(tmp_path):
    from test_project import write_data, write_labels

    truth = write_data(tmp_path / "pool.csv")
    d = str(tmp_path / "proj")
    write_labels(tmp_path / "seed.csv", [(f"t{i}", truth[i]) for i in range(60)])
    assert run_cli("run", d, "--data", str(tmp_path / "pool.csv"), "--text-column", "text", "--model", "hashing",
                   "--labels", str(tmp_path / "seed.csv"), "--target-precision", "0.9", "--quiet").returncode == 0
    assert run_cli("audit", d, "--budget", "9", "--out", str(tmp_path / "audit.csv")).returncode == 0
    audited = [r["id"] for r in csv.DictReader(open(tmp_path / "audit.csv"))]
    write_labels(tmp_path / "verified.csv", [(i, truth[int(i[1:])]) for i in audited])
    assert run_cli("import", d, str(tmp_path / "verified.csv")).returncode == 0
    r = run_cli("report", "--project", d, "--out", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    rec = _check_page(tmp_path / "rep")
    assert rec["audit"]["n_verified"] == 9
    assert (tmp_path / "rep" / "audit.png").exists()
    assert any(":" in q for q in [json.dumps(rec["next_queries"])])
    again = run_cli("report", "--project", d, "--out", str(tmp_path / "rep"))
    assert again.returncode == 2 and "--force" in again.stderr


# ------------------------------------------------------------ headless Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _cdp(report_html: Path) -> tuple[list[str], list[str], dict, bytes]:
    """Load the page in headless Chromium through the DevTools protocol; return (request
    URLs, failed requests, page facts, screenshot PNG)."""
    websocket = pytest.importorskip("websocket", reason="needs websocket-client (test extra)")
    user = Path(tempfile.mkdtemp(prefix="chromium-"))
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--remote-debugging-port=0", f"--user-data-dir={user}",
         "--window-size=1280,2000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = user / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        counter = iter(range(1, 10_000))
        requests, failed, events = [], [], []

        def call(method: str, **params: object) -> dict:
            i = next(counter)
            ws.send(json.dumps({"id": i, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("id") == i:
                    return msg.get("result", {})
                events.append(msg)

        call("Network.enable")
        call("Page.enable")
        call("Page.navigate", url=report_html.resolve().as_uri())
        deadline = time.time() + 30
        loaded = False
        while time.time() < deadline and not loaded:
            events.append(json.loads(ws.recv()))
            loaded = any(e.get("method") == "Page.loadEventFired" for e in events)
        assert loaded, "the page did not finish loading"
        facts = call("Runtime.evaluate", returnByValue=True, expression="""({
            sections: [...document.querySelectorAll('section')].map(s => s.id),
            images: document.images.length,
            broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length,
            height: document.body.scrollHeight})""")["result"]["value"]
        shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        for e in events:
            if e.get("method") == "Network.requestWillBeSent":
                requests.append(e["params"]["request"]["url"])
            if e.get("method") == "Network.loadingFailed":
                failed.append(f"{e['params'].get('errorText')}")
        ws.close()
        return requests, failed, facts, base64.b64decode(shot["data"])
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(user, ignore_errors=True)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian chromium (`apt-get install -y chromium`, done by make test)")
def test_report_opens_in_headless_chromium_offline(tmp_path):
    from PIL import Image

    from labelseed.datasets import digits, hide_labels

    X, y = digits()  # the demo's digits run: 10 random labels per class, seed 0
    seed = hide_labels(y, 10, random_state=0)
    labeled = [(int(i), str(seed[i])) for i in np.flatnonzero(seed != None)]  # noqa: E711
    report = _run(tmp_path, y, labeled, X)
    requests, failed, facts, png = _cdp(report / "report.html")
    assert not failed, failed
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), requests
    assert facts["sections"] == list(SECTIONS)
    assert facts["images"] >= 4 and facts["broken"] == 0
    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
    assert img.std() > 10 and (img < 128).mean() > 0.005  # text and figures, not a blank page


def test_map_falls_back_to_pca_without_umap(monkeypatch):
    import sys

    from labelseed.report import project_2d

    X, _ = blobs(n_per=40, n_classes=3, dim=8, seed=1)
    monkeypatch.setitem(sys.modules, "umap", None)
    xy, method = project_2d(X, np.arange(len(X)))
    assert method == "PCA" and xy.shape == (120, 2) and np.isfinite(xy).all()
