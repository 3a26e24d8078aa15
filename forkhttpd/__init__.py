"""forkhttpd: a production pre-fork HTTP/1.1 server; this module only re-exports the public
API and must import nothing at all up front (every process of the server imports it).

Each name is loaded on first use: a worker that serves a WSGI app never needs the static
files' or VSHS helpers' modules, and HttpServer pulls in the whole master (arbiter, psutil).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .interfaces.request import HttpRequest
    from .interfaces.response import HTTPError, HttpResponse
    from .interfaces.sse import SSEEvent, SSEResponse
    from .interfaces.static import staticResource
    from .interfaces.vshs import URL, Blob, get_query
    from .ops.embedded import HttpServer

__all__ = ["URL", "Blob", "HTTPError", "HttpRequest", "HttpResponse", "HttpServer", "SSEEvent",
           "SSEResponse", "get_query", "staticResource", "__version__"]

from .runtime.version import __version__  # noqa: E402 - the one version, see there

_HOMES = {"HttpRequest": "interfaces.request", "HTTPError": "interfaces.response",
          "HttpResponse": "interfaces.response", "HttpServer": "ops.embedded",
          "SSEEvent": "interfaces.sse", "SSEResponse": "interfaces.sse",
          "staticResource": "interfaces.static", "URL": "interfaces.vshs",
          "Blob": "interfaces.vshs", "get_query": "interfaces.vshs"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'forkhttpd' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
