"""Embedders: text (sentence-transformers, offline), images (EfficientNet-Lite0), hashing.

Every embedder has ``name`` (what the project records, so vectors of two models never mix),
``dim`` and ``embed(items) -> (vectors, {index: error})``: items it cannot embed (an
unreadable image) are listed, not fatal. Torch-based ones load lazily; see
:func:`labelseed._optional.require`.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from ..exceptions import InputError

TEXT_MODELS = ("all-MiniLM-L6-v2", "hashing", "<path to a sentence-transformers folder>")
IMAGE_MODELS = ("efficientnet-lite0",)


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, items: list[str]) -> tuple[NDArray[np.float32], dict[int, str]]: ...


def get_embedder(kind: str, model: str | None = None, *, image_size: int = 224, batch_size: int = 64) -> Embedder:
    """The embedder for a project's `kind` ("text" or "image") and `model` (None: the default)."""
    if kind == "text":
        from .text import MINILM, HashingEmbedder, SentenceTransformerEmbedder

        if model in (None, MINILM, "minilm"):
            return SentenceTransformerEmbedder(MINILM, batch_size=batch_size)
        if model == "hashing":
            return HashingEmbedder()
        from pathlib import Path

        if not Path(model).expanduser().is_dir():  # checked before any work, not at the first batch
            raise InputError(f"--model {model!r} is not a text model here: use 'all-MiniLM-L6-v2' (the default), "
                             "'hashing', or the path of a local sentence-transformers folder.")
        return SentenceTransformerEmbedder(model, batch_size=batch_size)
    if kind == "image":
        if model not in (None, "efficientnet-lite0"):
            raise InputError(f"`model` for images must be 'efficientnet-lite0'; got {model!r}.")
        from .image import ImageEmbedder

        return ImageEmbedder(size=image_size)
    raise InputError(f"Nothing to embed for a project of kind {kind!r}: its vectors were given at init.")
