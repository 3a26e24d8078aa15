"""One request handed to an http.server handler class as a socket-like object; must not import
the loop, interfaces, master, config or ops, and makes no socket call itself: it reads and
writes through its Exchange.

The class reads exactly one request's bytes: its head, then its body as forkhttpd frames it
(a chunked body re-chunked, so the class sees what the client sent), then end of stream. So
a body the class leaves unread is skipped by forkhttpd, never parsed as a next request, and
the next request on the connection is parsed by forkhttpd, with its limits, like any other.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from .errors import BodyTimeout

if TYPE_CHECKING:
    from .exchange import Exchange

__all__ = ["RequestSocket"]


class _Reader(io.RawIOBase):
    def __init__(self, sock: RequestSocket) -> None:
        self.sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.sock.take(len(view))
        view[:len(data)] = data
        return len(data)


class _Writer(io.RawIOBase):
    def __init__(self, sock: RequestSocket) -> None:
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sock.sendall(data)
        return len(data)


class RequestSocket:
    """Enough of socket.socket for socketserver.StreamRequestHandler and its subclasses, over
    one request. `keep_alive` is what the class decided (set by the adapter); `timed_out`
    holds a body timeout the class swallowed (http.server catches any TimeoutError)."""

    def __init__(self, exchange: Exchange, head: bytes) -> None:
        self.exchange = exchange
        self._pending = head  # bytes read ahead: the head first, then spare body bytes
        self._chunked = exchange.request.chunked
        self._ended = False
        self._timeout: float | None = None
        self.keep_alive = False
        self.timed_out: BodyTimeout | None = None
        self.closed = False

    def closing(self) -> bool:
        """The worker already knows this response ends the connection."""
        return self.exchange.closing()

    # -- the socket API handler classes use ------------------------------------------------
    def settimeout(self, timeout: float | None) -> None:
        """Kept for gettimeout(); body reads keep forkhttpd's own deadlines."""
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def setsockopt(self, *args: Any) -> None:
        """Accepted and ignored: TCP_NODELAY is already set (inherited from the listener)."""

    def fileno(self) -> int:
        return self.exchange.conn.fd

    def getpeername(self) -> Any:
        return self.exchange.peer

    def getsockname(self) -> Any:
        return self.exchange.local_address

    def recv(self, size: int, flags: int = 0) -> bytes:
        return self.take(size)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        data = self.take(nbytes or len(view))
        view[:len(data)] = data
        return len(data)

    def take(self, size: int) -> bytes:
        """Up to `size` bytes of this request; b"" once it is all read."""
        data = self._pending
        if not data:
            data = self._next_body_piece()
        if len(data) > size:
            data, self._pending = data[:size], data[size:]
        else:
            self._pending = b""
        return data

    def _next_body_piece(self) -> bytes:
        if self._ended:
            return b""
        try:
            piece = self.exchange.read_chunk()
        except BodyTimeout as error:
            self.timed_out = error
            raise
        if piece:
            # RFC 9112 7.1: the class gets the chunked framing it would have read
            return b"%x\r\n%b\r\n" % (len(piece), piece) if self._chunked else piece
        self._ended = True
        return b"0\r\n\r\n" if self._chunked else b""

    def sendall(self, data: Any) -> None:
        """Send all of `data` to the client (raises ClientGone when it is gone)."""
        self.exchange.send_raw(data)

    def send(self, data: Any) -> int:
        self.exchange.send_raw(data)
        return len(data)

    def makefile(self, mode: str = "r", buffering: int | None = None, *,
                 encoding: str | None = None, errors: str | None = None,
                 newline: str | None = None) -> Any:
        raw: io.RawIOBase = _Writer(self) if "w" in mode else _Reader(self)
        if buffering == 0:
            return raw
        size = io.DEFAULT_BUFFER_SIZE if buffering is None or buffering < 0 else buffering
        stream: Any = (io.BufferedWriter(raw, size) if "w" in mode
                       else io.BufferedReader(raw, size))
        if "b" not in mode:
            stream = io.TextIOWrapper(stream, encoding, errors, newline)
        return stream

    def shutdown(self, how: int) -> None:
        """The class ends the connection: forkhttpd closes it after this response."""
        self.closed = True

    def close(self) -> None:
        self.closed = True
