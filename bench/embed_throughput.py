"""Embedding throughput on this machine, and `labelseed embed` of 100,000 short texts:
resumable after kill -9, with memory that stays flat.

A: texts/s (all-MiniLM-L6-v2 through sentence-transformers, and the hashing embedder) on
   WordNet glosses; images/s (EfficientNet-Lite0 at 96 and 224 px) on Fashion-MNIST PNG files.
   Each through `Project.embed` (hashing + batching + memmap + SQLite included), median of
   --repeats fresh projects.
B: 100,000 WordNet glosses (nouns, verbs, adjectives, adverbs) through the real CLI
   (`labelseed embed DIR`): the child's RSS sampled every 0.5 s; killed with SIGKILL halfway,
   then run again to the end. Reports RSS against progress, rows done at the kill, and that
   every row ends embedded exactly once.

    python bench/embed_throughput.py --texts 2000 --images 1000 --big 100000
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS  # noqa: E402

from labelseed import datasets  # noqa: E402
from labelseed.project import Project  # noqa: E402

WORDNET = Path("/usr/share/wordnet")


def all_glosses(n: int) -> list[str]:
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        with open(WORDNET / f"data.{pos}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                head, _, gloss = line.partition(" | ")
                out.append(f"{head.split()[4].replace('_', ' ')}: {gloss.strip()}")
    return out[:n]


def write_texts(path: Path, texts: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows((f"t{i}", t) for i, t in enumerate(texts))


def rate(make, model: str | None, n: int, repeats: int, **kw) -> float:
    rates = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            p = make(Path(tmp) / "p")
            p.embed(model, **kw)  # warm-up load of the model is not what we time: embed a first project
            p.close()
        with tempfile.TemporaryDirectory() as tmp:
            p = make(Path(tmp) / "p")
            rep = p.embed(model, **kw)
            p.close()
            rates.append(n / rep.seconds)
    return float(np.median(rates))


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of `pid` in KiB: VmRSS (all), RssAnon (the heap: what a list of all vectors
    would grow) or RssFile (pages of memory-mapped files such as embeddings.npy, reclaimable)."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def big(n: int) -> dict:
    texts = all_glosses(n)
    tmp = Path(tempfile.mkdtemp(prefix="embed-big-"))
    write_texts(tmp / "texts.csv", texts)
    Project.init(tmp / "p", data=tmp / "texts.csv", text_column="text").close()
    db = tmp / "p" / "labelseed.db"
    exe = str(Path(sys.executable).with_name("labelseed"))

    def done() -> int:
        try:
            with sqlite3.connect(db, timeout=1) as c:
                return int(c.execute("SELECT COUNT(*) FROM embedded").fetchone()[0])
        except sqlite3.Error:
            return -1

    samples = []
    t0 = time.time()
    proc = subprocess.Popen([exe, "embed", str(tmp / "p"), "--quiet"], stdout=subprocess.DEVNULL)
    killed_at = None
    while proc.poll() is None:
        d = done()
        samples.append((round(time.time() - t0, 1), d, rss_kib(proc.pid), rss_kib(proc.pid, "RssAnon")))
        if killed_at is None and d >= len(texts) // 2:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = d
        time.sleep(0.5)
    proc.wait()
    first = time.time() - t0
    t1 = time.time()
    proc = subprocess.Popen([exe, "embed", str(tmp / "p"), "--quiet"], stdout=subprocess.DEVNULL)
    while proc.poll() is None:
        samples.append((round(first + time.time() - t1, 1), done(), rss_kib(proc.pid), rss_kib(proc.pid, "RssAnon")))
        time.sleep(0.5)
    second = time.time() - t1
    with sqlite3.connect(db) as c:
        total, distinct = c.execute("SELECT COUNT(*), COUNT(DISTINCT row) FROM embedded").fetchone()
    rss = [s for s in samples if s[2] > 0 and s[1] > 0]
    def at(q: int, col: int) -> int:
        return max([s[col] for s in rss if abs(s[1] - q / 100 * len(texts)) <= 0.05 * len(texts)] or [0])

    by_progress = {f"{q}%": round(at(q, 2) / 1024) for q in (10, 25, 45, 60, 80, 95)}
    anon_by_progress = {f"{q}%": round(at(q, 3) / 1024) for q in (10, 25, 45, 60, 80, 95)}
    return {"n": len(texts), "killed_at_rows": killed_at, "first_run_s": round(first, 1), "resume_s": round(second, 1),
            "texts_per_s": round(len(texts) / (first + second), 1), "rows_embedded": total, "distinct_rows": distinct,
            "rss_mib_by_progress": by_progress, "rss_anon_mib_by_progress": anon_by_progress,
            "peak_rss_mib": round(max(s[2] for s in rss) / 1024), "folder": str(tmp)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--only-big", action="store_true")
    a = ap.parse_args()
    out: dict = {}
    glosses = all_glosses(a.texts)
    if a.only_big:
        out["big"] = big(a.big)
        print(json.dumps(out, indent=1))
        (RESULTS / "embed_throughput_big.json").write_text(json.dumps(out, indent=1))
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_texts(Path(tmp) / "t.csv", glosses)

        def make_text(folder: Path) -> Project:
            return Project.init(folder, data=Path(tmp) / "t.csv", text_column="text")

        out["minilm_texts_per_s"] = rate(make_text, None, len(glosses), a.repeats)
        out["hashing_texts_per_s"] = rate(make_text, "hashing", len(glosses), a.repeats)
        print(json.dumps(out), flush=True)
        imgs, _ = datasets.fashion_mnist_images()
        from PIL import Image

        (Path(tmp) / "img").mkdir()
        for i in range(a.images):
            Image.fromarray(imgs[i]).save(Path(tmp) / "img" / f"{i:05d}.png")

        def make_img(folder: Path) -> Project:
            return Project.init(folder, image_dir=Path(tmp) / "img")

        for size in (96, 224):
            out[f"lite0_{size}px_images_per_s"] = rate(make_img, None, a.images, a.repeats, image_size=size)
            print(json.dumps(out), flush=True)
    if a.big:
        out["big"] = big(a.big)
    print(json.dumps(out, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "embed_throughput.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
