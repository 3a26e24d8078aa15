"""One request/response cycle as the adapters see it: read the body, send the response in
whichever shape it has (bytes, file, iterable); must not touch a socket itself (it calls the
connection's methods, which live in the serve package) and must not import worker or arbiter."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..protocol import NEED_DATA, Data, EndOfMessage, Request
from .parts import ResponseParts, error_parts
from .takeover import TakenSocket

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["ClientGone", "Exchange", "HandlerTimeout"]


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


class ClientGone(Exception):
    """The client closed or stopped reading; nothing more can be sent on this connection."""


class HandlerTimeout(BaseException):
    """Raised inside a handler that ran past --timeout (a BaseException, so that a handler's
    own `except Exception` cannot swallow it)."""


class Exchange:
    """A request in flight on one connection."""

    __slots__ = ("conn", "request", "close", "started", "status", "bytes_sent", "body_sent",
                 "start", "_continue_sent", "_body_done", "_body_bytes", "_last_beat")

    def __init__(self, conn: Connection, request: Request, close: bool) -> None:
        self.conn = conn
        self.request = request
        self.close = close
        self.started = False
        self.status = 0
        self.bytes_sent = 0  # on the wire: head, framing and body
        self.body_sent = 0  # the body alone (the access log's %b, as Apache counts it)
        self.start = time.monotonic()
        self._continue_sent = False
        self._body_done = False  # even a bodiless request ends with EndOfMessage
        self._body_bytes = 0
        self._last_beat = self.start

    @property
    def peer(self) -> object:
        return self.conn.peer

    @property
    def local_address(self) -> Any:
        """The address the client connected to: (host, port, ...) for TCP, a path for unix."""
        return self.conn.local_address()

    @property
    def stopping(self) -> bool:
        """The worker was asked to stop: a long stream should end soon."""
        return bool(self.conn.loop.stopping)

    def beat(self) -> None:
        """A long response is making progress: refresh the worker's heartbeat (at most once a
        second), so that the master does not take a streaming worker for a stuck one."""
        now = time.monotonic()
        if now - self._last_beat >= 1.0:
            self._last_beat = now
            tick = self.conn.loop.on_tick
            if tick is not None:
                tick(now)

    def client_closed(self) -> bool:
        """True once the client has closed its side (or reset the connection); anything it
        sent meanwhile is dropped, so only call this on a response that ends the connection."""
        return self.conn.recv_nowait() == b""

    def takeover(self) -> TakenSocket:
        """Hand the whole connection to the adapter (http.server handler classes): returns a
        socket-like object that first replays this request's head and any bytes already
        buffered, and the serve loop forgets the connection. The head is rebuilt from the
        parsed request, so field names arrive in Title-Case."""
        request = self.request
        lines = [request.request_line]
        lines += [f"{_title(name)}: {value}" for name, value in request.headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.started = True
        self._body_done = True
        return TakenSocket(self.conn, head + self.conn.detach(), self.beat,
                           lambda: self.stopping)

    # -- request body --------------------------------------------------------------------
    def read_chunk(self) -> bytes:
        """The next piece of the request body; b"" once it is complete.

        Sends 100 Continue the first time the body is asked for (RFC 9110 10.1.1), and
        enforces the minimum body rate: a body must keep arriving at --min-body-rate bytes/s
        after a grace of --header-timeout seconds, or TimeoutError ends the request (408).
        """
        if self._body_done:
            return b""
        proto = self.conn.proto
        while True:
            event = proto.next_event()
            if type(event) is Data:
                self._body_bytes += len(event.data)
                return event.data
            if isinstance(event, EndOfMessage):
                self._body_done = True
                return b""
            if event is NEED_DATA:
                if self.request.expect_continue and not self._continue_sent and not self.started:
                    self._continue_sent = True
                    self.conn.send_all(proto.informational_response(100))
                self.conn.fill(self._body_deadline() - time.monotonic())
                continue
            self._body_done = True  # PAUSED or anything else: the body is over
            return b""

    def _body_deadline(self) -> float:
        # the settings are read here, not copied into every exchange: few requests have a body
        options = self.conn.loop.options
        allowance = options.header_timeout
        if options.min_body_rate > 0:
            allowance += self._body_bytes / options.min_body_rate
        else:
            allowance = max(allowance, 3600.0)
        return self.start + allowance

    def read_body(self) -> bytes:
        """The whole request body (limited by --limit-request-body in the protocol)."""
        parts: list[bytes] = []
        while True:
            chunk = self.read_chunk()
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def discard_body(self) -> None:
        """Read and drop a body the handler left unread, as far as it has already arrived,
        so that the connection can be reused; stops without waiting."""
        proto = self.conn.proto
        while not self._body_done:
            event = proto.next_event()
            if isinstance(event, EndOfMessage):
                self._body_done = True
            elif event is NEED_DATA:
                data = self.conn.recv_nowait()
                if not data:
                    return
                proto.receive_data(data)
            elif type(event) is not Data:
                return

    # -- response ------------------------------------------------------------------------
    def respond(self, parts: ResponseParts) -> None:
        """Send a finished response: bytes in one send, a file by sendfile, else streamed.
        An adapter's last act: on a connection that closes after it, the loop's close
        follows at once and carries the response's tail (Connection.send_all, `last`)."""
        body = parts.body
        if not self._body_done:
            if self.conn.proto.body_done():
                self._body_done = True
            else:
                self.discard_body()
        # a body left unread that has not all arrived can't be skipped without waiting for
        # the client: say so in this response and close after it
        close = self.close or parts.close or not self._body_done
        self.status = parts.status
        conn = self.conn
        if type(body) is bytes:
            data = conn.proto.simple_response(parts.status, parts.headers, body, close=close,
                                              trusted=parts.trusted)
            self.started = True  # only now: a refused head can still become a 500
            self.bytes_sent = len(data)
            if not (self.request.method == "HEAD" or parts.status < 200
                    or parts.status in (204, 304)):  # those are sent without their body
                self.body_sent = len(body)
            conn.send_all(data, last=not conn.proto.keep_alive)
            return
        push = getattr(body, "__forkhttpd_push__", None)
        if push is not None:  # a body that drives the connection itself (SSE)
            push(self, parts, close)
            return
        if hasattr(body, "fileno") and hasattr(body, "read"):
            self._respond_file(parts, body, close)
            return
        self._respond_stream(parts, body, close)

    def _respond_file(self, parts: ResponseParts, handle: Any, close: bool) -> None:
        conn = self.conn
        try:
            fd = handle.fileno()
            offset = handle.tell()
            length = getattr(handle, "length", None)  # a FileSlice: one range of the file
            size = os.fstat(fd).st_size - offset if length is None else length
            head = conn.proto.start_response(parts.status, parts.headers, size, close=close,
                                             trusted=parts.trusted)
            self.started = True
            status = parts.status
            bodiless = (self.request.method == "HEAD" or status < 200 or status in (204, 304))
            conn.send_all(head, more=not bodiless and size > 0)
            self.bytes_sent = len(head)
            if not bodiless and size > 0:
                sent = conn.sendfile(fd, offset, size)
                self.bytes_sent += sent
                self.body_sent = sent
                conn.proto.note_body_sent(sent)  # sendfile bypassed send_data's framing
            tail = conn.proto.end_response()
            if tail:
                conn.send_all(tail)
        finally:
            handle.close()

    def _respond_stream(self, parts: ResponseParts, body: Iterable[Any], close: bool) -> None:
        try:
            self.begin(parts.status, parts.headers, None, close=close, trusted=parts.trusted)
            for piece in body:
                if isinstance(piece, str):
                    piece = piece.encode("utf-8")
                if piece:
                    self.write(piece)
            self.finish()
        finally:
            closer = getattr(body, "close", None)
            if closer is not None:
                closer()

    # -- a response sent piece by piece (WSGI, SSE, streams) ------------------------------
    def begin(self, status: int, headers: list[tuple[str, str]],
              content_length: int | None = None, *, close: bool = False,
              first: bytes = b"", trusted: bytes = b"") -> None:
        """Send the response head, with the first piece of the body in the same send
        (`trusted`: the server's own pre-encoded field lines, see ResponseParts)."""
        if not self._body_done:
            self.discard_body()
        self.status = status
        proto = self.conn.proto
        close = self.close or close or not self._body_done
        data = proto.start_response(status, headers, content_length, close=close,
                                    trusted=trusted)
        self.started = True
        if first:
            framed = proto.send_data(first)
            data += framed
            self.body_sent += len(first) if framed else 0
        self.conn.send_all(data)
        self.bytes_sent += len(data)

    def write(self, data: bytes) -> None:
        """Send one more piece of a begun body (framed: chunked, counted or raw)."""
        framed = self.conn.proto.send_data(data)
        if framed:
            self.conn.send_all(framed)
            self.bytes_sent += len(framed)
            self.body_sent += len(data)
            self.beat()

    def finish(self) -> None:
        """End a begun body (the last chunk; checks a declared Content-Length was met)."""
        tail = self.conn.proto.end_response()
        if tail:
            self.conn.send_all(tail)
            self.bytes_sent += len(tail)

    def respond_error(self, status: int, message: str, close: bool = False) -> None:
        self.close = self.close or close
        self.respond(error_parts(status, message))

    def respond_health(self, healthy: bool) -> None:
        if healthy:
            self.respond(error_parts(200, "ok"))
        else:
            self.respond_error(503, "stopping", close=True)
