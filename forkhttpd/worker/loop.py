"""A worker's epoll loop over its listeners and open connections (with connection.py, the only
code that reads and writes client sockets); must not import interfaces, master, config, ops or
psutil.

One request is handled at a time, but the worker never waits on an idle keep-alive connection
or on a client that trickles its head: every connection sits in the epoll set, and
parse -> handle -> respond runs for whichever has a complete request head. Deadlines (head,
keep-alive idle, lingering close) are checked a few times a second. `step()` runs one turn,
so tests drive the loop in-process over socketpairs with a fake clock.

Every way through a turn makes progress or drops the connection: a connection is served at
most 8 pipelined requests per turn, then waits (once) in `pending` for the next turn; a
connection that is closing or closed is never processed again; connections are compared by
identity, never by descriptor number (a closed connection's number is soon another's).

The keep-alive decision: the protocol proposes (its `keep_alive`, from the request and the
framing), the exchange adds the worker's reasons as the head is written (Exchange._must_close),
and this loop disposes, following `keep_alive` once the response is out.
"""

from __future__ import annotations

import _socket
import errno
import logging
import os
import select
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

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
from .connection import Acceptor, Connection, Phase
from .errors import BodyTimeout, ClientGone, HandlerTimeout
from .exchange import Adapter, Exchange, ExchangeContext
from .prelude import Prelude, PreludeRefused

if TYPE_CHECKING:
    import ssl

    from ..protocol.forwarded import Trust

__all__ = ["ServeLoop", "ServeOptions"]

log = logging.getLogger("forkhttpd.error")

_LINGER_SECONDS = 2.0  # how long unread request bytes are drained before the final close
_HOUSEKEEPING = 0.25  # seconds between deadline scans and ticks
_PIPELINE_TURN = 8  # pipelined requests one connection is answered per turn
# accept() failing for want of resources: stop polling the listeners for a growing while
_EXHAUSTED = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 1.0
_EPOLLIN = select.EPOLLIN
_EPOLLEXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)
_IDLE, _HEAD, _LINGER, _CLOSED = Phase.IDLE, Phase.HEAD, Phase.LINGER, Phase.CLOSED


class ServeOptions:
    """What the connection loop needs from the settings (built by the worker; a plain class,
    so that workers need not import dataclasses)."""

    __slots__ = ("limits", "keep_alive", "max_keepalive_requests", "header_timeout",
                 "min_body_rate", "health_path", "accept_batch", "trust", "proxy_protocol",
                 "tls")

    def __init__(self, limits: Limits | None = None, keep_alive: float = 5.0,
                 max_keepalive_requests: int = 1000, header_timeout: float = 10.0,
                 min_body_rate: int = 1024, health_path: str | None = None,
                 accept_batch: int = 16, trust: Trust | None = None,
                 proxy_protocol: bool = False, tls: ssl.SSLContext | None = None) -> None:
        self.limits = Limits() if limits is None else limits
        self.keep_alive = keep_alive
        self.max_keepalive_requests = max_keepalive_requests
        self.header_timeout = header_timeout
        self.min_body_rate = min_body_rate
        self.health_path = health_path
        self.accept_batch = accept_batch
        self.trust = trust  # --forwarded-allow-ips; None: nobody
        self.proxy_protocol = proxy_protocol
        self.tls = tls


