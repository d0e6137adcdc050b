"""`labelseed serve`: the security rules, request by request, and the human loop end to end in
a real Chromium driven by Playwright (keyboard only)."""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import EXE, run_cli, write_text_pool

pytest.importorskip("starlette")
pytest.importorskip("httpx")

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _text_project(tmp: Path, n: int = 120, xss: bool = False, embed: bool = True) -> tuple[Path, dict[str, str]]:
    truth = write_text_pool(tmp / "pool.csv", n, words=3, first_prefix=XSS if xss else "")
    proj = tmp / "proj"
    assert run_cli("init", str(proj), "--data", str(tmp / "pool.csv"), "--text-column", "text").returncode == 0
    if embed:
        assert run_cli("embed", str(proj), "--model", "hashing", "--quiet").returncode == 0
    return proj, truth


def _client(proj: Path):
    from starlette.testclient import TestClient

    from labelseed.web import create_app

    app = create_app(proj, token="T0KEN", allowed_hosts={"testserver"}, user="tester")
    return TestClient(app, follow_redirects=False), app


# ------------------------------------------------------------------ security, request by request


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    proj, truth = _text_project(tmp, xss=True)
    (tmp / "xss.csv").write_text("id,label\n" + f't0,"{XSS}"\n' + "t1,food\n")
    assert run_cli("import", str(proj), str(tmp / "xss.csv")).returncode == 0
    client, app = _client(proj)
    return client, app, proj


def test_every_request_needs_the_token(served):
    client, app, _ = served
    client.cookies.clear()
    assert client.get("/").status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    assert client.get("/static/app.js").status_code == 403
    r = client.get("/label?token=T0KEN")
    assert r.status_code == 303 and r.headers["location"] == "/label"
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    assert client.get("/").status_code == 200


def test_headers_forbid_inline_script_framing_and_sniffing(served):
    client, *_ = served
    client.get("/?token=T0KEN")
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in r.text.replace('<script type="module" src="/static/app.js"></script>', "")


def test_a_foreign_host_header_is_refused(served):
    client, *_ = served
    client.get("/?token=T0KEN")
    assert client.get("/", headers={"Host": "evil.example:80"}).status_code == 400


def test_state_changes_need_the_csrf_token_and_the_same_origin(served):
    client, app, proj = served
    client.get("/?token=T0KEN")
    body = {"row": 5, "label": "food"}
    assert client.post("/api/label", json=body).status_code == 403
    assert client.post("/api/label", json=body, headers={"X-CSRF-Token": "nope"}).status_code == 403
    ok = {"X-CSRF-Token": app.state.csrf}
    assert client.post("/api/label", json=body, headers={**ok, "Origin": "http://evil.example"}).status_code == 403
    assert client.get("/api/label").status_code == 405  # state changes are POST only
    r = client.post("/api/label", json=body, headers={**ok, "Origin": "http://testserver"})
    assert r.status_code == 200, r.text
    with sqlite3.connect(proj / "labelseed.db") as db:
        got = db.execute("SELECT label, source, who FROM labels WHERE row = 5").fetchall()
    assert got == [("food", "web", "tester")]


def test_text_labels_and_class_names_are_escaped(served):
    client, *_ = served
    client.get("/?token=T0KEN")
    for path in ("/", "/label", "/audit"):
        html = client.get(path).text
        assert XSS not in html, path
        assert "<img src=x" not in html and '<script>alert' not in html, path
    assert "&lt;script&gt;" in client.get("/").text  # the class table shows the label, as text
    assert re.search(r"120 text items, 120 embedded, [23] labeled by people", client.get("/").text)


def test_bad_json_and_bad_values_are_one_line_errors(served):
    client, app, _ = served
    client.get("/?token=T0KEN")
    ok = {"X-CSRF-Token": app.state.csrf}
    for body in ('{"row": "x", "label": "a"}', '{"row": 999999, "label": "a"}', '{"row": 1, "label": ""}',
                 "[1, 2]", "not json", '{"kind": "rm -rf", "budget": 3}'):
        url = "/api/pick" if "kind" in body else "/api/label"
        r = client.post(url, content=body, headers={**ok, "Content-Type": "application/json"})
        assert r.status_code == 400 and "error" in r.json(), (body, r.text)


