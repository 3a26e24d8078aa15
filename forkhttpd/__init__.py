"""forkhttpd: a production pre-fork HTTP/1.1 server; this module only re-exports the public
API and must import nothing at all up front (every process of the server imports it).

Each name is loaded on first use: a worker that serves a WSGI app never needs the static
files' or VSHS helpers' modules, and HttpServer pulls in the whole master (arbiter, psutil).

The seeds' programs move over by changing one import: picohttp's HttpServer and
staticResource, pyhttp's BaseServer, ThreadedServer and BaseHttpRequestHandler, VSHS's
startHTTPServer and rootDir, http.server's HTTPServer and ThreadingHTTPServer (and, so that
`from forkhttpd import BaseHTTPRequestHandler, HTTPServer` is a one-line change, the standard
library's handler classes themselves). See docs/migrating.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler

    from .interfaces.compat import rootDir
    from .interfaces.compat_pyhttp import BaseHttpRequestHandler, Request, SocketWriter
    from .interfaces.request import HttpRequest
    from .interfaces.response import HTTPError, HttpResponse
    from .interfaces.sse import SSEEvent, SSEResponse
    from .interfaces.static import staticResource
    from .interfaces.vshs import URL, Blob, get_query
    from .ops.compat import (
        BaseServer,
        HTTPServer,
        ThreadedServer,
        ThreadingHTTPServer,
        startHTTPServer,
    )
    from .ops.embedded import HttpServer

__all__ = ["URL", "BaseHTTPRequestHandler", "BaseHttpRequestHandler", "BaseServer", "Blob",
           "HTTPError", "HTTPServer", "HttpRequest", "HttpResponse", "HttpServer", "Request",
           "SSEEvent", "SSEResponse", "SimpleHTTPRequestHandler", "SocketWriter",
           "ThreadedServer", "ThreadingHTTPServer", "get_query", "rootDir", "startHTTPServer",
           "staticResource", "__version__"]

from .runtime.version import __version__  # noqa: E402 - the one version, see there

_HOMES = {"HttpRequest": "interfaces.request", "HTTPError": "interfaces.response",
          "HttpResponse": "interfaces.response", "HttpServer": "ops.embedded",
          "SSEEvent": "interfaces.sse", "SSEResponse": "interfaces.sse",
          "staticResource": "interfaces.static", "URL": "interfaces.vshs",
          "Blob": "interfaces.vshs", "get_query": "interfaces.vshs",
          "rootDir": "interfaces.compat", "BaseHttpRequestHandler": "interfaces.compat_pyhttp",
          "Request": "interfaces.compat_pyhttp", "SocketWriter": "interfaces.compat_pyhttp",
          "BaseServer": "ops.compat", "ThreadedServer": "ops.compat",
          "HTTPServer": "ops.compat", "ThreadingHTTPServer": "ops.compat",
          "startHTTPServer": "ops.compat",
          # the standard library's own classes, under the name http.server gives them
          "BaseHTTPRequestHandler": "http.server", "SimpleHTTPRequestHandler": "http.server"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'forkhttpd' has no attribute {name!r}")
    import importlib

    module = home if home.startswith("http.") else f"{__name__}.{home}"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