class ServeLoop:
    """A worker's connection loop. `handle(exchange)` answers one request (an adapter)."""

    def __init__(self, listeners: list[socket.socket], handle: Adapter,
                 options: ServeOptions, on_tick: Callable[[float], None] | None = None,
                 wake_fd: int | None = None,
                 on_response: Callable[[Exchange], object] | None = None,
                 on_request: Callable[[str, float, object], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.handle = handle
        self.options = options
        self.on_tick = on_tick
        self.on_response = on_response
        self.on_request = on_request  # the scoreboard: (request line, start, client) per request
        self.wake_fd = wake_fd
        self.clock = clock
        self.ctx = ExchangeContext(options.header_timeout, options.min_body_rate, on_tick,
                                   clock, options.trust)
        # the request that must close its connection: the last one --max-keepalive-requests
        # allows, or every one under --keep-alive 0
        self.close_at = (options.max_keepalive_requests if options.keep_alive > 0 else 1)
        self.epoll = select.epoll()
        self.listeners = {sock.fileno(): Acceptor(sock) for sock in listeners}
        for sock in listeners:
            sock.setblocking(False)
            self.epoll.register(sock.fileno(), _EPOLLIN | _EPOLLEXCLUSIVE)
        if wake_fd is not None:
            self.epoll.register(wake_fd, _EPOLLIN)
        self.conns: dict[int, Connection] = {}  # by descriptor: what epoll reports
        # connections before their first HTTP byte (a PROXY header, a TLS handshake), kept
        # apart so that the common case pays nothing for them
        self.preludes: dict[int, Prelude] = {}
        self.connection_class: Callable[..., Connection] = Connection
        if options.tls is not None:
            from .tls import TLSConnection  # ssl is imported only by workers that serve TLS

            self.connection_class = TLSConnection
        self.pending: list[Connection] = []  # pipelined requests already in our buffer
        self.requests = 0
        self.exit_now = False
        self.in_handler = False
        self.next_housekeeping = 0.0
        self.accept_failures = 0  # accept() failures in a row for want of resources
        self.accept_backoff = 0.0
        self.accept_resume = 0.0  # when the paused listeners are polled again (0: not paused)

    # -- stopping: a flag, set by the worker's signal handler, that the loop reads --------
    @property
    def stopping(self) -> bool:
        """Graceful stop asked: drain the backlog, finish what is in flight, close idle
        connections at their deadline, exit."""
        return self.ctx.stopping

    def stop(self) -> None:
        """Ask for the graceful stop (safe in a signal handler: it only sets the flag; the
        response in flight then says Connection: close, and the loop lets go of the
        listeners at its next housekeeping)."""
        self.ctx.stopping = True

    def close(self) -> None:
        """Close every connection and the epoll set (a worker ends with os._exit instead;
        tests that step a loop call this)."""
        for conn in [*self.conns.values(), *(p.conn for p in self.preludes.values())]:
            self._final_close(conn)
        self.epoll.close()

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        step = self.step
        while step():
            pass

    def step(self, timeout: float | None = None) -> bool:
        """One turn: wait up to `timeout` seconds for events (by default the housekeeping
        interval, or none while pipelined requests wait their turn), answer what is ready,
        give waiting pipelined requests their turn, check deadlines when due. False once
        the loop is over (stopped and drained, or told to exit)."""
        conns = self.conns
        # connections that used up their last turn: this one is theirs (those that use up
        # this one wait for the next)
        turn: list[Connection] | tuple[()] = self.pending
        if self.exit_now or (self.ctx.stopping and not self.listeners and not conns
                             and not turn and not self.preludes):
            return False
        if turn:
            self.pending = []
        else:
            turn = ()
        if timeout is None:
            timeout = 0.0 if turn else _HOUSEKEEPING
        listeners = self.listeners
        for fd, _mask in self.epoll.poll(timeout):
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
            elif fd in self.preludes:
                self._advance(self.preludes[fd])
            if self.exit_now:
                return False
        for conn in turn:
            conn.queued = False
            if conn.phase is not _CLOSED:
                self._guarded(self._process, conn)
        now = self.clock()
        if now >= self.next_housekeeping:
            self._housekeeping(now)
        return not self.exit_now

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
            self.on_tick(self.clock())
        if self.ctx.stopping:
            self.next_housekeeping = 0.0  # stop accepting now, not at the next scan

    def _housekeeping(self, now: float) -> None:
        self.next_housekeeping = now + _HOUSEKEEPING
        if self.on_tick is not None:
            self.on_tick(now)
        stopping = self.ctx.stopping
        if stopping and self.listeners:
            self._stop_accepting()
        elif self.accept_resume:
            if now >= self.accept_resume:
                self._resume_accepting()
            else:
                self.next_housekeeping = min(self.next_housekeeping, self.accept_resume)
        for prelude in [p for p in self.preludes.values() if p.conn.deadline <= now]:
            self._final_close(prelude.conn)  # a stalled PROXY header or TLS handshake
        for conn in [c for c in self.conns.values() if c.deadline <= now]:
            if conn.phase is _HEAD:
                # RFC 9110 15.5.9: the head did not arrive in time.
                self._reject(conn, ProtocolError(408, "request head not received in time"))
                continue
            if conn.phase is _IDLE:  # a request that came as the deadline passed is served
                self._guarded(self._readable, conn)
            if conn.phase is not _CLOSED and conn.deadline <= now:
                self._final_close(conn)
        if stopping:
            for conn in [c for c in self.conns.values() if c.phase is _IDLE and c.served == 0
                         and not c.proto.has_buffered_data]:
                conn.deadline = min(conn.deadline, now + 1.0)

    def reading(self) -> bool:
        """Some connection is part-way through sending a request head (for the scoreboard)."""
        return any(conn.phase is _HEAD for conn in self.conns.values())

    def _stop_accepting(self) -> None:
        """Graceful stop: let go of the listeners, taking what is queued now; no request is
        handled between accepts, or clients reconnecting after Connection: close would be
        back in the backlog each time, and the drain would never end."""
        now = self.clock()
        for fd, acceptor in list(self.listeners.items()):
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass  # paused for want of descriptors: not in the set
            del self.listeners[fd]
            for _ in range(65536):  # more than any backlog
                try:
                    client, peer = acceptor.accept()
                except OSError:  # BlockingIOError: nothing more is queued
                    break
                conn = self._add(client, peer, now)
                self._register(conn)  # a request already sent makes it readable at once
            # Our copy of the listening socket goes too: once every process has closed its
            # copy, the kernel refuses new connections instead of queueing them for no one.
            acceptor.listener.close()
        self.accept_resume = 0.0

    # -- accepting -----------------------------------------------------------------------
    def _accept(self, listener: Acceptor) -> None:
        accept = listener.accept
        for _ in range(self.options.accept_batch):
            if self.ctx.stopping:
                return  # _stop_accepting takes what is queued (not one by one, as here)
            try:
                sock, peer = accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in _EXHAUSTED:
                    self._pause_accepting(error)
                return  # others (ECONNABORTED...) cost the queued connection only
            if self.accept_failures:
                log.warning("accepting again after %d failed accepts", self.accept_failures)
                self.accept_failures = 0
                self.accept_backoff = 0.0
            self.adopt(sock, peer)

    def adopt(self, sock: _socket.socket, peer: object) -> Connection:
        """Serve a connected socket (accepted here, or a socketpair's end in tests). Most
        clients send the request with the connect: it is read at once, saving an epoll round
        trip; otherwise the epoll set will tell us."""
        conn = self._add(sock, peer, self.clock())
        prelude = self.preludes.get(conn.fd)
        if prelude is not None:
            self._register(conn)
            self._advance(prelude)
            return conn
        data = conn.recv_nowait()
        if data is None:
            self._register(conn)
        else:
            conn.proto.receive_data(data)
            self._guarded(self._process, conn)
        return conn

    def _add(self, sock: _socket.socket, peer: object, now: float) -> Connection:
        options = self.options
        if options.tls is None:
            conn = Connection(sock, peer, ServerConnection(options.limits))
        else:
            conn = self.connection_class(sock, peer, ServerConnection(options.limits),
                                         options.tls)
        conn.head_start = now
        conn.deadline = now + options.header_timeout  # the prelude's deadline too
        if options.tls is None and not options.proxy_protocol:
            self.conns[conn.fd] = conn
        else:
            trust = options.trust
            self.preludes[conn.fd] = Prelude(
                conn, options.proxy_protocol, trust is not None and trust.peer(peer),
                options.tls is not None)
        return conn

    def _advance(self, prelude: Prelude) -> None:
        """One step of a connection's prelude; once it is over, the connection joins the
        others and what it already sent is served."""
        conn = prelude.conn
        try:
            if not prelude.advance():
                return
        except PreludeRefused as refused:
            log.debug("connection from %s closed: %s", conn.peer, refused)
            if refused.answer:
                try:
                    Connection.send_all(conn, refused.answer, timeout=1.0, last=True)
                except (ClientGone, OSError):
                    pass
            if refused.status:
                duration = count_refusal(refused.status, len(refused.answer), conn.head_start)
                log_refusal(conn.peer, "-", refused.status, refused.answer, duration)
            self._final_close(conn)
            return
        except Exception:
            log.exception("internal error on a connection from %s; closing it", conn.peer)
            self._final_close(conn)
            return
        del self.preludes[conn.fd]
        self.conns[conn.fd] = conn
        if prelude.leftover:
            conn.phase = _HEAD
            conn.proto.receive_data(prelude.leftover)
            self._guarded(self._process, conn)
        else:
            self._guarded(self._readable, conn)

    def _pause_accepting(self, error: OSError) -> None:
        """Out of descriptors, buffers or memory: the listener stays readable, so polling it
        would spin. Leave it out of the epoll set for a short while that doubles with each
        failure in a row (one log line per pause); housekeeping puts it back."""
        self.accept_failures += 1
        backoff = self.accept_backoff = min(_BACKOFF_MAX, self.accept_backoff * 2
                                            or _BACKOFF_FIRST)
        for fd in self.listeners:
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass
        self.accept_resume = self.clock() + backoff
        self.next_housekeeping = min(self.next_housekeeping, self.accept_resume)
        log.warning("accept failed: %s; not accepting for %.2fs (%d failed accepts in a row)",
                    os.strerror(error.errno or 0), backoff, self.accept_failures)

    def _resume_accepting(self) -> None:
        self.accept_resume = 0.0
        for fd in self.listeners:
            try:
                self.epoll.register(fd, _EPOLLIN | _EPOLLEXCLUSIVE)
            except OSError:
                pass

    def _register(self, conn: Connection) -> None:
        if not conn.registered:
            self.epoll.register(conn.fd, _EPOLLIN)
            conn.registered = True

    def _readable(self, conn: Connection) -> None:
        data = conn.recv_nowait()
        if data is None:
            return
        phase = conn.phase
        if phase is _LINGER:
            if not data:
                self._final_close(conn)
            return
        if phase is _IDLE and data:
            conn.phase = _HEAD
            conn.head_start = self.clock()
            conn.deadline = conn.head_start + self.options.header_timeout
        conn.proto.receive_data(data)
        if not conn.queued:  # else its pipelined requests wait for their turn
            self._process(conn)

    # -- one connection's requests --------------------------------------------------------
    def _process(self, conn: Connection) -> None:
        """Answer the requests buffered on `conn`, at most a turn's worth; every way out
        either waits for bytes (registered), waits in `pending` for the next turn, or has
        ended the connection."""
        proto = conn.proto
        pipelined = 0
        while conn.phase is _IDLE or conn.phase is _HEAD:
            try:
                event = proto.next_event()
            except ProtocolError as error:
                self._reject(conn, error)
                return
            if type(event) is Request:
                if not self._dispatch(conn, event) or not proto.has_buffered_data:
                    return  # the usual case: wait (registered) for the next request
                pipelined += 1
                if pipelined >= _PIPELINE_TURN:
                    conn.queued = True
                    self.pending.append(conn)  # fairness: others get a turn first
                    return
                continue
            if event is NEED_DATA:
                self._register(conn)
                if proto.has_buffered_data and conn.phase is not _HEAD:
                    conn.phase = _HEAD
                    conn.head_start = self.clock()
                    conn.deadline = conn.head_start + self.options.header_timeout
                return
            if not isinstance(event, ConnectionClosed):
                # Data, EndOfMessage or PAUSED between requests: _dispatch starts every
                # next cycle itself, so this cannot happen; never loop on it
                log.error("unexpected %r between requests from %s; closing", event, conn.peer)
            self._final_close(conn)
            return

    def _dispatch(self, conn: Connection, request: Request) -> bool:
        """Answer one request; True when the connection stays open for another."""
        options = self.options
        served = conn.served + 1
        exchange = Exchange(conn, request, self.ctx, served >= self.close_at > 0)
        if self.on_request is not None:
            self.on_request(request.request_line, exchange.start, conn.peer)
        self.in_handler = True
        try:
            if options.health_path is not None and request.path == options.health_path:
                exchange.respond_health(not self.ctx.stopping)
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
        except BodyTimeout:
            self.in_handler = False
            self._answer_failure(conn, exchange, 408, "request body not received in time")
            return False
        except Exception:
            self.in_handler = False
            log.exception("error handling %r", request.request_line)
            self._answer_failure(conn, exchange, 500, "Internal Server Error")
            return False
        self.in_handler = False
        self.requests += 1
        conn.served = served
        conn.fin_pending = True  # see Connection.fin_pending: a handler ran on it
        if self.on_response is not None:
            self.on_response(exchange)
        proto = conn.proto
        if not proto.keep_alive or not proto.request_complete:
            self._close_after_response(conn)
            return False
        proto.start_next_cycle()
        conn.phase = _IDLE
        conn.deadline = self.clock() + options.keep_alive
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
        conn.deadline = self.clock() + _LINGER_SECONDS
        self._register(conn)

    def _final_close(self, conn: Connection) -> None:
        if conn.phase is _CLOSED:
            return
        if self.conns.get(conn.fd) is conn:
            del self.conns[conn.fd]
        elif self.preludes and conn.fd in self.preludes and self.preludes[conn.fd].conn is conn:
            del self.preludes[conn.fd]
        if conn.registered:
            # explicitly: a child the handler forked may hold a copy of the socket, and then
            # close() would leave it in the epoll set, reported under a number we reuse
            conn.registered = False
            try:
                self.epoll.unregister(conn.fd)
            except OSError:
                pass
        conn.close()
