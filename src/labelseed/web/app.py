"""`labelseed serve`: a local page for the human steps (label, audit, run, find similar).

A Starlette app over the same operations the CLI uses (:class:`labelseed.project.Project`,
:mod:`labelseed.ops`). Pages are server-rendered with autoescaping; the one script (``app.js``,
shipped in the wheel) renders items with ``textContent`` only and posts JSON with the CSRF token.

Security, per request: the Host header must be the served address (DNS rebinding); the
per-launch token must be in the cookie (set from the printed URL's ``?token=``); a POST needs
the CSRF token header and, when the browser sends one, a same-origin Origin; every response
carries a Content-Security-Policy without inline script or eval, ``nosniff`` and
``frame-ancestors 'none'``. Images are served only by item row, from the project's own records,
inside the project's image folder, with a Content-Type taken from the file's magic bytes.
"""
from __future__ import annotations

import hmac
import json
import re
import logging
import os
import numbers
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..runs import basis_sentence
from ..exceptions import InputError

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
COOKIE = "labelseed_token"
#: items per page of the label and audit views (fixed: the server pages, the browser never asks for more)
PAGE = 50
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
#: the only image types served, recognised by their first bytes (never by the file name)
IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"), (b"BM", "image/bmp"))
REQUEST_KINDS = ("select", "query", "audit")


@dataclass
class Job:
    """The background fit + apply the Run view starts (one at a time)."""

    state: str = "idle"  # idle | running | done | failed
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    run_id: str | None = None
    started: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def public(self) -> dict[str, Any]:
        return {"state": self.state, "stage": self.stage, "done": self.done, "total": self.total,
                "message": self.message, "run_id": self.run_id,
                "seconds": round(time.time() - self.started, 1) if self.started else 0.0}


