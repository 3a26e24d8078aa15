"""A client connection handed over whole to an adapter (http.server's handler classes), as a
socket-like object; must not import the worker's process module or master, and makes no socket
call itself: it reads and writes through the worker loop's Connection, which owns the socket.

What the object adds to the connection: the request bytes forkhttpd already read are
replayed first; waits are cut into slices of at most a second so that the worker's heartbeat
keeps beating while a client is slow or idle; and between two requests (`idle`) the wait is
bounded by `idle_timeout` and ends early, as a clean end of stream, when the worker is
stopping.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["TakenSocket"]

_SLICE = 1.0  # seconds between heartbeats while waiting for the client


class _Reader(io.RawIOBase):
    def __init__(self, sock: TakenSocket) -> None:
        self.sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.sock.take(len(view))
        view[:len(data)] = data
        return len(data)


class _Writer(io.RawIOBase):
    def __init__(self, sock: TakenSocket) -> None:
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sock.give(data)
        return len(data)


class TakenSocket:
    """Enough of socket.socket for socketserver.StreamRequestHandler and its subclasses."""

    def __init__(self, conn: Connection, replay: bytes, beat: Callable[[], None],
                 stopping: Callable[[], bool]) -> None:
        self.conn = conn
        self._replay = replay
        self._beat = beat
        self._stopping = stopping
        self._timeout: float | None = None
        self.idle = False  # between two requests: the next byte starts a new one
        self.idle_timeout = 5.0
        self.closed = False

    def stopping(self) -> bool:
        """The worker was asked to stop: end the connection after the current request."""
        return self._stopping()

    # -- the socket API handler classes use ------------------------------------------------
    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def setsockopt(self, *args: Any) -> None:
        """Accepted and ignored: TCP_NODELAY is already set (inherited from the listener)."""

    def fileno(self) -> int:
        return self.conn.fd

    def getpeername(self) -> Any:
        return self.conn.peer

    def getsockname(self) -> Any:
        return self.conn.local_address()

    def recv(self, size: int, flags: int = 0) -> bytes:
        return self.take(size)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        data = self.take(nbytes or len(view))
        view[:len(data)] = data
        return len(data)

    def take(self, size: int) -> bytes:
        """Up to `size` bytes: replayed ones first, then from the client."""
        if self._replay:
            data, self._replay = self._replay[:size], self._replay[size:]
            self.idle = False
            return data
        data = self._wait_for_data()
        if len(data) > size:
            data, self._replay = data[:size], data[size:]
        return data

    def _wait_for_data(self) -> bytes:
        idle = self.idle
        timeout = self.idle_timeout if idle else self._timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            data = self.conn.recv_nowait()
            if data is not None:
                self.idle = False
                return data
            if idle and self._stopping():
                return b""  # the worker is stopping: end a kept-alive connection cleanly
            left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
            if left <= 0:
                if idle:
                    return b""  # idle for the whole keep-alive time: end of stream
                raise TimeoutError("timed out")
            if not self.conn.wait_readable(left):
                self._beat()

    def sendall(self, data: Any) -> None:
        self.give(data)

    def give(self, data: Any) -> None:
        """Send all of `data` to the client (BrokenPipeError when it is gone)."""
        from .exchange import ClientGone

        try:
            self.conn.send_all(data, self._timeout or 30.0)
        except ClientGone as error:
            raise BrokenPipeError(str(error)) from None
        self._beat()

    def send(self, data: Any) -> int:
        self.give(data)
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
        self.conn.shutdown(how)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.close()
