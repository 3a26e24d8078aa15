"""WSGI handlers that fork a child which keeps a copy of the client socket (as apps that start
background jobs do): the client must still see the end of a closing response at once."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_FILE = os.path.join(os.path.dirname(__file__), "site", "style.css")


def _fork(seconds: float) -> int:
    child = os.fork()
    if child == 0:
        time.sleep(seconds)
        os._exit(0)
    return child


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    kind = environ["PATH_INFO"].strip("/")
    child = _fork(float(environ.get("QUERY_STRING") or "10"))
    fields = [("Content-Type", "text/plain"), ("X-Child", str(child))]
    if kind == "file":
        start_response("200 OK", fields)
        wrapped: Iterable[bytes] = environ["wsgi.file_wrapper"](open(_FILE, "rb"))  # noqa: SIM115
        return wrapped
    if kind == "list":
        start_response("200 OK", fields)
        return [b"one piece\n"]

    def stream() -> Iterator[bytes]:
        for i in range(3):
            yield b"part %d\n" % i

    start_response("200 OK", fields)
    return stream()
