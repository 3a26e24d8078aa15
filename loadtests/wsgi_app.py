"""The benchmark's WSGI applications without a framework: the hello world (the bytes
loadtests/app.py serves natively, "Hello, world!" as text/plain) plus the upload, the 100 KB
response and the 100-chunk stream that bench.py and callgrind.py ask every server for."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["BIG_BODY", "CHUNK", "CHUNKS", "app"]

_BODY = b"Hello, world!"
_HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_BODY)))]
BIG_BODY = bytes(range(256)) * 400  # 102,400 bytes
CHUNK = b"x" * 1000
CHUNKS = 100


def _stream() -> Iterator[bytes]:
    for _ in range(CHUNKS):
        yield CHUNK


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """GET / (and anything unknown): the hello world; POST /upload: the body's length;
    GET /big: 100 KB; GET /stream: 100 pieces of 1,000 bytes without a Content-Length."""
    path = environ.get("PATH_INFO", "/")
    if path == "/upload":
        received = len(environ["wsgi.input"].read())
        body = str(received).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(BIG_BODY)))])
        return [BIG_BODY]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    start_response("200 OK", list(_HEADERS))
    return [_BODY]
