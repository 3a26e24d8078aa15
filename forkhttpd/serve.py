"""The only module that reads and writes client sockets: a worker's epoll loop over its
listeners and open connections; must not import worker, arbiter, supervision or psutil.

One request is handled at a time, but the worker never waits on an idle keep-alive connection
or on a client that trickles its head: every connection sits in the epoll set, and
parse -> handle -> respond runs for whichever has a complete request head. Deadlines (head,
keep-alive idle, lingering close) are checked a few times a second.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from .exchange import ClientGone, Exchange, HandlerTimeout
from .protocol import NEED_DATA, ConnectionClosed, Limits, ProtocolError, Request, ServerConnection

__all__ = ["Connection", "ServeLoop", "ServeOptions"]

log = logging.getLogger("forkhttpd.error")

_RECV = 65536
_DONTWAIT = socket.MSG_DONTWAIT
_IDLE, _HEAD, _LINGER = 0, 1, 2
_LINGER_SECONDS = 2.0  # how long unread request bytes are drained before the final close
_HOUSEKEEPING = 0.25  # seconds between deadline scans and ticks
_EPOLLIN = select.EPOLLIN
_EPOLLEXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)


@dataclass(frozen=True)
class ServeOptions:
    """What the connection loop needs from the settings (built by the worker)."""

    limits: Limits = Limits()
    keep_alive: float = 5.0
    max_keepalive_requests: int = 1000
    header_timeout: float = 10.0
    min_body_rate: int = 1024
    health_path: str | None = None
    accept_batch: int = 16


class Connection:
    """One client socket with its protocol state; the socket calls live here and nowhere else."""

    __slots__ = ("sock", "fd", "peer", "proto", "phase", "deadline", "head_start",
                 "served", "registered", "loop")

    def __init__(self, sock: socket.socket, peer: object, proto: ServerConnection,
                 loop: ServeLoop) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.proto = proto
        self.phase = _IDLE
        self.deadline = 0.0
        self.head_start = 0.0
        self.served = 0
        self.registered = False
        self.loop = loop

    # -- reading -------------------------------------------------------------------------
    def recv_nowait(self) -> bytes | None:
        """Bytes if any are waiting, b"" at EOF, None when nothing is there yet."""
        try:
            return self.sock.recv(_RECV, _DONTWAIT)
        except BlockingIOError:
            return None
        except (ConnectionResetError, TimeoutError):
            return b""

    def fill(self, timeout: float) -> None:
        """Wait up to `timeout` for bytes and feed them to the protocol (b"" at EOF)."""
        data = self.recv_nowait()
        if data is None:
            if timeout <= 0 or not self._wait(select.POLLIN, timeout):
                raise TimeoutError("no request bytes in time")
            data = self.recv_nowait()
            if data is None:
                return
        self.proto.receive_data(data)

    # -- writing -------------------------------------------------------------------------
    def send_all(self, data: bytes | memoryview, timeout: float = 30.0) -> None:
        """Send everything or raise ClientGone; one send() in the common case."""
        try:
            sent = self.sock.send(data, _DONTWAIT)
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
        self.sock.setblocking(False)
        try:
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
        finally:
            self.sock.setblocking(True)
        return total

    def _wait(self, events: int, timeout: float) -> bool:
        if timeout <= 0:
            return False
        poller = select.poll()
        poller.register(self.fd, events)
        return bool(poller.poll(timeout * 1000.0))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class ServeLoop:
    """A worker's connection loop. `handle(exchange)` answers one request (an adapter)."""

    def __init__(self, listeners: list[socket.socket], handle: Callable[[Exchange], None],
                 options: ServeOptions, on_tick: Callable[[float], None] | None = None,
                 wake_fd: int | None = None,
                 on_response: Callable[[Exchange], None] | None = None) -> None:
        self.handle = handle
        self.options = options
        self.on_tick = on_tick
        self.on_response = on_response
        self.wake_fd = wake_fd
        self.epoll = select.epoll()
        self.listeners = {sock.fileno(): sock for sock in listeners}
        for sock in listeners:
            sock.setblocking(False)
            self.epoll.register(sock.fileno(), _EPOLLIN | _EPOLLEXCLUSIVE)
        if wake_fd is not None:
            self.epoll.register(wake_fd, _EPOLLIN)
        self.conns: dict[int, Connection] = {}
        self.pending: list[Connection] = []  # pipelined requests already in our buffer
        self.requests = 0
        self.stopping = False  # graceful: drain the backlog, finish, close idle, exit
        self.exit_now = False
        self.in_handler = False
        self.current: Exchange | None = None
        self.next_housekeeping = 0.0

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        poll = self.epoll.poll
        conns = self.conns
        listeners = self.listeners
        while not self.exit_now:
            if self.stopping and not listeners and not conns and not self.pending:
                break
            timeout = 0.0 if self.pending else _HOUSEKEEPING
            events = poll(timeout)
            for fd, _mask in events:
                conn = conns.get(fd)
                if conn is not None:
                    self._guarded(self._readable, conn)
                elif fd in listeners:
                    self._accept(listeners[fd])
                elif fd == self.wake_fd:
                    self._drain_wake()
                if self.exit_now:
                    return
            if self.pending:
                pending, self.pending = self.pending, []
                for conn in pending:
                    if conn.fd in conns:
                        self._guarded(self._process, conn)
            now = time.monotonic()
            if now >= self.next_housekeeping:
                self._housekeeping(now)

    def _guarded(self, step: Callable[[Connection], None], conn: Connection) -> None:
        """A bug on one connection costs that connection, never the worker."""
        try:
            step(conn)
        except Exception:
            log.exception("internal error on a connection from %s; closing it", conn.peer)
            self._final_close(conn)

    def _drain_wake(self) -> None:
        assert self.wake_fd is not None
        try:
            os.read(self.wake_fd, 512)
        except OSError:
            pass
        if self.on_tick is not None:
            self.on_tick(time.monotonic())

    def _housekeeping(self, now: float) -> None:
        self.next_housekeeping = now + _HOUSEKEEPING
        if self.on_tick is not None:
            self.on_tick(now)
        if self.stopping and self.listeners:
            self._stop_accepting()
        for conn in [c for c in self.conns.values() if c.deadline <= now]:
            if conn.phase == _HEAD:
                # RFC 9110 15.5.9: the head did not arrive in time.
                self._reject(conn, ProtocolError(408, "request head not received in time"))
            else:
                self._final_close(conn)
        if self.stopping:
            for conn in [c for c in self.conns.values() if c.phase == _IDLE and c.served == 0
                         and not c.proto.has_buffered_data]:
                conn.deadline = min(conn.deadline, now + 1.0)

    def _stop_accepting(self) -> None:
        """Graceful stop: take every connection still waiting in the backlog, then let go."""
        for fd, sock in list(self.listeners.items()):
            self._accept(sock, limit=1 << 30)
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass
            del self.listeners[fd]

    # -- accepting -----------------------------------------------------------------------
    def _accept(self, listener: socket.socket, limit: int = 0) -> None:
        for _ in range(limit or self.options.accept_batch):
            try:
                sock, peer = listener.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("accept failed: %s", error)
                return
            conn = Connection(sock, peer, ServerConnection(self.options.limits), self)
            self.conns[conn.fd] = conn
            conn.head_start = time.monotonic()
            conn.deadline = conn.head_start + self.options.header_timeout
            # Most clients send the request with the connect: read it now, saving an epoll
            # round trip; otherwise the epoll set will tell us.
            data = conn.recv_nowait()
            if data is None:
                self._register(conn)
            else:
                conn.proto.receive_data(data)
                self._guarded(self._process, conn)

    def _register(self, conn: Connection) -> None:
        if not conn.registered:
            self.epoll.register(conn.fd, _EPOLLIN)
            conn.registered = True

    def _readable(self, conn: Connection) -> None:
        data = conn.recv_nowait()
        if data is None:
            return
        if conn.phase == _LINGER:
            if not data:
                self._final_close(conn)
            return
        if conn.phase == _IDLE and data:
            conn.phase = _HEAD
            conn.head_start = time.monotonic()
            conn.deadline = conn.head_start + self.options.header_timeout
        conn.proto.receive_data(data)
        self._process(conn)

    # -- one connection's requests --------------------------------------------------------
    def _process(self, conn: Connection) -> None:
        proto = conn.proto
        pipelined = 0
        while True:
            try:
                event = proto.next_event()
            except ProtocolError as error:
                self._reject(conn, error)
                return
            if event is NEED_DATA:
                self._register(conn)
                if proto.has_buffered_data and conn.phase != _HEAD:
                    conn.phase = _HEAD
                    conn.head_start = time.monotonic()
                    conn.deadline = conn.head_start + self.options.header_timeout
                return
            if type(event) is Request:
                if not self._dispatch(conn, event):
                    return
                if not proto.has_buffered_data:
                    return  # the usual case: wait (registered) for the next request
                pipelined += 1
                if pipelined >= 8:
                    self.pending.append(conn)  # fairness: others get a turn first
                    return
                continue
            if isinstance(event, ConnectionClosed):
                self._final_close(conn)
                return
            # Data / EndOfMessage of a body nobody asked for (already answered): skip it.

    def _dispatch(self, conn: Connection, request: Request) -> bool:
        """Answer one request; True when the connection stays open for another."""
        options = self.options
        served = conn.served + 1
        close = (self.stopping or options.keep_alive <= 0
                 or 0 < options.max_keepalive_requests <= served)
        exchange = Exchange(conn, request, close, options.header_timeout, options.min_body_rate)
        self.current = exchange
        self.in_handler = True
        try:
            if options.health_path is not None and request.path == options.health_path:
                exchange.respond_health(not self.stopping)
            else:
                self.handle(exchange)
                if not exchange.started:
                    exchange.respond_error(500, "Internal Server Error")
        except ClientGone:
            self.in_handler = False
            self._final_close(conn)
            return False
        except ProtocolError as error:
            self.in_handler = False
            if exchange.started:
                self._final_close(conn)
            else:
                self._reject(conn, error)
            return False
        except HandlerTimeout:
            self.in_handler = False
            log.error("handler timed out on %r; its stack:", request.request_line,
                      exc_info=True)
            self._answer_failure(conn, exchange, 503, "Service Unavailable")
            return False
        except TimeoutError:
            self.in_handler = False
            self._answer_failure(conn, exchange, 408, "request body not received in time")
            return False
        except Exception:
            self.in_handler = False
            log.exception("error handling %r", request.request_line)
            self._answer_failure(conn, exchange, 500, "Internal Server Error")
            return False
        finally:
            self.in_handler = False
            self.current = None
        self.requests += 1
        conn.served = served
        if self.on_response is not None:
            self.on_response(exchange)
        proto = conn.proto
        if not proto.keep_alive:
            self._close_after_response(conn)
            return False
        proto.start_next_cycle()
        conn.phase = _IDLE
        conn.deadline = time.monotonic() + options.keep_alive
        if not conn.registered:
            self._register(conn)
        return True

    def _answer_failure(self, conn: Connection, exchange: Exchange, status: int,
                        reason: str) -> None:
        if not exchange.started:
            try:
                exchange.respond_error(status, reason, close=True)
            except Exception:  # noqa: BLE001 - the client is gone or the state is broken
                pass
            else:
                self.requests += 1
                if self.on_response is not None:
                    self.on_response(exchange)
        self._close_after_response(conn)

    def _reject(self, conn: Connection, error: ProtocolError) -> None:
        """Answer a request the protocol refused, then close (never reuse: RFC 9112 11.2)."""
        try:
            conn.send_all(conn.proto.error_response(error), timeout=5.0)
        except (ClientGone, OSError):
            pass
        self._close_after_response(conn)

    def _close_after_response(self, conn: Connection) -> None:
        proto = conn.proto
        if proto.request_complete and not proto.has_buffered_data:
            self._final_close(conn)
            return
        # Unread request bytes would make the kernel answer our close with RST, which can
        # destroy the response in flight: half-close and drain first (lingering close).
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._final_close(conn)
            return
        conn.phase = _LINGER
        conn.deadline = time.monotonic() + _LINGER_SECONDS
        self._register(conn)

    def _final_close(self, conn: Connection) -> None:
        self.conns.pop(conn.fd, None)
        conn.close()
