"""Embedders: text (sentence-transformers, offline), images (EfficientNet-Lite0), hashing.

Every embedder has ``name`` (what the project records, so vectors of two models never mix),
``dim`` and ``embed(items) -> (vectors, {index: error})``: items it cannot embed (an
unreadable image) are listed, not fatal. Torch-based ones load lazily; see
:func:`labelseed._optional.require`.
"""
from __future__ import annotations

import re
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from ..exceptions import InputError

TEXT_MODELS = ("all-MiniLM-L6-v2", "hashing", "<path to a sentence-transformers folder>")
IMAGE_MODELS = ("efficientnet-lite0",)
#: Where a torch model runs: ``"cpu"`` (the default), ``"cuda"`` / ``"cuda:N"``, or ``"auto"``
#: (the first GPU where torch sees one, else the CPU).
DEVICES = ("cpu", "cuda", "cuda:N", "auto")


def check_device(device: object) -> str:
    """`device` spelled as :data:`DEVICES` allows, or one line saying what it should be."""
    if not isinstance(device, str) or not re.fullmatch(r"cpu|auto|cuda(:\d+)?", device):
        raise InputError(f"`device` must be 'cpu', 'cuda', 'cuda:N' or 'auto'; got {device!r}.")
    return device


def resolve_device(device: str) -> str:
    """The torch device `device` names on this machine (``"auto"`` becomes ``"cuda"`` or
    ``"cpu"``), or one line saying why it cannot run here. Imports torch."""
    device = check_device(device)
    if device == "cpu":
        return device
    from .._optional import require

    torch = require("torch")
    n_gpus = int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    if device == "auto":
        return "cuda" if n_gpus else "cpu"
    index = int(device.partition(":")[2] or 0)
    if index >= n_gpus:
        seen = f"sees {n_gpus} CUDA GPU(s)" if n_gpus else "sees no CUDA GPU"
        raise InputError(f"--device {device}: torch {torch.__version__} on this machine {seen}; use --device cpu "
                         "(the default) or auto, or install a CUDA build of torch.")
    return device


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, items: list[str]) -> tuple[NDArray[np.float32], dict[int, str]]: ...


def get_embedder(kind: str, model: str | None = None, *, image_size: int = 224, batch_size: int = 64,
                 device: str = "cpu") -> Embedder:
    """The embedder for a project's `kind` ("text" or "image") and `model` (None: the default).

    `device` is where a torch model runs (:data:`DEVICES`; checked for spelling here, resolved
    where the model loads, so a Ray actor on a GPU node takes its own GPU). The hashing embedder
    has no model and always runs on the CPU. The model's name, and so the project's vectors,
    do not depend on the device.
    """
    device = check_device(device)
    if kind == "text":
        from .text import MINILM, HashingEmbedder, SentenceTransformerEmbedder

        if model in (None, MINILM, "minilm"):
            return SentenceTransformerEmbedder(MINILM, batch_size=batch_size, device=device)
        if model == "hashing":
            return HashingEmbedder()
        from pathlib import Path

        if not Path(model).expanduser().is_dir():  # checked before any work, not at the first batch
            raise InputError(f"--model {model!r} is not a text model here: use 'all-MiniLM-L6-v2' (the default), "
                             "'hashing', or the path of a local sentence-transformers folder.")
        return SentenceTransformerEmbedder(model, batch_size=batch_size, device=device)
    if kind == "image":
        if model not in (None, "efficientnet-lite0"):
            raise InputError(f"`model` for images must be 'efficientnet-lite0'; got {model!r}.")
        from .image import ImageEmbedder

        return ImageEmbedder(size=image_size, device=device)
    raise InputError(f"Nothing to embed for a project of kind {kind!r}: its vectors were given at init.")
