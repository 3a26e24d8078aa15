"""The handler-class interface: a subclass of http.server.BaseHTTPRequestHandler (say
SimpleHTTPRequestHandler) gets each connection as http.server would hand it over; must not
import the worker's loop or process, config or master (the connection comes from
Exchange.takeover()).

forkhttpd has parsed the first request head (so its limits and its 4xx answers apply), then
hands the whole connection over: the class re-reads that head, replayed, and handles this
and any further keep-alive requests itself. Further heads are held to the same limits
(checked after http.server's own parse, which is bounded). Between two requests the wait is
bounded by --keep-alive and ends when the worker stops; --max-keepalive-requests holds too.
While the class holds a connection it holds the worker.
"""

from __future__ import annotations

import functools
import http.server
import logging
import socket
from typing import Any

from ..protocol import Limits
from ..worker.exchange import Exchange

__all__ = ["handler_class_adapter"]

log = logging.getLogger("forkhttpd.error")


class _ServerInfo:
    """What http.server's handlers look up on `self.server`."""

    def __init__(self, address: Any) -> None:
        self.server_address = address
        if isinstance(address, tuple):
            self.server_name, self.server_port = str(address[0]), int(address[1])
        else:
            self.server_name, self.server_port = "localhost", 0


def _limited(cls: type[http.server.BaseHTTPRequestHandler], limits: Limits,
             max_requests: int) -> type[http.server.BaseHTTPRequestHandler]:
    """`cls` with forkhttpd's head limits and keep-alive policy."""

    class Limited(cls):  # type: ignore[valid-type, misc]
        _forkhttpd_served = 0

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            line = self.raw_requestline.rstrip(b"\r\n")
            if len(line) > limits.max_request_line:
                self.close_connection = True
                self.send_error(414)
                return False
            fields = self.headers.items()
            if len(fields) > limits.max_header_fields or any(
                    len(name) + len(value) + 2 > limits.max_header_field_size
                    for name, value in fields):
                self.close_connection = True
                self.send_error(431)
                return False
            return True

        def handle_one_request(self) -> None:
            super().handle_one_request()
            self._forkhttpd_served += 1
            sock = self.connection
            sock.idle = True
            if (sock.stopping() or 0 < max_requests <= self._forkhttpd_served):
                self.close_connection = True

    Limited.__name__ = cls.__name__
    Limited.__qualname__ = cls.__qualname__
    Limited.__module__ = cls.__module__
    return Limited


def handler_class_adapter(cls: Any, limits: Limits | None = None, keep_alive: float = 5.0,
                          header_timeout: float = 10.0, max_requests: int = 1000) -> Any:
    """Answer each connection with `cls` (instantiated per connection, as http.server does);
    `cls` may be a functools.partial of the class, e.g. with directory=."""
    partial = cls if isinstance(cls, functools.partial) else None
    if partial is not None:
        cls = partial.func
    handler: Any = _limited(cls, limits or Limits(), max_requests if keep_alive > 0 else 1)
    if partial is not None:
        handler = functools.partial(handler, *partial.args, **partial.keywords)

    def handle(exchange: Exchange) -> None:
        sock = exchange.takeover()
        sock.settimeout(header_timeout)  # the class's own `timeout`, if set, replaces it
        sock.idle_timeout = keep_alive
        peer = exchange.peer
        client = peer if isinstance(peer, tuple) else (str(peer or "unix"), 0)
        try:
            handler(sock, client, _ServerInfo(sock.getsockname()))
        except OSError as error:  # the client went away mid-response
            log.debug("%s: connection from %s ended: %s", cls.__name__, client[0], error)
        finally:
            sock.shutdown(socket.SHUT_WR)
            sock.close()

    return handle
