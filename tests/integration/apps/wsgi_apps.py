"""Plain WSGI applications (PEP 3333) for the integration tests, one per behaviour."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

HERE = os.path.dirname(os.path.abspath(__file__))


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path.startswith("/environ"):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        keys: dict[str, Any] = {k: v for k, v in environ.items() if isinstance(v, str)}
        keys["body"] = body.decode("latin-1")
        keys["wsgi.version"] = list(environ["wsgi.version"])
        keys["wsgi.multiprocess"] = environ["wsgi.multiprocess"]
        data = json.dumps(keys).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [data]
    if path == "/lines":
        lines = list(environ["wsgi.input"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d lines; last=%s" % (len(lines), lines[-1] if lines else b"")]
    if path == "/generator":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"chunk %d;" % i for i in range(5))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"then returned"]
    if path == "/length":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return iter([b"01234", b"56789"])
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/css")])
        handle = open(os.path.join(HERE, "site", "style.css"), "rb")  # noqa: SIM115
        return environ["wsgi.file_wrapper"](handle, 4096)
    if path == "/exc-info":
        try:
            raise ValueError("oops")
        except ValueError:
            start_response("200 OK", [("Content-Type", "text/plain")])
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"recovered"]
    if path == "/fails-early":
        def gen() -> Iterator[bytes]:
            raise RuntimeError("secret early failure")
            yield b""  # pragma: no cover
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/errors":
        environ["wsgi.errors"].write("a line for the error log\n")
        start_response("204 No Content", [])
        return []
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


class Closing:
    """An iterable whose close() records that it was called (shown at /closed)."""

    closed = 0

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.pieces)

    def close(self) -> None:
        Closing.closed += 1


def closing_app(environ: dict[str, Any],
                start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/closed":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([str(Closing.closed).encode()])
    if environ["PATH_INFO"] == "/raise":
        def broken() -> Iterator[bytes]:
            yield b"partial"
            raise RuntimeError("mid-stream failure")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing(broken())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing([b"a", b"b"])


closing_app.__forkhttpd_interface__ = "wsgi"  # type: ignore[attr-defined]

validated = validator(app)
validated.__forkhttpd_interface__ = "wsgi"  # type: ignore[attr-defined]