def _image_type(head: bytes) -> str | None:
    for magic, kind in IMAGE_MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def create_app(folder: str | Path, *, token: str, allowed_hosts: set[str], user: str) -> Any:
    """The Starlette app for one project. `token`: the per-launch secret; `allowed_hosts`: the
    Host header values accepted (``127.0.0.1:PORT``, ``localhost:PORT``); `user`: who the
    labels given in the page are recorded as."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from ..project import Project

    folder = Path(folder).resolve()
    csrf = secrets.token_urlsafe(24)
    job = Job()
    runs: dict[str, Any] = {}  # run_id -> ops.RunArrays, loaded once per run
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))

    def project() -> Project:
        return Project.open(folder)

    def page(name: str, **context: Any) -> HTMLResponse:
        context.update(csrf=csrf, project=folder.name, user=user)
        return HTMLResponse(env.get_template(name).render(**context))

    def data_json(obj: Any) -> str:
        """JSON for a <script type="application/json"> block: no '<' can end it early."""
        return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    class Guard(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: Any) -> Response:
            host = request.headers.get("host", "")
            if host not in allowed_hosts:
                return _secure(PlainTextResponse("unknown Host header", status_code=400))
            given = request.query_params.get("token")
            if given is not None and request.method == "GET":
                if not _same(given, token):
                    return _secure(PlainTextResponse("wrong token", status_code=403))
                redirect = RedirectResponse(request.url.path, status_code=303)
                redirect.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
                return _secure(redirect)
            if not _same(request.cookies.get(COOKIE, ""), token):
                return _secure(PlainTextResponse("open the URL `labelseed serve` printed (it holds the token)",
                                                 status_code=403))
            if request.method != "GET":
                origin = request.headers.get("origin")
                if origin is not None and origin.split("://", 1)[-1] not in allowed_hosts:
                    return _secure(PlainTextResponse("cross-origin request refused", status_code=403))
                if not _same(request.headers.get("x-csrf-token", ""), csrf):
                    return _secure(PlainTextResponse("missing or wrong CSRF token", status_code=403))
            try:
                response: Response = await call_next(request)
            except InputError as exc:
                response = JSONResponse({"error": str(exc)}, status_code=400)
            return _secure(response)

    # ------------------------------------------------------------------ pages
    def home(request: Request) -> HTMLResponse:
        with project() as p:
            st = p.status()
        basis = basis_sentence((st.get("last_run") or {}).get("estimate"))
        return page("home.html", status=st, job=job.public(), basis=basis)

    def label_view(request: Request) -> HTMLResponse:
        return page("items.html", view="label", title="Label", data=data_json(_items(request, "label")))

    def audit_view(request: Request) -> HTMLResponse:
        with project() as p:
            result = p.audit_result()
            run = p.store.latest_run()
        expected = {c["label"]: c.get("expected_precision") for c in (run or {}).get("summary", {}).get("classes", [])} \
            if run else {}
        return page("items.html", view="audit", title="Audit",
                    data=data_json({**_items(request, "audit"), "expected": expected}), audit=result, expected=expected)

    def run_view(request: Request) -> HTMLResponse:
        with project() as p:
            st = p.status()
        return page("run.html", status=st, job=job.public())

    def similar_view(request: Request) -> HTMLResponse:
        wanted = [_int(v, "row") for v in request.query_params.getlist("row")][:100]
        if not wanted:
            raise InputError("`row` must name at least one item (/similar?row=N&row=M...).")
        with project() as p:
            rows, X = p.vectors()
            pos = np.searchsorted(rows, wanted)
            if any(q >= len(rows) or rows[q] != r for q, r in zip(pos, wanted)):
                raise InputError("an item in `row` has no vector.")
            near = _nearest(X, [int(q) for q in pos], 20)
            picked = [int(rows[k]) for k in near]
        return page("items.html", view="similar", title="Find similar",
                    data=data_json(_items(request, "similar", rows=picked)))

    def _items(request: Request, view: str, rows: list[int] | None = None) -> dict[str, Any]:
        """The items a view works through (one fixed page), their text or image URL, labels and classes."""
        with project() as p:
            db = p.store.db
            human = p.store.current_labels()
            suggested: dict[int, str] = {}
            batch = None
            if rows is None:
                kinds = ("audit",) if view == "audit" else ("select", "query")
                q = (f"SELECT batch FROM requests WHERE kind IN ({','.join('?' * len(kinds))}) "
                     "ORDER BY seq DESC LIMIT 1")
                got = db.execute(q, kinds).fetchone()
                batch = got[0] if got else None
                rows = [r for (r,) in db.execute("SELECT row FROM requests WHERE batch = ? ORDER BY rank",
                                                 (batch,))] if batch else []
                if view == "audit" and batch:
                    suggested = dict(db.execute("SELECT row, label FROM audits WHERE batch = ?", (batch,)).fetchall())
            offset = max(_int(request.query_params.get("offset", "0"), "offset"), 0)
            rows = rows[offset:offset + PAGE]
            ids = dict(zip(rows, p.store.ids_of(rows)))
            contents = p.store.contents(rows)
            kind = p.meta.get("kind")
            classes = sorted(set(human.values()) | set(suggested.values()))
            items = [{"row": r, "id": ids[r], "label": human.get(r), "suggested": suggested.get(r),
                      "text": c if kind != "image" else None,
                      "image": f"/item/{r}/image" if kind == "image" else None}
                     for r, c in zip(rows, contents)]
        return {"view": view, "batch": batch, "items": items, "classes": classes, "offset": offset}

    def run_arrays(p: Project) -> Any:
        from ..ops import RunArrays

        run = p.run()
        if run["run_id"] not in runs:
            runs.clear()  # one run at a time in memory
            runs[run["run_id"]] = RunArrays.load(folder / "runs" / run["run_id"], run["summary"] or {}, run["run_id"])
        return runs[run["run_id"]]

    def review_view(request: Request) -> HTMLResponse:
        from ..runs import STATUS_NAMES

        with project() as p:
            ra = run_arrays(p)
            label = request.query_params.get("cls") or (ra.classes[0] if ra.classes else "")
            k = ra.class_index(label)
            order = ra.order(k)
            offset = min(max(_int(request.query_params.get("offset", "0"), "offset"), 0), max(len(order) - 1, 0))
            page_pos = order[offset:offset + PAGE]
            rows = ra.rows[page_pos].tolist()
            human = p.store.current_labels()
            contents = p.store.contents(rows)
            ids = p.store.ids_of(rows)
            image = p.meta.get("kind") == "image"
        threshold = ra.thresholds.get(label)
        items = [{"row": r, "id": i, "text": None if image else c, "image": f"/item/{r}/image" if image else None,
                  "confidence": float(ra.confidence[pos]), "status": STATUS_NAMES[int(ra.status[pos])],
                  "human": human.get(r)} for r, i, c, pos in zip(rows, ids, contents, page_pos)]
        cut = next((n for n, it in enumerate(items) if threshold is not None and it["confidence"] < threshold),
                   len(items))
        return page("review.html", title="Review", classes=ra.classes, label=label, items=items, cut=cut,
                    threshold=threshold, offset=offset, total=len(order), page_size=PAGE, run_id=ra.run_id)

    def thresholds_view(request: Request) -> HTMLResponse:
        with project() as p:
            ra = run_arrays(p)
            label = request.query_params.get("cls") or (ra.classes[0] if ra.classes else "")
            ra.class_index(label)
            run = p.run()
        th, prec, cov = ra.curves.get(label, (np.empty(0), np.empty(0), np.empty(0)))
        keep = np.argsort(th)
        th, prec, cov = th[keep], prec[keep], cov[keep]
        finite = np.isfinite(prec) & np.isfinite(cov)
        points = " ".join(f"{20 + 360 * float(c):.1f},{220 - 200 * float(q):.1f}"
                          for c, q in zip(cov[finite], prec[finite]))
        current = ra.thresholds.get(label)
        start = int(np.argmin(np.abs(th - current))) if current is not None and len(th) else 0
        entry: dict[str, Any] = next((c for c in (run["summary"] or {}).get("classes", []) if str(c.get("label")) == label), {})
        return page("thresholds.html", title="Thresholds", classes=ra.classes, label=label, points=points,
                    n=len(th), start=start, current=current, entry=entry, run_id=ra.run_id,
                    target=(run["summary"] or {}).get("target_precision"),
                    data=data_json({"thresholds": [float(v) for v in th], "label": label, "current": current}))

    async def api_set_threshold(request: Request) -> JSONResponse:
        data = await body(request)
        label = data.get("cls")
        if not isinstance(label, str):
            raise InputError("`cls` must be a class name.")
        t = _float(data.get("t"), "threshold")
        with project() as p:
            entry = p.set_threshold(label, t, who=user)
        runs.clear()
        return JSONResponse({"ok": True, "threshold": entry["threshold"], "n_accepted": entry["n_accepted"]})

    async def api_preview(request: Request) -> JSONResponse:
        from ..ops import bulk_preview

        label = request.query_params.get("cls", "")
        t = _float(request.query_params.get("t"), "threshold")
        with project() as p:
            pv = bulk_preview(run_arrays(p), label, t, set(p.store.current_labels()))
        return JSONResponse(pv.public())

    async def api_accept(request: Request) -> JSONResponse:
        from ..ops import bulk_preview

        data = await body(request)
        label = data.get("cls")
        if not isinstance(label, str):
            raise InputError("`cls` must be a class name.")
        with project() as p:
            if "rows" in data:  # single items from the list
                rows = [_int(r, "row") for r in data["rows"]]
                ra = run_arrays(p)
                pos = np.searchsorted(ra.rows, rows)
                if any(q >= len(ra.rows) or ra.rows[q] != r or ra.classes[ra.predicted[q]] != label
                       for q, r in zip(pos, rows)):
                    raise InputError("only rows the run predicts as that class can be accepted as it.")
            else:
                rows = bulk_preview(run_arrays(p), label, _float(data.get("t"), "threshold"),
                                    set(p.store.current_labels())).rows.tolist()
            if not rows:
                raise InputError("no row to accept above that threshold.")
            batch = p.accept(rows, label, who=user)
        return JSONResponse({"ok": True, "batch": batch, "n_rows": len(rows)})

    async def api_undo_accept(request: Request) -> JSONResponse:
        data = await body(request)
        batch = data.get("batch")
        if not isinstance(batch, str) or not batch.startswith("accept-"):
            raise InputError("`batch` must be an accept batch id.")
        with project() as p:
            n = p.undo_accept(batch, who=user)
        return JSONResponse({"ok": True, "n_rows": n})

    # ------------------------------------------------------------------ actions (JSON)
    async def body(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            raise InputError("the request body must be JSON.") from None
        if not isinstance(data, dict):
            raise InputError("the request body must be a JSON object.")
        return data

    async def api_label(request: Request) -> JSONResponse:
        data = await body(request)
        rows = data.get("rows", [data.get("row")])
        label = data.get("label")
        if not isinstance(label, str) or not label.strip() or len(label) > 200:
            raise InputError("`label` must be a non-empty text of at most 200 characters.")
        rows = [_int(r, "row") for r in rows]
        with project() as p:
            n = p.store.n_items()
            if any(not 0 <= r < n for r in rows):
                raise InputError("`row` is not an item of this project.")
            p.label_items(rows, label.strip(), source="web", who=user)
            labels = p.store.current_labels()
        return JSONResponse({"ok": True, "labeled": len(labels)})

    async def api_unlabel(request: Request) -> JSONResponse:
        data = await body(request)
        row = _int(data.get("row"), "row")
        with project() as p:
            p.unlabel_item(row, source="web", who=user)
        return JSONResponse({"ok": True})

    async def api_pick(request: Request) -> JSONResponse:
        data = await body(request)
        kind = data.get("kind")
        if kind == "gaps":
            budget = _int(data.get("budget", 20), "budget")
            with project() as p:
                batch, sel = p.select(budget, strategy="gaps")
            return JSONResponse({"ok": True, "batch": batch, "rows": len(sel.rows)})
        if kind not in REQUEST_KINDS:
            raise InputError(f"`kind` must be one of {', '.join(REQUEST_KINDS)}.")
        budget = _int(data.get("budget", 20), "budget")
        with project() as p:
            batch, sel = getattr(p, kind)(budget)
        return JSONResponse({"ok": True, "batch": batch, "rows": len(sel.rows)})

    async def api_audit_result(request: Request) -> JSONResponse:
        with project() as p:
            return JSONResponse({"audit": p.audit_result()})

    def start(stage: str, work: Any) -> JSONResponse:
        """Run `work(progress)` in a background thread, one job at a time; it returns the line the
        Run view shows. Any failure is shown there too: the server keeps serving."""
        with job.lock:
            if job.state == "running":
                return JSONResponse({"ok": False, "error": "a job is already running"}, status_code=409)
            job.state, job.stage, job.done, job.total, job.message = "running", stage, 0, 0, ""
            job.started, job.run_id = time.time(), None

        def progress(stage: str, done: int, total: int) -> None:
            job.stage, job.done, job.total = stage, done, total

        def run() -> None:
            try:
                job.message = work(progress)
                job.state = "done"
            except (InputError, OSError, ImportError) as exc:
                job.state, job.message = "failed", str(exc)
            except Exception as exc:
                log.exception("the background %s failed", stage)
                job.state, job.message = "failed", f"{type(exc).__name__}: {exc}"

        threading.Thread(target=run, daemon=True).start()
        return JSONResponse({"ok": True})

    async def api_fit(request: Request) -> JSONResponse:
        data = await body(request)
        certify = data.get("certify", "cv")
        if certify not in ("cv", "audit"):
            raise InputError("`certify` must be 'cv' or 'audit'.")

        def work(progress: Any) -> str:
            from ..ops import FitSettings

            with project() as p:
                last = p.store.latest_run()
                run = p.fit(FitSettings.from_config(last["config"] if last else None), certify=certify,
                            progress=progress)
                p.apply(run_id=run["run_id"])
            s = run["summary"]
            job.run_id = run["run_id"]
            return f"{s['n_auto']} auto-labels, expected precision {s['expected_precision']}, coverage {s['coverage']}"
        return start("starting", work)

    async def api_embed(request: Request) -> JSONResponse:
        data = await body(request)
        model = data.get("model")
        if model is not None and (not isinstance(model, str) or model not in ("all-MiniLM-L6-v2", "hashing",
                                                                                "efficientnet-lite0")):
            raise InputError("`model` must be all-MiniLM-L6-v2, hashing or efficientnet-lite0 (others: the CLI).")

        def work(progress: Any) -> str:
            with project() as p:
                rep = p.embed(model, progress=progress)
            return f"embedded {rep.embedded} items with {rep.model} ({len(rep.failed)} skipped)"
        return start("embedding", work)

    async def api_report(request: Request) -> JSONResponse:
        await body(request)

        def work(progress: Any) -> str:
            from .._io import atomic_dir
            from ..report import build_report, inputs_from_project

            with project() as p:
                inputs, run_dir = inputs_from_project(p)
                with atomic_dir(run_dir / "report", True) as tmp:
                    build_report(inputs, tmp)
            return "report written: open it from the Run view"
        return start("report", work)

    def report_page(request: Request) -> Response:
        """The last run's report (labelseed's own file, by run, never by path): its one inline
        style is allowed by its hash, its figures are data: images, and it runs no script."""
        import base64
        import hashlib

        with project() as p:
            run = p.run()
        path = folder / "runs" / run["run_id"] / "report" / "report.html"
        if not path.is_file():
            return PlainTextResponse("no report for the last run yet: write it from the Run view", status_code=404)
        html = path.read_text(encoding="utf-8")
        styles = re.findall(r"<style>(.*?)</style>", html, flags=re.S)
        hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(st.encode()).digest()).decode() + "'"
                          for st in styles)
        response = HTMLResponse(html)
        response.headers["Content-Security-Policy"] = (f"default-src 'none'; style-src {hashes or 'none'}; "
                                                       "img-src data:; base-uri 'none'; form-action 'none'; "
                                                       "frame-ancestors 'none'")
        return response

    async def api_job(request: Request) -> JSONResponse:
        return JSONResponse(job.public())

    def image(request: Request) -> Response:
        row = _int(request.path_params["row"], "row")
        with project() as p:
            if p.meta.get("kind") != "image" or not 0 <= row < p.store.n_items():
                return PlainTextResponse("no such image", status_code=404)
            content = p.store.contents([row])[0]
            root = Path(p.meta.get("source") or "").resolve()
        if not content:
            return PlainTextResponse("no such image", status_code=404)
        path = Path(content).resolve()  # symlinks followed: the real file must be inside the root
        if root == Path("/").resolve() or not path.is_relative_to(root) or not path.is_file():
            return PlainTextResponse("no such image", status_code=404)
        data = path.read_bytes()
        kind = _image_type(data[:16])
        if kind is None:
            return PlainTextResponse("not an image type this page serves", status_code=415)
        return Response(data, media_type=kind, headers={"Cache-Control": "private, max-age=3600"})

    routes = [
        Route("/", home), Route("/label", label_view), Route("/audit", audit_view), Route("/run", run_view),
        Route("/similar", similar_view), Route("/review", review_view),
        Route("/api/review/preview", api_preview), Route("/api/review/accept", api_accept, methods=["POST"]),
        Route("/api/review/undo", api_undo_accept, methods=["POST"]),
        Route("/thresholds", thresholds_view), Route("/api/thresholds", api_set_threshold, methods=["POST"]),
        Route("/api/label", api_label, methods=["POST"]), Route("/api/unlabel", api_unlabel, methods=["POST"]),
        Route("/api/pick", api_pick, methods=["POST"]), Route("/api/fit", api_fit, methods=["POST"]),
        Route("/api/embed", api_embed, methods=["POST"]),
        Route("/api/report", api_report, methods=["POST"]), Route("/report", report_page),
        Route("/api/job", api_job), Route("/api/audit", api_audit_result),
        Route("/item/{row:int}/image", image),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Guard)])
    app.state.job = job
    app.state.csrf = csrf
    return app


def _same(given: str, secret: str) -> bool:
    """Constant-time comparison that takes any text (a non-ASCII token is simply wrong)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode())


