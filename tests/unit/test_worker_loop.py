"""The worker loop driven in-process, one step() at a time, over socket.socketpair() with a
fake clock: keep-alive and close, pipelining order and the per-turn cap, the keep-alive
request limit at every split point, deadlines, lingering close, 100-continue, clients that
vanish, handlers that fork, accept() out of descriptors, and handler classes."""

from __future__ import annotations

import errno
import http.server
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from forkhttpd.interfaces.handler_class import handler_class_adapter
from forkhttpd.worker.exchange import Exchange
from forkhttpd.worker.loop import ServeLoop, ServeOptions
from forkhttpd.worker.parts import ResponseParts

Response = tuple[int, dict[str, str], bytes]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Spinning(BaseException):
    """A step that never returns (a BaseException: the loop's guards must not catch it)."""


@pytest.fixture
def no_spin() -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise Spinning("a loop step did not return")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 20.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Rig:
    """A loop without listeners, its clock, its clients, and what its handler saw."""

    def __init__(self, handler: Callable[[Exchange], None] | None = None,
                 **options: Any) -> None:
        self.clock = FakeClock()
        self.seen: list[str] = []
        self.loop = ServeLoop([], handler or self.echo, ServeOptions(**options),
                              clock=self.clock)
        self.clients: list[socket.socket] = []

    def echo(self, exchange: Exchange) -> None:
        self.seen.append(exchange.request.target)
        exchange.respond(ResponseParts(200, [], exchange.request.target.encode()))

    def connect(self, data: bytes = b"") -> socket.socket:
        server_end, client = socket.socketpair()
        self.clients.append(client)
        if data:
            client.sendall(data)
        self.loop.adopt(server_end, "peer")
        return client

    def step(self, times: int = 1) -> None:
        for _ in range(times):
            self.loop.step(0.0)

    def settle(self) -> None:
        """Step until nothing waits for a turn."""
        for _ in range(1000):
            self.loop.step(0.0)
            if not self.loop.pending:
                return
        raise AssertionError("pipelined requests never all answered")

    def close(self) -> None:
        self.loop.close()
        for client in self.clients:
            client.close()


Rigs = Callable[..., Rig]


@pytest.fixture
def rigs() -> Iterator[Rigs]:
    made: list[Rig] = []

    def make(handler: Callable[[Exchange], None] | None = None, **options: Any) -> Rig:
        rig = Rig(handler, **options)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()


