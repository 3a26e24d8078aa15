"""forkhttpd: a production pre-fork HTTP/1.1 server; this module only re-exports the public
API and must stay cheap to import (the master imports it too)."""

from __future__ import annotations

from typing import Any

from .request import HttpRequest
from .response import HTTPError, HttpResponse
from .static import staticResource
from .vshs import URL, Blob, get_query

__all__ = ["URL", "Blob", "HTTPError", "HttpRequest", "HttpResponse", "HttpServer", "SSEEvent",
           "SSEResponse", "get_query", "staticResource", "__version__"]

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    # HttpServer pulls in the whole server (arbiter, psutil), SSE pulls in asyncio: load
    # them only when asked for.
    if name == "HttpServer":
        from .server import HttpServer

        return HttpServer
    if name in ("SSEResponse", "SSEEvent"):
        from . import sse

        return getattr(sse, name)
    raise AttributeError(f"module 'forkhttpd' has no attribute {name!r}")