def _png(path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(path)


def test_images_are_served_only_by_row_from_inside_the_image_folder(tmp_path):
    pytest.importorskip("PIL")
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(3):
        _png(root / f"{i}.png")
    (root / "fake.png").write_text("<html><script>alert(1)</script></html>")
    assert run_cli("init", str(tmp_path / "proj"), "--image-dir", str(root)).returncode == 0
    outside = tmp_path / "secret.png"
    _png(outside)
    sibling = tmp_path / "imgs-evil"  # shares the root's name as a prefix
    sibling.mkdir()
    _png(sibling / "x.png")
    os.symlink(outside, root / "link.png")
    client, _ = _client(tmp_path / "proj")
    client.get("/?token=T0KEN")
    ok = client.get("/item/0/image")
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
    assert ok.headers["x-content-type-options"] == "nosniff"
    # records pointing out of the root (as a tampered store would): each refused
    evil = {0: f"{root}/../secret.png", 1: str(outside), 2: str(sibling / "x.png")}
    with sqlite3.connect(tmp_path / "proj" / "labelseed.db") as db:
        rows = dict(db.execute("SELECT id, row FROM items").fetchall())
        for row, content in evil.items():
            db.execute("UPDATE items SET content = ? WHERE row = ?", (content, row))
        db.execute("UPDATE items SET content = ? WHERE row = ?", (str(root / "link.png"), rows["fake.png"]))
    for row in evil:
        assert client.get(f"/item/{row}/image").status_code == 404, row
    assert client.get(f"/item/{rows['fake.png']}/image").status_code == 404  # the symlink leaves the root
    with sqlite3.connect(tmp_path / "proj" / "labelseed.db") as db:
        db.execute("UPDATE items SET content = ? WHERE row = ?", (str(root / "fake.png"), rows["fake.png"]))
    assert client.get(f"/item/{rows['fake.png']}/image").status_code == 415  # HTML named .png: never served
    for url in ("/item/..%2F..%2Fsecret.png/image", "/item/%2e%2e/image", "/item/-1/image", "/item/99/image",
                "/static/..%2F..%2Fapp.py", "/static/../app.py"):
        r = client.get(url)
        assert r.status_code == 404, (url, r.status_code)


# ------------------------------------------------------------------ a real browser, keyboard only


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("chromium is not installed (make test installs it where apt-get exists)")
    pytest.importorskip("playwright")
    return path


def _answer_key(page, truth: dict[str, str], suggested_ok: bool = False) -> None:
    """Press the key for the true class of the item on screen (adding the class if new)."""
    item_id = page.inner_text("#item-id").removeprefix("id ").strip()
    want = truth[item_id]
    if suggested_ok:
        shown = page.inner_text("#item-suggested")
        if f"label: {want} " in shown + " ":
            page.keyboard.press("Enter")
            return
    names = [li.get_attribute("data-label") for li in page.query_selector_all("#classes li")]
    if want in names[:9]:
        page.keyboard.press(str(names.index(want) + 1))
    else:
        page.keyboard.press("n")
        page.keyboard.type(want)
        page.keyboard.press("Enter")


def _pick_and_answer(page, base: str, kind: str, truth: dict[str, str]) -> None:
    """Home's pick button for `kind`, then the 20 picked items answered by keyboard."""
    page.goto(base + "/")
    page.click(f"button[data-pick={kind}]")
    page.wait_for_selector("#message:not(:empty)")
    assert "items picked" in page.inner_text("#message"), page.inner_text("#message")
    page.goto(base + ("/audit" if kind == "audit" else "/label"))
    for k in range(20):
        page.wait_for_selector(f"#position:has-text('Item {k + 1} of')")
        _answer_key(page, truth, suggested_ok=kind == "audit")
    page.wait_for_selector("#position:has-text('All 20 items')")


def test_the_loop_in_chromium_by_keyboard(tmp_path):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    proj, truth = _text_project(tmp_path, n=150, embed=False)  # from `labelseed init` on, all in the page
    proc = subprocess.Popen([EXE, "serve", str(proj), "--user", "ana"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=\S+", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        base, url = m.group(1), m.group(0)
        db = sqlite3.connect(proj / "labelseed.db")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            errors, hosts = [], set()
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda req: hosts.add(re.sub(r"^(\w+://[^/]+).*", r"\1", req.url)))
            page.goto(url)
            shots = {"home": page.screenshot()}
            page.goto(base + "/run")
            page.focus("#embed-hashing")
            page.keyboard.press("Enter")
            page.wait_for_selector("#job:has-text('embedded 150 items')", timeout=120_000)
            assert db.execute("SELECT COUNT(*) FROM embedded WHERE error IS NULL").fetchone()[0] == 150
            _pick_and_answer(page, base, "select", truth)
            shots["label"] = page.screenshot()
            got = db.execute("SELECT items.id, labels.label, source, who FROM labels JOIN items USING(row)").fetchall()
            assert len(got) == 20 and all(s == "web" and w == "ana" for _, _, s, w in got)
            assert all(truth[i] == lab for i, lab, _, _ in got)
            # Backspace undoes the last one (a retraction in the history), then it is labeled again
            page.keyboard.press("Backspace")
            page.wait_for_selector("#message:has-text('undone')")
            assert len(dict(db.execute("SELECT row, label FROM labels WHERE seq IN (SELECT MAX(seq) FROM labels "
                                       "GROUP BY row) AND label != ''").fetchall())) == 19
            _answer_key(page, truth)
            page.wait_for_selector("#position:has-text('All 20 items')")
            # 40 more in two rounds, asked for by the engine. select and query draw at random with known
            # probabilities, so every label calibrates, weighted by 1 / probability; the weights cost
            # effective sample size, and about 20 labels a class is what certifies 0.95 here
            _pick_and_answer(page, base, "query", truth)
            _pick_and_answer(page, base, "query", truth)
            # fit and apply in the background
            page.goto(base + "/run")
            page.keyboard.press("Tab")  # keyboard only: focus moves through the nav to the button
            page.focus("#fit")
            page.keyboard.press("Enter")
            page.wait_for_selector("#job:has-text('auto-labels')", timeout=120_000)
            shots["run"] = page.screenshot()
            runs = db.execute("SELECT status FROM runs").fetchall()
            assert runs == [("applied",)]
            # the run's report, written in the background and shown under its own strict CSP
            page.focus("#report")
            page.keyboard.press("Enter")
            page.wait_for_selector("#job:has-text('report written')", timeout=120_000)
            page.goto(base + "/report")
            assert page.inner_text("#classes h2") == "Per class"
            assert len(page.query_selector_all("img")) >= 4  # the figures, as data: images the CSP allows
            shots["report"] = page.screenshot()
            # review a class: bulk accept above its threshold, undo, redo (keyboard: focus + Enter)
            cls = db.execute("SELECT label, COUNT(*) FROM auto_labels GROUP BY label ORDER BY 2 DESC").fetchone()[0]
            # first set its threshold by hand with the slider (keyboard), save, apply: labels.csv follows it
            page.goto(base + "/thresholds?cls=" + cls)
            page.wait_for_selector("#slider-info:has-text('expected precision')")
            page.focus("#slider")
            for _ in range(3):
                page.keyboard.press("ArrowRight")  # a higher threshold: fewer rows
            # the shown value follows the slider after a short debounce: wait until it shows the position
            page.wait_for_function(
                "() => { const s = document.getElementById('slider');"
                " const td = JSON.parse(document.getElementById('thresholds-data').textContent);"
                " return document.getElementById('slider-value').textContent"
                " === Number(td.thresholds[Number(s.value)]).toFixed(3); }")
            page.wait_for_selector("#slider-info:has-text('against the fitted threshold')")
            assert "coverage" in page.inner_text("#slider-info")
            shots["thresholds"] = page.screenshot()
            t_new = float(page.inner_text("#slider-value"))
            page.focus("#save-threshold")
            page.keyboard.press("Enter")
            page.wait_for_selector("#message:has-text('saved')")
            run_id = db.execute("SELECT run_id FROM runs").fetchone()[0]
            import json as _json

            summary = _json.loads(db.execute("SELECT summary FROM runs").fetchone()[0])
            entry = next(c for c in summary["classes"] if c["label"] == cls)
            # the page shows 3 decimals of the threshold it saved
            assert entry["set_by"] == "hand" and entry["set_by_who"] == "ana" and abs(entry["threshold"] - t_new) <= 5e-4
            t_new = entry["threshold"]
            r = run_cli("apply", str(proj), "--out", str(tmp_path / "hand.csv"))
            assert r.returncode == 0 and "set by hand" in r.stdout, r.stdout + r.stderr
            rows = list(csv.DictReader(open(tmp_path / "hand.csv")))
            auto = [float(x["confidence"]) for x in rows if x["source"] == "auto" and x["label"] == cls]
            assert auto and min(auto) >= t_new - 1e-6, (min(auto), t_new)
            assert run_id
            page.goto(base + "/review?cls=" + cls)
            shots["review"] = page.screenshot()
            page.focus("#bulk-preview")
            page.keyboard.press("Enter")
            page.wait_for_selector("#bulk-info:has-text('would be accepted')")
            n_preview = int(page.inner_text("#bulk-info").split()[0])
            assert n_preview > 0
            page.focus("#bulk-accept")
            page.keyboard.press("Enter")
            page.wait_for_selector("#bulk-info:has-text('(accept-')")

            def accepted() -> int:
                q = ("SELECT COUNT(*) FROM labels WHERE seq IN (SELECT MAX(seq) FROM labels GROUP BY row) "
                     "AND source LIKE 'accept:%' AND label = ?")
                return db.execute(q, (cls,)).fetchone()[0]
            assert accepted() == n_preview
            assert db.execute("SELECT COUNT(*) FROM origins WHERE origin = 'accepted'").fetchone()[0] == n_preview
            page.focus("#bulk-undo")
            page.keyboard.press("Enter")
            page.wait_for_selector("#bulk-info:has-text('undone')")
            assert accepted() == 0
            page.focus("#bulk-redo")
            page.keyboard.press("Enter")
            page.wait_for_selector("#bulk-info:has-text('(accept-')")
            assert accepted() == n_preview

            # an audit of 20 auto-labels, verified by keyboard
            _pick_and_answer(page, base, "audit", truth)
            page.wait_for_selector("#audit-live:has-text('from 20 verified')")  # the running estimate, live
            page.goto(base + "/audit")
            assert "Realized precision" in page.inner_text("#audit-total")
            shots["audit"] = page.screenshot()
            n_audit = db.execute("SELECT COUNT(*) FROM audits").fetchone()[0]
            web = db.execute("SELECT COUNT(DISTINCT row) FROM labels WHERE source = 'web' AND who = 'ana'").fetchone()[0]
            assert n_audit == 20 and web == 80  # 60 labeled + 20 verified (accepted rows count once looked at)
            # find similar from an item, and label its whole neighbourhood in one go
            first = db.execute("SELECT row FROM labels WHERE source = 'web' ORDER BY seq LIMIT 1").fetchone()[0]
            page.goto(base + f"/similar?row={first}")
            page.wait_for_selector("#position:has-text('of 20')")
            shots["similar"] = page.screenshot()
            page.focus("#label-all-class")
            page.keyboard.type("neighbourhood")
            page.keyboard.press("Enter")
            page.wait_for_selector("#message:has-text('labeled all 20')")
            q = ("SELECT COUNT(*) FROM labels WHERE seq IN (SELECT MAX(seq) FROM labels GROUP BY row) "
                 "AND label = 'neighbourhood'")
            assert db.execute(q).fetchone()[0] == 20
            browser.close()
        assert not errors, errors
        assert hosts == {base}, hosts
        from PIL import Image

        for name, png in shots.items():
            img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
            assert img.std() > 5, f"the {name} view looks blank"
    finally:
        proc.terminate()
        proc.wait(10)


def _fitted(tmp_path: Path, seed: int) -> tuple[Path, dict[str, str], dict]:
    """A 150-text project with 60 random rows labeled in the page's way and one fit."""
    import warnings

    from labelseed.project import Project

    proj, truth = _text_project(tmp_path, n=150)
    rng = np.random.default_rng(seed)
    with Project.open(proj) as p:
        ids = p.store.ids()
        for r in rng.choice(150, 60, replace=False):
            p.label_items([int(r)], truth[ids[r]], who="x")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = p.fit()
    return proj, truth, run


def test_bulk_accepted_labels_spread_but_never_calibrate_and_undo_restores(tmp_path):
    import warnings

    from labelseed.project import Project

    proj, truth, run = _fitted(tmp_path, 2)
    with Project.open(proj) as p:
        assert run["summary"]["n_auto"] > 0
        before = run["summary"]["estimate"]["calibrated_by"]
        from labelseed.ops import RunArrays, bulk_preview

        ra = RunArrays.load(proj / "runs" / run["run_id"], run["summary"], run["run_id"])
        label = ra.classes[0]
        pv = bulk_preview(ra, label, 0.0, set(p.store.current_labels()))
        batch = p.accept(pv.rows, label, who="x")
        assert sum(o == "accepted" for o in p.store.label_origins().values()) == len(pv.rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = p.fit()
        est = again["summary"]["estimate"]
        assert est["labels"]["accepted"] == len(pv.rows)
        assert est["calibrated_by"] == before  # the accepted rows did not join the calibration
        n_labels = len(p.labels())
        assert p.undo_accept(batch, who="x") == len(pv.rows)
        assert len(p.labels()) == n_labels - len(pv.rows)
        assert not any(o == "accepted" for o in p.store.label_origins().values())


def test_the_home_page_says_what_the_last_runs_estimate_rests_on(tmp_path):
    """The page states the run's own basis (as `status` does), not a fixed phrase: a
    cross-validated run's assumption, then an audit-certified run's audit."""
    import html
    import warnings

    from labelseed.project import Project

    proj, truth, run = _fitted(tmp_path, 3)
    client, _ = _client(proj)
    client.get("/?token=T0KEN")
    home = html.unescape(client.get("/").text)
    assert "The estimate is cross-validated on the labels; it assumes " + run["summary"]["estimate"]["assumes"] in home
    with Project.open(proj) as p:
        _, sel = p.audit(30)
        ids = p.store.ids()
        p.import_labels({ids[r]: truth[ids[r]] for r in sel.rows})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p.fit(certify="audit")
    home = html.unescape(client.get("/").text)
    assert "The estimate is certified by an audit" in home and "it assumes" not in home


def test_a_threshold_set_by_hand_decides_what_apply_writes_and_the_report_says_so(tmp_path):
    import json

    from labelseed.project import Project

    proj, truth, run = _fitted(tmp_path, 3)
    with Project.open(proj) as p:
        label = next(c["label"] for c in run["summary"]["classes"] if c["n_accepted"])
        entry = p.set_threshold(label, 0.999, who="ana")
        assert entry["set_by"] == "hand" and entry["threshold"] == 0.999
        p.apply(out=tmp_path / "l.csv")
    rows = list(csv.DictReader(open(tmp_path / "l.csv")))
    mine = [float(r["confidence"]) for r in rows if r["source"] == "auto" and r["label"] == label]
    assert all(c >= 0.999 - 1e-6 for c in mine)
    assert len(mine) == entry["n_accepted"]
    r = run_cli("report", "--project", str(proj), "--out", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "set by hand" in html
    st = json.loads(run_cli("status", str(proj), "--json").stdout)
    assert st["last_run"]["per_class"][label]["threshold"] == 0.999


def test_gap_picks_similar_sets_and_the_report_route(tmp_path):
    import json

    from labelseed.project import Project

    proj, truth, _ = _fitted(tmp_path, 4)
    with Project.open(proj) as p:
        human = set(p.store.current_labels())
    client, app = _client(proj)
    client.get("/?token=T0KEN")
    ok = {"X-CSRF-Token": app.state.csrf}
    r = client.post("/api/pick", json={"kind": "gaps", "budget": 10}, headers=ok)
    assert r.status_code == 200 and r.json()["rows"] == 10, r.text
    with sqlite3.connect(proj / "labelseed.db") as db:
        picked = [row for (row,) in db.execute("SELECT row FROM requests WHERE strategy = 'gaps'")]
    assert len(picked) == 10 and not set(picked) & human
    assert client.get("/similar?row=1&row=2&row=3").status_code == 200
    assert client.get("/similar").status_code == 400
    assert client.get("/report").status_code == 404  # none written yet
    assert client.post("/api/report", json={}, headers=ok).status_code == 200
    for _ in range(600):
        state = client.get("/api/job").json()
        if state["state"] != "running":
            break
        time.sleep(0.1)
    assert state["state"] == "done", state
    r = client.get("/report")
    csp = r.headers["content-security-policy"]
    assert r.status_code == 200 and "Per class" in r.text
    assert "'sha256-" in csp and "unsafe-inline" not in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert json.loads(client.get("/api/job").text)["state"] == "done"


def test_the_grid_labels_every_selected_item_with_one_key(tmp_path):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    proj, truth = _text_project(tmp_path, n=60)
    assert run_cli("select", str(proj), "--budget", "10").returncode == 0
    proc = subprocess.Popen([EXE, "serve", str(proj), "--user", "bo"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://\S+", proc.stdout.readline()).group(0)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            errors = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(url)
            page.goto(url.split("/?")[0] + "/label")
            page.wait_for_selector("#position:has-text('Item 1 of 10')")
            page.keyboard.press("g")
            page.wait_for_selector("#grid .card")
            page.keyboard.press(" ")  # select the first card
            page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowRight")
            page.keyboard.press(" ")  # and the third
            assert len(page.query_selector_all("#grid .card.selected")) == 2
            page.keyboard.press("n")
            page.keyboard.type("picked-pair")
            page.keyboard.press("Enter")
            page.wait_for_selector("#message:has-text('labeled 2 items')")
            browser.close()
        assert not errors, errors
        with sqlite3.connect(proj / "labelseed.db") as db:
            got = db.execute("SELECT row, source, who FROM labels WHERE label = 'picked-pair'").fetchall()
            first_two = [r for (r,) in db.execute("SELECT row FROM requests ORDER BY rank LIMIT 3")]
        assert sorted(r for r, _, _ in got) == sorted([first_two[0], first_two[2]])
        assert {(s, w) for _, s, w in got} == {("web", "bo")}
    finally:
        proc.terminate()
        proc.wait(10)
