"""A native (picohttp-style) handler exercising the handler API; used by integration tests."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import forkhttpd

if TYPE_CHECKING:
    from collections.abc import Callable

    from forkhttpd import HttpRequest, HttpResponse

VERSION = "v1"


def handler(request: HttpRequest, response: HttpResponse) -> object | None:
    first = request.path[0]
    if first == "hello":
        response.data = "Hello world!"
    elif first == "echo":
        return {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "protocol": request.protocol,
            "headers": dict(request.headers),
            "data": request.data,
            "body_len": len(request.body),
            "content_type": request.headers.get("CONTENT-TYPE"),
        }
    elif first == "text":
        return "plain text"
    elif first == "bytes":
        return b"\x00\x01\xff"
    elif first == "list":
        return [1, 2, 3]
    elif first == "forbidden":
        raise forkhttpd.HTTPError(403, "Forbidden Access")
    elif first == "boom":
        raise RuntimeError("secret internal detail")
    elif first == "badheader":
        response.headers["X-Bad"] = "a\r\nInjected: 1"
        response.data = "should never be sent"
    elif first == "nulheader":
        response.headers["X-Bad"] = "a\x00b"
    elif first == "custom":
        response.status = 201
        response.headers["Server"] = "custom-server"
        response.headers["X-Thing"] = "yes"
        response.data = b"created"
    elif first == "pid":
        return str(os.getpid())
    elif first == "version":
        return VERSION
    elif first == "stream":
        count = int(request.query.get("n", "3"))
        response.headers["Content-Type"] = "text/plain"
        response.data = (f"part {i}\n" for i in range(count))
    elif first == "length":
        return str(len(request.body))
    elif first == "noread":
        return "did not read the body"
    elif first == "fork":  # a child that holds a copy of the client socket, as apps do
        child = os.fork()
        if child == 0:
            time.sleep(float(request.query.get("s", "10")))
            os._exit(0)
        return str(child)
    elif first == "sleep":
        time.sleep(float(request.query.get("s", "1")))
        return "slept"
    else:
        response.status = 404
        response.data = "I don't know what to say"
    return None


def make_handler() -> Callable[[HttpRequest, HttpResponse], None]:
    """A factory, for the pkg.mod:factory() form."""
    def made(request: HttpRequest, response: HttpResponse) -> None:
        response.data = "made by factory"
    return made
