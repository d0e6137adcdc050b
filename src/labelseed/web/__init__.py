"""The local web page (`labelseed serve`); needs the `web` extra: pip install 'labelseed[web]'."""
from __future__ import annotations

__all__ = ["create_app", "serve"]


def __getattr__(name: str):  # lazy: importing labelseed.web never imports starlette
    if name in __all__:
        from ._deps import require_web

        require_web()
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