def _secure(response: Any) -> Any:
    response.headers.setdefault("Content-Security-Policy", CSP)  # the report sets a stricter one of its own
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _int(value: Any, name: str) -> int:
    return int(_number(value, name, int, "an integer"))


def _float(value: Any, name: str) -> float:
    return float(_number(value, name, float, "a number"))


def _number(value: Any, name: str, kind: Any, what: str) -> Any:
    """`value` (from a URL or JSON) as `kind`, or one line naming the parameter."""
    try:
        out = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"`{name}` must be {what}; got {value!r}.") from None
    if out != out:  # NaN
        raise InputError(f"`{name}` must be {what}; got {value!r}.")
    return out


def _nearest(X: np.ndarray, positions: list[int], k: int) -> list[int]:
    """Rows of `X` nearest in cosine similarity to the mean direction of rows `positions` (a
    single item comes first itself), scanned in blocks."""
    from ..graph import normalize_rows

    q = normalize_rows(np.ascontiguousarray(X[positions], dtype=np.float32)).mean(axis=0)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    best_s = np.empty(0, dtype=np.float32)
    best_i = np.empty(0, dtype=np.int64)
    for s in range(0, len(X), 200_000):
        block = normalize_rows(np.ascontiguousarray(X[s:s + 200_000], dtype=np.float32))
        sim = block @ q
        top = np.argpartition(-sim, min(k, len(sim) - 1))[:k]
        best_s = np.concatenate([best_s, sim[top]])
        best_i = np.concatenate([best_i, s + top])
    order = np.argsort(-best_s, kind="stable")[:k]
    return best_i[order].tolist()


def serve(folder: str | Path, *, host: str = "127.0.0.1", port: int = 0, user: str | None = None,
          ready: Any = None) -> None:
    """Run the page until interrupted. Prints nothing itself: `ready(url)` is called with the
    URL (token included) once the socket is bound."""
    import socket

    import uvicorn

    from ..project import Project

    Project.open(folder).close()  # a bad folder fails here, with the usual one-line message
    if isinstance(port, bool) or not isinstance(port, numbers.Integral) or not 0 <= port <= 65535:
        raise InputError(f"--port must be a port number in 0..65535 (0: a free one); got {port!r}.")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port.") from None
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(24)
    hosts = {f"{host}:{port}"}
    if host in ("127.0.0.1", "localhost"):
        hosts |= {f"127.0.0.1:{port}", f"localhost:{port}"}
    app = create_app(folder, token=token, allowed_hosts=hosts,
                     user=user or os.environ.get("USER") or "unknown")
    if ready is not None:
        ready(f"http://{host}:{port}/?token={token}")
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
