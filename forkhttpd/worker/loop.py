"""A worker's epoll loop over its listeners and open connections (with connection.py, the only
code that reads and writes client sockets); must not import worker, arbiter, supervision or
psutil.

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

from ..protocol import (
    NEED_DATA,
    ConnectionClosed,
    Limits,
    ProtocolError,
    Request,
    ServerConnection,
)
from ..runtime.logs import log_refusal
from ..runtime.scoreboard import count_refusal
from .connection import HEAD as _HEAD
from .connection import IDLE as _IDLE
from .connection import LINGER as _LINGER
from .connection import Acceptor, Connection
from .exchange import ClientGone, Exchange, HandlerTimeout

__all__ = ["ServeLoop", "ServeOptions"]

log = logging.getLogger("forkhttpd.error")

_LINGER_SECONDS = 2.0  # how long unread request bytes are drained before the final close
_HOUSEKEEPING = 0.25  # seconds between deadline scans and ticks
_EPOLLIN = select.EPOLLIN
_EPOLLEXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)


class ServeOptions:
    """What the connection loop needs from the settings (built by the worker; a plain class,
    so that workers need not import dataclasses)."""

    __slots__ = ("limits", "keep_alive", "max_keepalive_requests", "header_timeout",
                 "min_body_rate", "health_path", "accept_batch")

    def __init__(self, limits: Limits | None = None, keep_alive: float = 5.0,
                 max_keepalive_requests: int = 1000, header_timeout: float = 10.0,
                 min_body_rate: int = 1024, health_path: str | None = None,
                 accept_batch: int = 16) -> None:
        self.limits = Limits() if limits is None else limits
        self.keep_alive = keep_alive
        self.max_keepalive_requests = max_keepalive_requests
        self.header_timeout = header_timeout
        self.min_body_rate = min_body_rate
        self.health_path = health_path
        self.accept_batch = accept_batch


class ServeLoop:
    """A worker's connection loop. `handle(exchange)` answers one request (an adapter)."""

    def __init__(self, listeners: list[socket.socket], handle: Callable[[Exchange], None],
                 options: ServeOptions, on_tick: Callable[[float], None] | None = None,
                 wake_fd: int | None = None,
                 on_response: Callable[[Exchange], object] | None = None,
                 on_request: Callable[[str, float, object], None] | None = None) -> None:
        self.handle = handle
        self.options = options
        self.on_tick = on_tick
        self.on_response = on_response
        self.on_request = on_request  # the scoreboard: (request line, start, client) per request
        self.wake_fd = wake_fd
        self.epoll = select.epoll()
        self.listeners = {sock.fileno(): Acceptor(sock) for sock in listeners}
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
                    try:  # _guarded(), inlined: this is the per-request path
                        self._readable(conn)
                    except Exception:
                        log.exception("internal error on a connection from %s; closing it",
                                      conn.peer)
                        self._final_close(conn)
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
        if self.stopping:
            self.next_housekeeping = 0.0  # stop accepting now, not at the next scan

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
            elif self.conns.get(conn.fd) is conn:
                if conn.phase == _IDLE:  # a request that came as the deadline passed is served
                    self._guarded(self._readable, conn)
                if self.conns.get(conn.fd) is conn and conn.deadline <= now:
                    self._final_close(conn)
        if self.stopping:
            for conn in [c for c in self.conns.values() if c.phase == _IDLE and c.served == 0
                         and not c.proto.has_buffered_data]:
                conn.deadline = min(conn.deadline, now + 1.0)

    def reading(self) -> bool:
        """Some connection is part-way through sending a request head (for the scoreboard)."""
        return any(conn.phase == _HEAD for conn in self.conns.values())

    def _stop_accepting(self) -> None:
        """Graceful stop: let go of the listeners, taking what is queued now; no request is
        handled between accepts, or clients reconnecting after Connection: close would be
        back in the backlog each time, and the drain would never end."""
        now = time.monotonic()
        for fd, acceptor in list(self.listeners.items()):
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass
            del self.listeners[fd]
            for _ in range(65536):  # more than any backlog
                try:
                    client, peer = acceptor.accept()
                except OSError:  # BlockingIOError: nothing more is queued
                    break
                conn = Connection(client, peer, ServerConnection(self.options.limits), self)
                self.conns[conn.fd] = conn
                conn.head_start = now
                conn.deadline = now + self.options.header_timeout
                self._register(conn)  # a request already sent makes it readable at once
            # Our copy of the listening socket goes too: once every process has closed its
            # copy, the kernel refuses new connections instead of queueing them for no one.
            acceptor.listener.close()

    # -- accepting -----------------------------------------------------------------------
    def _accept(self, listener: Acceptor, limit: int = 0) -> None:
        accept = listener.accept
        for _ in range(limit or self.options.accept_batch):
            if self.stopping:
                return  # _stop_accepting takes what is queued (not one by one, as here)
            try:
                sock, peer = accept()
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
        exchange = Exchange(conn, request, close)
        if self.on_request is not None:
            self.on_request(request.request_line, exchange.start, conn.peer)
        self.current = exchange
        self.in_handler = True
        try:
            if options.health_path is not None and request.path == options.health_path:
                exchange.respond_health(not self.stopping)
            else:
                self.handle(exchange)
                if conn.detached:  # the adapter took the connection over and has closed it
                    self.requests += 1
                    return False
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
        if not proto.keep_alive or not proto.request_complete:
            # a body the handler left unread and that has not fully arrived: we cannot skip
            # it without waiting for the client, so this connection ends here
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
        response = b""
        try:
            response = conn.proto.error_response(error)
            conn.send_all(response, timeout=5.0, last=True)
        except (ClientGone, OSError):
            pass
        # accounted for like any response: counted (scoreboard) and logged (access log)
        request = conn.proto.request
        line = request.request_line if request is not None else error.request_line
        duration = count_refusal(error.status, len(response), conn.head_start)
        log_refusal(conn.peer, line, error.status, response, duration)
        self._close_after_response(conn)

    def _close_after_response(self, conn: Connection) -> None:
        proto = conn.proto
        if proto.request_complete and not proto.has_buffered_data:
            self._final_close(conn)
            return
        # Unread request bytes would make the kernel answer our close with RST, which can
        # destroy the response in flight: half-close and drain first (lingering close).
        if not conn.shutdown():
            self._final_close(conn)
            return
        conn.phase = _LINGER
        conn.deadline = time.monotonic() + _LINGER_SECONDS
        self._register(conn)

    def _final_close(self, conn: Connection) -> None:
        self.conns.pop(conn.fd, None)
        conn.close()

    def forget(self, conn: Connection) -> None:
        """Stop watching `conn` without closing it (its new owner will)."""
        self.conns.pop(conn.fd, None)
        if conn.registered:
            conn.registered = False
            self.epoll.unregister(conn.fd)
