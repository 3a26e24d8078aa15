"""The handler-class interface: a subclass of http.server.BaseHTTPRequestHandler (say
SimpleHTTPRequestHandler) answers requests as http.server would run it; must not import
master, config or ops (each request comes as an Exchange).

forkhttpd frames every request: it parses each head (so its limits and its 4xx answers
apply to all of them) and gives the class one request at a time, as a socket that reads
exactly that request's bytes (Exchange.as_socket()). The class writes its response itself;
its own keep-alive decision (close_connection) is then combined with the worker's, and the
connection goes back to the worker's loop, where an idle keep-alive connection costs nothing.
So an unread body never becomes the next request, and every request is counted and logged
like any other.
"""

from __future__ import annotations

import functools
import http.server
from typing import Any

from ..protocol import Limits
from ..worker.exchange import Exchange

__all__ = ["handler_class_adapter"]


class _ServerInfo:
    """What http.server's handlers look up on `self.server`."""

    def __init__(self, address: Any) -> None:
        self.server_address = address
        if isinstance(address, tuple):
            self.server_name, self.server_port = str(address[0]), int(address[1])
        else:
            self.server_name, self.server_port = "localhost", 0


def _one_request(cls: type[http.server.BaseHTTPRequestHandler]
                 ) -> type[http.server.BaseHTTPRequestHandler]:
    """`cls`, answering one request per instance and saying Connection: close when the
    worker already knows the connection ends (a stop, --max-keepalive-requests)."""

    class OneRequest(cls):  # type: ignore[valid-type, misc]
        def handle_one_request(self) -> None:
            super().handle_one_request()
            self.connection.keep_alive = not getattr(self, "close_connection", True)
            self.close_connection = True  # the next request comes through forkhttpd

        def send_response(self, code: int, message: str | None = None) -> None:
            super().send_response(code, message)
            if code >= 200 and self.connection.closing():
                self.send_header("Connection", "close")

    OneRequest.__name__ = cls.__name__
    OneRequest.__qualname__ = cls.__qualname__
    OneRequest.__module__ = cls.__module__
    return OneRequest


def handler_class_adapter(cls: Any, limits: Limits | None = None, keep_alive: float = 5.0,
                          header_timeout: float = 10.0, max_requests: int = 1000) -> Any:
    """Answer each request with a new instance of `cls`; `cls` may be a functools.partial of
    the class, e.g. with directory=. The head limits, --keep-alive, --header-timeout and
    --max-keepalive-requests are the worker loop's for every request; the parameters are
    accepted for the callers that pass them."""
    partial = cls if isinstance(cls, functools.partial) else None
    if partial is not None:
        cls = partial.func
    handler: Any = _one_request(cls)
    if partial is not None:
        handler = functools.partial(handler, *partial.args, **partial.keywords)

    def handle(exchange: Exchange) -> None:
        sock = exchange.as_socket()
        peer = exchange.client  # a trusted proxy's word about the client
        client = peer if isinstance(peer, tuple) else (str(peer or "unix"), 0)
        handler(sock, client, _ServerInfo(sock.getsockname()))
        if sock.timed_out is not None:
            raise sock.timed_out  # a body timeout the class caught: answered 408 if it can be
        if exchange.started:
            exchange.end_raw(sock.keep_alive and not sock.closed)

    return handle
