"""The load-test application: a native forkhttpd handler with a hello world, a JSON echo and
static files, so that locust and the benchmark exercise the same code paths a real app does.

Routes (everything else is 404):

    GET  /                 "Hello, world!" as text/plain (the benchmark's hello world)
    GET  /hello            the same
    POST /echo             the JSON body sent back as JSON (400 if it is not JSON)
    GET  /static/NAME      a file of loadtests/static (see ensure_static_files)

The static files are generated deterministically on import (no binary blob is committed):
`ensure_static_files()` writes them if they are missing or have the wrong size.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

__all__ = ["BIG_FILE", "BIG_SIZE", "HELLO", "SMALL_FILE", "STATIC_DIR", "app",
           "ensure_static_files"]

HELLO = "Hello, world!"
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
BIG_FILE = "big-1mib.bin"
BIG_SIZE = 1 << 20
SMALL_FILE = "page.html"


def _big_content() -> bytes:
    # Seeded pseudo-random bytes: incompressible like real media, identical on every run.
    return random.Random(20240607).randbytes(BIG_SIZE)


def _small_content() -> bytes:
    rows = "".join(f"<li>item {i}</li>\n" for i in range(100))
    return (f"<!doctype html>\n<title>load test</title>\n<ul>\n{rows}</ul>\n").encode()


def ensure_static_files(directory: str = STATIC_DIR) -> dict[str, str]:
    """Write the static files (1 MiB binary and a small HTML page) unless already there.

    Returns {name: absolute path}. Safe to call from several processes at once: each file is
    written to a temporary name and renamed into place.
    """
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name, make in ((BIG_FILE, _big_content), (SMALL_FILE, _small_content)):
        path = os.path.join(directory, name)
        paths[name] = path
        content = None
        try:
            if name == BIG_FILE and os.path.getsize(path) == BIG_SIZE:
                continue
            if name != BIG_FILE:
                content = make()
                with open(path, "rb") as existing:
                    if existing.read() == content:
                        continue
        except OSError:
            pass
        if content is None:
            content = make()
        scratch = f"{path}.{os.getpid()}.tmp"
        with open(scratch, "wb") as out:
            out.write(content)
        os.replace(scratch, path)
    return paths


ensure_static_files()

_static: Any = None


def _static_files() -> Any:
    """forkhttpd's own static handler, mounted at /static (imported on first use)."""
    global _static
    if _static is None:
        from forkhttpd.interfaces.static import StaticFiles

        _static = StaticFiles(STATIC_DIR, prefix="/static")
    return _static


def app(request: Any, response: Any) -> Any:
    """The native handler: `request.path` is the list of path segments ("/" -> [""])."""
    path = request.path
    first = path[0]
    if first == "" or (first == "hello" and len(path) == 1):
        if request.method in ("GET", "HEAD"):
            return HELLO
        response.status = 405
        response.headers["Allow"] = "GET, HEAD"
        return "Method Not Allowed\n"
    if first == "echo" and len(path) == 1:
        if request.method != "POST":
            response.status = 405
            response.headers["Allow"] = "POST"
            return "Method Not Allowed\n"
        try:
            document = json.loads(request.body)
        except ValueError:
            response.status = 400
            return {"error": "the body is not JSON"}
        return {"echo": document}
    if first == "static":
        return _static_files()(request, response)
    response.status = 404
    return "Not Found\n"
