"""A client connection: its socket calls (recv, send, sendfile, shutdown, close) live here and
in the loop beside it, with the connection's phase; must not import interfaces, master, config
or ops, and knows nothing of handlers.

A connection's phase, driven by loop.py (the only writer):

    IDLE    --bytes arrive-->                HEAD     (the --header-timeout clock starts)
    HEAD    --request answered, kept-->      IDLE     (the --keep-alive clock starts)
    any     --answered, unread bytes-->      LINGER   (half-closed, drained for 2 s)
    any     --closed-->                      CLOSED   (final: nothing touches it again)
"""

from __future__ import annotations

import _socket
import enum
import os
import select
import socket
import time

from ..protocol import ServerConnection
from .errors import ClientGone

__all__ = ["Acceptor", "Connection", "Phase"]

_RECV = 65536
_DONTWAIT = socket.MSG_DONTWAIT
_DONTWAIT_MORE = socket.MSG_DONTWAIT | socket.MSG_MORE
_SHUT_WR = socket.SHUT_WR


class Phase(enum.IntEnum):
    IDLE = 0  # between requests (or before the first byte)
    HEAD = 1  # part of a request head is buffered
    LINGER = 2  # the last response is out; unread request bytes are drained
    CLOSED = 3


class Acceptor:
    """Takes connections off one listening socket, as C-level socket objects: socket.socket's
    own accept() converts the family and type to enums in Python on every call, and none of
    socket.socket's Python layer is used here."""

    __slots__ = ("listener", "_accept", "_family", "_type", "_proto")

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self._accept = listener._accept  # type: ignore[attr-defined]
        self._family = int(listener.family)
        self._type = int(listener.type)
        self._proto = listener.proto

    def accept(self) -> tuple[_socket.socket, object]:
        """(socket, peer address); raises BlockingIOError when none is queued."""
        fd, peer = self._accept()
        try:
            return _socket.socket(self._family, self._type, self._proto, fd), peer
        except BaseException:
            os.close(fd)
            raise


class Connection:
    """One client socket with its protocol state and phase. Compared by identity: the loop
    finds it by descriptor number (what epoll reports), and a closed connection's number is
    soon another's."""

    __slots__ = ("sock", "fd", "peer", "proto", "phase", "deadline", "head_start",
                 "served", "registered", "queued", "nonblocking", "fin_pending")
    scheme = "http"  # TLSConnection: https

    def __init__(self, sock: _socket.socket, peer: object, proto: ServerConnection) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.proto = proto
        self.phase = Phase.IDLE
        self.deadline = 0.0
        self.head_start = 0.0
        self.served = 0
        self.registered = False  # in the loop's epoll set
        self.queued = False  # in the loop's list of pipelined requests waiting for a turn
        self.nonblocking = False  # every other call passes MSG_DONTWAIT; sendfile cannot
        # close() must send the FIN itself: a response went out, and a child the handler
        # forked may hold a copy of the socket, so close() alone would send no FIN and the
        # client would wait for that child's exit (or a tail held back by send_all's MSG_MORE
        # would wait for the kernel's probe timer)
        self.fin_pending = False

    # -- reading -------------------------------------------------------------------------
    def recv_nowait(self) -> bytes | None:
        """Bytes if any are waiting, b"" at EOF, None when nothing is there yet."""
        try:
            return self.sock.recv(_RECV, _DONTWAIT)
        except BlockingIOError:
            return None
        except (ConnectionResetError, TimeoutError):
            return b""

    def fill(self, timeout: float) -> bool:
        """Wait up to `timeout` for bytes and feed them to the protocol (b"" at EOF); False
        when none came in time."""
        data = self.recv_nowait()
        if data is None:
            if not self._wait(select.POLLIN, timeout):
                return False
            data = self.recv_nowait()
            if data is None:
                return False
        self.proto.receive_data(data)
        return True

    # -- writing -------------------------------------------------------------------------
    def send_all(self, data: bytes | memoryview, timeout: float = 30.0,
                 more: bool = False, last: bool = False) -> None:
        """Send everything or raise ClientGone; one send() in the common case. `more`: the
        caller sends more at once (a file after its head), so TCP may hold this back and
        put both in the same segments (MSG_MORE overrides TCP_NODELAY for this call).
        `last`: the connection is closed right after this, so the tail waits for the FIN
        and both leave in one segment (the FIN's own segment and the client's ACK of it are
        saved); close() sends that FIN."""
        if last:
            more = self.fin_pending = True
        try:
            sent = self.sock.send(data, _DONTWAIT_MORE if more else _DONTWAIT)
            if sent == len(data):
                return
        except BlockingIOError:
            sent = 0
        except OSError as error:
            raise ClientGone(str(error)) from None
        view = memoryview(data)[sent:]
        deadline = time.monotonic() + timeout
        while view:
            if not self._wait(select.POLLOUT, deadline - time.monotonic()):
                raise ClientGone("client stopped reading")
            try:
                view = view[self.sock.send(view, _DONTWAIT):]
            except BlockingIOError:
                continue
            except OSError as error:
                raise ClientGone(str(error)) from None

    def sendfile(self, fd: int, offset: int, count: int, timeout: float = 30.0) -> int:
        """Zero-copy file body (os.sendfile); returns the bytes sent."""
        total = 0
        deadline = time.monotonic() + timeout
        if not self.nonblocking:  # once per connection (a blocking sendfile has no timeout)
            self.sock.setblocking(False)
            self.nonblocking = True
        while count > 0:
            try:
                sent = os.sendfile(self.fd, fd, offset, count)
            except BlockingIOError:
                if not self._wait(select.POLLOUT, deadline - time.monotonic()):
                    raise ClientGone("client stopped reading") from None
                continue
            except OSError as error:
                raise ClientGone(str(error)) from None
            if sent == 0:
                break  # the file shrank under us: stop, the connection will close
            offset += sent
            count -= sent
            total += sent
            deadline = time.monotonic() + timeout
        return total

    def _wait(self, events: int, timeout: float) -> bool:
        if timeout <= 0:
            return False
        poller = select.poll()
        poller.register(self.fd, events)
        return bool(poller.poll(timeout * 1000.0))

    # -- ending --------------------------------------------------------------------------
    def shutdown(self, how: int = _SHUT_WR) -> bool:
        """Half-close (the FIN also sends a tail held back by send_all); False if the
        connection is already gone."""
        self.fin_pending = False
        try:
            self.sock.shutdown(how)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """The final close (the loop's _final_close calls it, after leaving the epoll set)."""
        self.phase = Phase.CLOSED
        if self.fin_pending:
            self.shutdown()
        try:
            self.sock.close()
        except OSError:
            pass

    def local_address(self) -> object:
        try:
            return self.sock.getsockname()
        except OSError:
            return None
