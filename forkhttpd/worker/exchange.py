"""One request/response cycle as the adapters see it: read the body, send the response in
whichever shape it has (bytes, file, iterable, or an http.server class's own bytes); must not
touch a socket itself (it calls its Connection's methods) and must not import the loop,
interfaces, master, config or ops.

The worker's half of the keep-alive decision is made here, once per response, in
`_must_close`; the protocol adds its own rules (RFC 9112 9.3, 9.6) when it writes the head
and keeps the verdict in `keep_alive`, which the loop then follows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..protocol import NEED_DATA, Data, EndOfMessage, Request
from ..protocol.forwarded import Forwarded, Trust, resolve_forwarded
from .errors import BodyTimeout, ClientGone, HandlerTimeout
from .parts import ResponseParts, error_parts

if TYPE_CHECKING:
    from .connection import Connection
    from .handler_socket import RequestSocket

__all__ = ["Adapter", "BodyTimeout", "ClientGone", "Exchange", "ExchangeContext",
           "HandlerTimeout"]

_SLICE = 1.0  # longest wait for body bytes between two heartbeats


class ExchangeContext:
    """What an exchange needs of its worker, and nothing more: the body-rate settings, the
    stop flag (set by the worker's signal handler, read where a response head is written),
    the heartbeat and the clock. One per loop, shared by its exchanges."""

    __slots__ = ("stopping", "header_timeout", "min_body_rate", "on_tick", "clock", "trust")

    def __init__(self, header_timeout: float = 10.0, min_body_rate: int = 1024,
                 on_tick: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 trust: Trust | None = None) -> None:
        self.stopping = False
        self.header_timeout = header_timeout
        self.min_body_rate = min_body_rate
        self.on_tick = on_tick
        self.clock = clock
        self.trust = trust  # --forwarded-allow-ips (None: nobody)


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


class Exchange:
    """A request in flight on one connection. `close` is the loop's policy for this request
    (--keep-alive 0, the last of --max-keepalive-requests); adapters may set it too."""

    __slots__ = ("conn", "request", "ctx", "close", "started", "status", "bytes_sent", "body_sent",
                 "start", "_continue_sent", "_body_done", "_body_bytes", "_last_beat",
                 "_forwarded")

    def __init__(self, conn: Connection, request: Request, ctx: ExchangeContext,
                 close: bool = False) -> None:
        self.conn = conn
        self.request = request
        self.ctx = ctx
        self.close = close
        self.started = False
        self.status = 0
        self.bytes_sent = 0  # on the wire: head, framing and body
        self.body_sent = 0  # the body alone (the access log's %b, as Apache counts it)
        self.start = self._last_beat = ctx.clock()
        self._continue_sent = False
        self._body_done = False  # even a bodiless request ends with EndOfMessage
        self._body_bytes = 0
        self._forwarded: Forwarded | None | bool = False  # False: not asked yet

    @property
    def peer(self) -> object:
        return self.conn.peer

    # -- who and how the client asked: the one answer every interface and the log use --------
    @property
    def forwarded(self) -> Forwarded | None:
        """What trusted proxies said about this request (X-Forwarded-*, Forwarded), worked out
        the first time anyone asks; None when nothing applies (the peer is not trusted, or
        sent no well-formed forwarding field)."""
        found = self._forwarded
        if found is False:
            trust = self.ctx.trust
            found = self._forwarded = (None if trust is None else resolve_forwarded(
                self.conn.peer, self.request.headers, trust))
        return found  # type: ignore[return-value]

    @property
    def client(self) -> object:
        """The client's address: (host, port) for TCP (as a trusted proxy or the PROXY header
        says, else the peer's), a path or "" for a Unix socket."""
        forwarded = self.forwarded
        if forwarded is None or forwarded.client is None:
            return self.conn.peer
        return (forwarded.client, forwarded.client_port or 0)

    @property
    def scheme(self) -> str:
        """"https" or "http": as a trusted proxy says, else the connection's own."""
        forwarded = self.forwarded
        if forwarded is not None and forwarded.scheme is not None:
            return forwarded.scheme
        return self.conn.scheme

    @property
    def local_address(self) -> Any:
        """The address the client connected to: (host, port, ...) for TCP, a path for unix."""
        return self.conn.local_address()

    @property
    def stopping(self) -> bool:
        """The worker was asked to stop: a long stream should end soon."""
        return self.ctx.stopping

    def beat(self) -> None:
        """The request is making progress: refresh the worker's heartbeat (at most once a
        second), so that the master does not take a streaming worker for a stuck one."""
        ctx = self.ctx
        now = ctx.clock()
        if now - self._last_beat >= 1.0:
            self._last_beat = now
            if ctx.on_tick is not None:
                ctx.on_tick(now)

    def client_closed(self) -> bool:
        """True once the client has closed its side (or reset the connection); anything it
        sent meanwhile is dropped, so only call this on a response that ends the connection."""
        return self.conn.recv_nowait() == b""

    # -- request body --------------------------------------------------------------------
    def read_chunk(self) -> bytes:
        """The next piece of the request body; b"" once it is complete.

        Sends 100 Continue the first time the body is asked for (RFC 9110 10.1.1), and
        enforces the minimum body rate: a body must keep arriving at --min-body-rate bytes/s
        after a grace of --header-timeout seconds, or BodyTimeout ends the request (408).
        While the body keeps to that rate the heartbeat goes on: the worker is waiting on a
        client, not stuck.
        """
        if self._body_done:
            return b""
        conn = self.conn
        proto = conn.proto
        while True:
            event = proto.next_event()
            if type(event) is Data:
                self._body_bytes += len(event.data)
                return event.data
            if isinstance(event, EndOfMessage):
                self._body_done = True
                return b""
            if event is not NEED_DATA:
                self._body_done = True  # PAUSED or anything else: the body is over
                return b""
            if self.request.expect_continue and not self._continue_sent and not self.started:
                self._continue_sent = True
                conn.send_all(proto.informational_response(100))
            left = self._body_deadline() - self.ctx.clock()
            if left <= 0:
                raise BodyTimeout("request body not received in time")
            conn.fill(left if left < _SLICE else _SLICE)
            self.beat()

    def _body_deadline(self) -> float:
        ctx = self.ctx
        allowance = ctx.header_timeout
        if ctx.min_body_rate > 0:
            allowance += self._body_bytes / ctx.min_body_rate
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

    # -- the keep-alive decision ------------------------------------------------------------
    def _must_close(self, asked: bool) -> bool:
        """The worker's half of the keep-alive decision, made as the response head is written:
        the adapter's wish (`asked`), the loop's policy for this request (`close`), a stop
        asked meanwhile, or a body left unread that has not all arrived (it cannot be skipped
        without waiting for the client, so the response says close)."""
        if not self._body_done:
            if self.conn.proto.body_done():
                self._body_done = True
            else:
                self.discard_body()
        return asked or self.close or self.ctx.stopping or not self._body_done

    # -- response ------------------------------------------------------------------------
    def respond(self, parts: ResponseParts) -> None:
        """Send a finished response: bytes in one send, a file by sendfile, else streamed.
        An adapter's last act: on a connection that closes after it, the loop's close
        follows at once and carries the response's tail (Connection.send_all, `last`)."""
        body = parts.body
        close = self._must_close(parts.close)
        self.status = parts.status
        conn = self.conn
        if type(body) is bytes:
            proto = conn.proto
            data = proto.simple_response(parts.status, parts.headers, body, close=close,
                                         trusted=parts.trusted)
            self.started = True  # only now: a refused head can still become a 500
            self.bytes_sent = len(data)
            if not (self.request.method == "HEAD" or parts.status < 200
                    or parts.status in (204, 304)):  # those are sent without their body
                self.body_sent = len(body)
            conn.send_all(data, last=not proto.keep_alive)
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
        close = self._must_close(close)
        self.status = status
        proto = self.conn.proto
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

    # -- a response an http.server handler class writes itself ------------------------------
    def as_socket(self) -> RequestSocket:
        """This one request as a socket-like object for an http.server handler class: reading
        gives the request head (rebuilt from the parsed request, so field names arrive in
        Title-Case), then the body as forkhttpd frames it, then end of stream; writing sends
        the class's bytes as they are. Call `end_raw` once the class is done. Expect is left
        out: forkhttpd sends 100 Continue itself when the class first reads the body."""
        from .handler_socket import RequestSocket  # only handler-class workers need it

        request = self.request
        lines = [request.request_line]
        lines += [f"{_title(name)}: {value}" for name, value in request.headers
                  if name != "expect"]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return RequestSocket(self, head)

    def closing(self) -> bool:
        """Whether the worker already knows this response ends the connection (a class adds
        Connection: close to its head then)."""
        return self.close or self.ctx.stopping

    def send_raw(self, data: bytes | bytearray | memoryview) -> None:
        """Send bytes a handler class framed itself (its status is read from its status
        line, for the access log and the counters). Any bytes-like object: a buffered
        writer hands over memoryviews."""
        if self.status < 200 and data[:5] == b"HTTP/":
            code = bytes(data[9:12])
            if code.isdigit():
                self.status = int(code)
        self.started = True
        self.conn.send_all(data)
        self.bytes_sent += len(data)
        self.beat()

    def end_raw(self, keep_alive: bool) -> None:
        """A handler class has written its whole response and wants the connection kept
        (`keep_alive`, its own close_connection's opposite): the protocol ends its side of
        the cycle, with its keep-alive rules applied as if it had framed the response."""
        close = self._must_close(not keep_alive)
        status = self.status
        proto = self.conn.proto
        # The bytes on the wire are the class's; these calls only move the protocol's state.
        proto.start_response(status if 200 <= status <= 599 else 200, [], 0, close=close)
        proto.end_response()


Adapter = Callable[[Exchange], None]
"""An app as the worker runs it: answer one exchange (interfaces/ builds these)."""