def get(path: str, *fields: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: h", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def received(client: socket.socket) -> tuple[bytes, bool]:
    """What has arrived so far, and whether the server has closed (EOF)."""
    client.setblocking(False)
    data = bytearray()
    try:
        while True:
            chunk = client.recv(65536)
            if not chunk:
                return bytes(data), True
            data += chunk
    except BlockingIOError:
        return bytes(data), False
    except ConnectionResetError:
        return bytes(data), True


def parse(data: bytes) -> list[Response]:
    out: list[Response] = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        status = int(lines[0].split()[1])
        length = int(fields.get("content-length", "0")) if status >= 200 else 0
        out.append((status, fields, rest[:length]))
        data = rest[length:]
    return out


# -- keep-alive and close ------------------------------------------------------------------
def test_keep_alive_serves_requests_in_turn_then_closes_when_asked(rigs: Rigs) -> None:
    rig = rigs()
    client = rig.connect(get("/one"))
    data, eof = received(client)
    [(status, fields, body)] = parse(data)
    assert (status, body, eof) == (200, b"/one", False) and "connection" not in fields
    client.sendall(get("/two", "Connection: close"))
    rig.step()
    data, eof = received(client)
    [(status, fields, body)] = parse(data)
    assert (status, body, fields["connection"], eof) == (200, b"/two", "close", True)
    assert rig.loop.conns == {} and rig.loop.requests == 2


def test_a_stop_asked_during_a_request_closes_its_connection(rigs: Rigs) -> None:
    def handler(exchange: Exchange) -> None:
        rig.loop.stop()  # what the worker's TERM handler does: set the flag, nothing more
        rig.echo(exchange)

    rig = rigs(handler)
    client = rig.connect(get("/a"))
    data, eof = received(client)
    [(status, fields, _)] = parse(data)
    assert status == 200 and fields["connection"] == "close" and eof
    assert rig.loop.step(0.0) is False  # stopping, no listener, no connection: the loop ends


# -- pipelining ------------------------------------------------------------------------------
def test_pipelined_requests_answer_in_order_with_a_per_turn_cap(rigs: Rigs) -> None:
    rig = rigs()
    greedy = rig.connect()
    polite = rig.connect()
    greedy.sendall(b"".join(get(f"/g{i}") for i in range(20)))
    polite.sendall(get("/p"))
    rig.step()
    # one turn: the pipelining connection gets 8 answers, the other its one, in either order
    assert sorted(rig.seen) == sorted([f"/g{i}" for i in range(8)] + ["/p"])
    rig.step()
    assert rig.seen[9:] == [f"/g{i}" for i in range(8, 16)]
    rig.settle()
    bodies = [body for _, _, body in parse(received(greedy)[0])]
    assert bodies == [f"/g{i}".encode() for i in range(20)]
    assert [body for _, _, body in parse(received(polite)[0])] == [b"/p"]


@pytest.mark.parametrize("close_at", [None, 10])
def test_pipelining_to_the_keepalive_limit_at_every_split_point(
        rigs: Rigs, no_spin: None, close_at: int | None) -> None:
    limit, total = 12, 16
    requests = [get(f"/{i}") for i in range(total)]
    if close_at is not None:
        requests[close_at] = get(f"/{close_at}", "Connection: close")
    stream = b"".join(requests)
    answered = limit if close_at is None else close_at + 1
    for split in range(len(stream) + 1):
        rig = rigs(max_keepalive_requests=limit)
        client = rig.connect()
        client.sendall(stream[:split])
        rig.step()  # the first part may already hold a turn's worth of requests
        client.sendall(stream[split:])
        rig.settle()
        rig.clock.advance(3.0)  # past the lingering close
        rig.step()
        data, eof = received(client)
        responses = parse(data)
        assert [body for _, _, body in responses] == [f"/{i}".encode() for i in range(answered)]
        assert responses[-1][1]["connection"] == "close" and eof
        assert all("connection" not in fields for _, fields, _ in responses[:-1])
        assert rig.loop.conns == {} and rig.loop.pending == []
        rig.close()


# -- deadlines ---------------------------------------------------------------------------------
def test_a_head_not_received_in_time_is_answered_408(rigs: Rigs) -> None:
    rig = rigs(header_timeout=3.0)
    client = rig.connect(b"GET / HTTP/1.1\r\nHo")
    rig.clock.advance(2.9)
    rig.step()
    assert received(client) == (b"", False)
    rig.clock.advance(0.3)  # deadlines are checked every quarter of a second
    rig.step()
    data, eof = received(client)
    assert parse(data)[0][0] == 408 and eof  # then a lingering close: the head may go on
    rig.clock.advance(2.1)
    rig.step()
    assert rig.loop.conns == {}


def test_an_idle_keep_alive_connection_is_closed_quietly(rigs: Rigs) -> None:
    rig = rigs(keep_alive=5.0)
    client = rig.connect(get("/a"))
    assert parse(received(client)[0])[0][2] == b"/a"
    rig.clock.advance(4.9)
    rig.step()
    assert received(client) == (b"", False)
    rig.clock.advance(0.3)
    rig.step()
    assert received(client) == (b"", True) and rig.loop.conns == {}


def test_a_body_not_received_in_time_is_answered_408(rigs: Rigs) -> None:
    def handler(exchange: Exchange) -> None:
        rig.clock.advance(10.5)  # past --header-timeout's grace plus 3 bytes' worth of rate
        exchange.respond(ResponseParts(200, [], exchange.read_body()))

    rig = rigs(handler, header_timeout=10.0, min_body_rate=1024)
    client = rig.connect(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    data, eof = received(client)
    assert parse(data)[0][0] == 408 and eof


def test_an_apps_own_timeout_is_a_500_not_a_408(rigs: Rigs) -> None:
    def handler(exchange: Exchange) -> None:
        raise TimeoutError("the app's upstream did not answer")

    rig = rigs(handler)
    client = rig.connect(get("/a"))
    assert parse(received(client)[0])[0][0] == 500


# -- lingering close -------------------------------------------------------------------------
def test_unread_body_bytes_are_drained_before_the_final_close(rigs: Rigs) -> None:
    rig = rigs()
    client = rig.connect(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789")
    data, eof = received(client)
    [(status, fields, _)] = parse(data)
    # the rest of the body may never come: the response says close, and we half-close
    assert status == 200 and fields["connection"] == "close" and eof
    assert len(rig.loop.conns) == 1  # lingering: still reading what the client sends
    client.sendall(b"x" * 50)
    rig.step()
    assert len(rig.loop.conns) == 1
    rig.clock.advance(2.1)
    rig.step()
    assert rig.loop.conns == {}


def test_a_lingering_connection_closes_when_the_client_does(rigs: Rigs) -> None:
    rig = rigs()
    client = rig.connect(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n01234")
    assert parse(received(client)[0])[0][0] == 200
    client.shutdown(socket.SHUT_WR)
    rig.step()
    assert rig.loop.conns == {}


# -- 100-continue ----------------------------------------------------------------------------
def test_100_continue_comes_when_the_body_is_first_read(rigs: Rigs) -> None:
    def handler(exchange: Exchange) -> None:
        exchange.respond(ResponseParts(200, [], exchange.read_body()))

    rig = rigs(handler)
    server_end, client = socket.socketpair()
    rig.clients.append(client)
    client.sendall(b"PUT /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                   b"Content-Length: 5\r\n\r\n")
    interim: list[bytes] = []

    def body_after_100() -> None:
        client.settimeout(10)
        interim.append(client.recv(25))  # exactly "HTTP/1.1 100 Continue\r\n\r\n"
        client.sendall(b"hello")

    sender = threading.Thread(target=body_after_100)
    sender.start()
    rig.loop.adopt(server_end, "peer")  # the handler waits for the body the thread sends
    sender.join(10)
    assert interim == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    [(status, fields, body)] = parse(received(client)[0])
    assert (status, body) == (200, b"hello") and "connection" not in fields


def test_no_100_continue_for_a_body_never_read(rigs: Rigs) -> None:
    rig = rigs()
    client = rig.connect(b"PUT /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                         b"Content-Length: 5\r\n\r\n")
    data, eof = received(client)
    assert data.startswith(b"HTTP/1.1 200 ") and b"100 Continue" not in data
    # the client may still send the body it announced: this connection cannot be reused
    assert parse(data)[0][1]["connection"] == "close" and eof


# -- clients that vanish, handlers that fork -------------------------------------------------
def test_a_client_that_vanishes_mid_response_costs_only_its_connection(rigs: Rigs) -> None:
    def handler(exchange: Exchange) -> None:
        if exchange.request.target == "/stream":
            exchange.begin(200, [])
            exchange.write(b"first piece")
            gone.close()  # the client goes away mid-response
            for _ in range(100):
                exchange.write(b"x" * 65536)
            exchange.finish()
        else:
            rig.echo(exchange)

    rig = rigs(handler)
    gone = rig.connect()
    other = rig.connect()
    gone.sendall(get("/stream"))
    rig.step()
    assert len(rig.loop.conns) == 1  # the vanished client's connection is gone, not the other
    other.sendall(get("/still-served"))
    rig.step()
    assert parse(received(other)[0])[0][2] == b"/still-served"


def test_a_socket_copy_held_elsewhere_leaves_no_stale_epoll_entry(rigs: Rigs) -> None:
    held: list[int] = []

    def handler(exchange: Exchange) -> None:
        held.append(os.dup(exchange.conn.fd))  # what a child forked by the handler holds
        rig.echo(exchange)

    rig = rigs(handler)
    client = rig.connect(get("/a"))
    try:
        assert parse(received(client)[0])[0][2] == b"/a"
        client.close()  # the client leaves: EOF
        rig.step()
        assert rig.loop.conns == {}
        # closing our descriptor alone would leave the socket in the epoll set (its file is
        # still open elsewhere), reported readable at every poll: a busy loop
        assert rig.loop.epoll.poll(0) == []
    finally:
        for fd in held:
            os.close(fd)


def test_the_last_response_sends_a_fin_even_while_a_copy_is_held(rigs: Rigs) -> None:
    held: list[int] = []

    def handler(exchange: Exchange) -> None:
        held.append(os.dup(exchange.conn.fd))
        exchange.begin(200, [], close=True)  # a streamed body, not the one-send path
        exchange.write(b"streamed")
        exchange.finish()

    rig = rigs(handler)
    client = rig.connect(get("/a"))
    try:
        data, eof = received(client)
        assert data.endswith(b"8\r\nstreamed\r\n0\r\n\r\n") and eof
    finally:
        for fd in held:
            os.close(fd)


# -- accept() out of descriptors ---------------------------------------------------------------
class Messages(logging.Handler):
    """The error log's messages (caught on its own logger: the suite's other tests may have
    set it not to propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.messages)


@pytest.fixture
def error_log() -> Iterator[Messages]:
    logger = logging.getLogger("forkhttpd.error")
    handler, level = Messages(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_accept_out_of_descriptors_backs_off_and_recovers(error_log: Messages) -> None:
    clock = FakeClock()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(f"\0forkhttpd-test-{os.getpid()}")
    listener.listen(8)
    seen: list[str] = []

    def handler(exchange: Exchange) -> None:
        seen.append(exchange.request.target)
        exchange.respond(ResponseParts(200, [], b"ok"))

    loop = ServeLoop([listener], handler, ServeOptions(), clock=clock)
    fd, real = next(iter(loop.listeners.items()))
    calls = [0]

    class Exhausted:
        """The process is out of descriptors until `fixed`."""

        listener = real.listener
        fixed = False

        def accept(self) -> Any:
            calls[0] += 1
            if self.fixed:
                return real.accept()
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    acceptor = loop.listeners[fd] = Exhausted()  # type: ignore[assignment]
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(listener.getsockname())
        client.sendall(get("/a", "Connection: close"))
        for _ in range(5):
            loop.step(0.0)
        assert calls[0] == 1  # the listener left the epoll set: no accept() per step
        assert error_log.messages == [
            "accept failed: Too many open files; not accepting for 0.05s "
            "(1 failed accepts in a row)"]
        clock.advance(0.06)
        loop.step(0.0)  # housekeeping puts the listener back
        loop.step(0.0)  # still exhausted: a longer pause
        assert calls[0] == 2 and "not accepting for 0.10s (2 failed" in error_log.text
        acceptor.fixed = True
        clock.advance(0.11)
        loop.step(0.0)
        loop.step(0.0)
        assert seen == ["/a"] and "accepting again after 2 failed accepts" in error_log.text
        assert received(client)[0].startswith(b"HTTP/1.1 200 ")
    finally:
        client.close()
        loop.close()
        listener.close()


# -- handler classes: one request's bytes per cycle ------------------------------------------
class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        body = json.dumps({"data": self.rfile.read(length).decode()}).encode()
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def test_a_handler_class_sees_one_request_per_cycle(rigs: Rigs) -> None:
    counted: list[Exchange] = []
    rig = rigs(handler_class_adapter(_Echo), max_keepalive_requests=4)
    rig.loop.on_response = counted.append
    hidden = get("/smuggled")
    client = rig.connect(b"GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(hidden)
                         + hidden + b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
                         + get("/c") + get("/d") + get("/e"))
    rig.settle()
    data, eof = received(client)
    responses = parse(data)
    assert [json.loads(body) for _, _, body in responses] == [
        {"path": "/a"}, {"data": "hi"}, {"path": "/c"}, {"path": "/d"}]
    # the worker's --max-keepalive-requests goes into the class's own head
    assert responses[-1][1]["connection"] == "close" and eof
    assert [(e.request.target, e.status) for e in counted] == [
        ("/a", 200), ("/b", 201), ("/c", 200), ("/d", 200)]
    assert all(e.bytes_sent > 0 for e in counted) and rig.loop.requests == 4


def test_a_body_timeout_inside_a_handler_class_is_answered_408(rigs: Rigs) -> None:
    adapter = handler_class_adapter(_Echo)

    def late(exchange: Exchange) -> None:
        rig.clock.advance(11.0)  # past the body's deadline before the class reads it
        adapter(exchange)

    rig = rigs(late)
    client = rig.connect(b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    data, eof = received(client)
    # http.server catches the TimeoutError itself; forkhttpd still answers for it
    assert parse(data)[0][0] == 408 and eof
