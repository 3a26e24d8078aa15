"""forkhttpd: a production pre-fork HTTP/1.1 server; this module only re-exports the public
API and must stay cheap to import (the master imports it too)."""

from __future__ import annotations

from typing import Any

from .request import HttpRequest
from .response import HTTPError, HttpResponse
from .static import staticResource

__all__ = ["HTTPError", "HttpRequest", "HttpResponse", "HttpServer", "staticResource",
           "__version__"]

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    # HttpServer pulls in the whole server (arbiter, psutil); load it only when asked for.
    if name == "HttpServer":
        from .server import HttpServer

        return HttpServer
    raise AttributeError(f"module 'forkhttpd' has no attribute {name!r}")
