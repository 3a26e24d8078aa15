"""The benchmark's hello world as a WSGI application, so that gunicorn serves exactly the bytes
loadtests/app.py serves under forkhttpd ("Hello, world!" as text/plain)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["app"]

_BODY = b"Hello, world!"
_HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with the hello world (the benchmark only asks for /)."""
    start_response("200 OK", list(_HEADERS))
    return [_BODY]
