"""The --status-bind endpoint: a non-blocking HTTP/1.1 server inside the master's select loop,
parsing through forkhttpd.protocol (the same strict rules as every other port: a bad head
gets its 4xx) and answering GET/HEAD from memory; must not import arbiter, supervise, worker
or psutil, and never blocks: it reads what is there, answers, closes.

Each connection carries one request (the answer says Connection: close) and gets DEADLINE
seconds for everything; at most MAX_CLIENTS are open at once, so that no client can hold the
master up. After the answer the server half-closes and reads until the client's EOF, so that
unread request bytes never turn the close into a reset that destroys the answer.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

from ..protocol import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    EndOfMessage,
    Limits,
    ProtocolError,
    ServerConnection,
)

__all__ = ["Answer", "StatusServer"]

log = logging.getLogger("forkhttpd.error")

#: what the application side returns for a path: (status, content type, body)
Answer = Callable[[str], tuple[int, str, bytes]]

# A status request is a short GET: small limits bound what a client can make the master buffer.
LIMITS = Limits(max_request_line=2048, max_header_fields=32, max_header_field_size=2048,
                max_body_size=4096)
# a head, an end, and at most one Data event per body byte (a body of one-byte chunks)
_MAX_EVENTS = LIMITS.max_body_size + 8


class _Client:
    __slots__ = ("sock", "proto", "outbox", "deadline", "answered")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.proto = ServerConnection(LIMITS)
        self.outbox = b""
        self.deadline = deadline
        self.answered = False  # the answer is queued: only the client's EOF is awaited


class StatusServer:
    """The status endpoint; the master drives it with read_fds/write_fds, then step()."""

    DEADLINE = 2.0
    MAX_CLIENTS = 16

    def __init__(self, sock: socket.socket, answer: Answer) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.answer = answer
        self.clients: dict[int, _Client] = {}

    def read_fds(self) -> list[int]:
        return [self.sock.fileno()] + [fd for fd, c in self.clients.items() if not c.outbox]

    def write_fds(self) -> list[int]:
        return [fd for fd, client in self.clients.items() if client.outbox]

    def step(self, readable: set[int], writable: set[int], now: float) -> None:
        if self.sock.fileno() in readable:
            self._accept(now)
        for fd, client in list(self.clients.items()):
            if fd in readable and not client.outbox:
                self._read(client)
            elif fd in writable and client.outbox:
                self._send(client)
            if fd in self.clients and now >= client.deadline:
                self._close(client)

    def adopt(self, sock: socket.socket, now: float) -> bool:
        """Serve the connected `sock` (closed at once, False, when MAX_CLIENTS are open)."""
        if len(self.clients) >= self.MAX_CLIENTS:
            sock.close()
            return False
        sock.setblocking(False)
        self.clients[sock.fileno()] = _Client(sock, now + self.DEADLINE)
        return True

    def _accept(self, now: float) -> None:
        for _ in range(8):
            try:
                sock, _peer = self.sock.accept()
            except OSError:  # BlockingIOError, or a connection gone before accept
                return
            self.adopt(sock, now)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if client.answered:  # lingering: discard until EOF
            if not data:
                self._close(client)
            return
        client.proto.receive_data(data)
        self._advance(client)

    def _advance(self, client: _Client) -> None:
        """Feed the protocol's events until the request is whole (then answer), more bytes
        are needed, or the protocol refuses the request (then its 4xx)."""
        proto = client.proto
        for _ in range(_MAX_EVENTS):  # each event consumes input, of which there is little
            try:
                event = proto.next_event()
            except ProtocolError as error:
                self._queue(client, proto.error_response(error))
                return
            if event is NEED_DATA:
                return
            if isinstance(event, ConnectionClosed):
                self._close(client)
                return
            if isinstance(event, EndOfMessage) or event is PAUSED:
                self._queue(client, self._respond(proto))
                return
            # the Request itself, or Data of a (small, bounded) body nobody reads: go on

    def _respond(self, proto: ServerConnection) -> bytes:
        request = proto.request
        assert request is not None
        headers = [("Content-Type", "text/plain"), ("Cache-Control", "no-store")]
        if request.method not in ("GET", "HEAD"):
            headers.append(("Allow", "GET, HEAD"))
            return proto.simple_response(405, headers, b"GET or HEAD only\n", close=True)
        try:
            status, kind, body = self.answer(request.path)
        except Exception:  # noqa: BLE001 - a status bug must never take the master down
            log.exception("status server: error answering %s", request.path)
            status, kind, body = 500, "text/plain", b"internal error\n"
        headers[0] = ("Content-Type", kind)
        return proto.simple_response(status, headers, body, close=True)

    def _queue(self, client: _Client, data: bytes) -> None:
        client.answered = True
        client.outbox = data
        self._send(client)

    def _send(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.outbox)
        except BlockingIOError:
            return
        except OSError:
            self._close(client)
            return
        client.outbox = client.outbox[sent:]
        if not client.outbox:
            try:
                client.sock.shutdown(socket.SHUT_WR)  # the answer is whole: FIN, then linger
            except OSError:
                self._close(client)

    def _close(self, client: _Client) -> None:
        self.clients.pop(client.sock.fileno(), None)
        client.sock.close()

    def close(self) -> None:
        for client in list(self.clients.values()):
            self._close(client)
        self.sock.close()
