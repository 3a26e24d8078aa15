"""The WSGI application the hostile-client suite attacks, in forkhttpd and in gunicorn alike:
a small answer, a body reader, a large streamed body, and handlers that fork, hang and leak;
must not import forkhttpd (gunicorn serves it unchanged).

/p              "ok" (what the measuring client asks for)
/body           reads the whole request body, answers its length
/big?n=N        N chunks of 64 KiB, streamed (default 128: 8 MiB)
/fork?hold=S    forks a child that keeps the connection's socket for S seconds, then
                answers with a streamed body (the parent's answer must still end promptly)
/hang           sleeps for an hour (until the server's --timeout ends the worker)
/leak?mib=N     keeps N MiB (default 20) for the life of the worker
/pid            the worker's process id
/echo/...       the path as the application got it (PEP 3333: latin-1), as bytes
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

_LEAK: list[bytes] = []
_CHUNK = b"x" * 65536


def _number(environ: dict[str, Any], name: str, default: float) -> float:
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return float(values[0]) if values else default


def app(environ: dict[str, Any],
        start_response: Callable[[str, list[tuple[str, str]]], Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    plain = [("Content-Type", "text/plain")]
    if path == "/p":
        start_response("200 OK", plain + [("Content-Length", "3")])
        return [b"ok\n"]
    if path == "/body":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            data = environ["wsgi.input"].read(length)
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            data = environ["wsgi.input"].read()  # both servers end it at the last chunk
        else:
            data = b""
        body = b"%d\n" % len(data)
        start_response("200 OK", plain + [("Content-Length", str(len(body)))])
        return [body]
    if path == "/big":
        count = int(_number(environ, "n", 128))
        start_response("200 OK", plain)
        return (_CHUNK for _ in range(count))
    if path == "/fork":
        hold = _number(environ, "hold", 5.0)
        if os.fork() == 0:  # the child keeps every descriptor, the client's socket too
            try:
                time.sleep(hold)
            finally:
                os._exit(0)
        start_response("200 OK", plain)
        return iter([b"forked\n", b"done\n"])
    if path == "/hang":
        time.sleep(3600)
    if path == "/leak":
        _LEAK.append(b"L" * (int(_number(environ, "mib", 20)) << 20))
        body = b"%d\n" % len(_LEAK)
        start_response("200 OK", plain + [("Content-Length", str(len(body)))])
        return [body]
    if path.startswith("/echo/"):
        body = path.encode("latin-1") + b"\n"
        start_response("200 OK", plain + [("Content-Length", str(len(body)))])
        return [body]
    if path == "/pid":
        body = b"%d\n" % os.getpid()
        start_response("200 OK", plain + [("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", plain + [("Content-Length", "10")])
    return [b"not found\n"]
