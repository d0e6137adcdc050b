from __future__ import annotations


def require_web() -> None:
    """Starlette, uvicorn and Jinja2, or one line naming the pip install."""
    from .._optional import require

    for module in ("starlette", "uvicorn", "jinja2"):
        require(module, "web")
