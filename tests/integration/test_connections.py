"""Connections over real sockets: keep-alive, pipelining, 100-continue, HEAD, chunked both ways,
limits and deadlines."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time

import pytest

from .harness import Server, StartServer, free_port


def read_response(sock: socket.socket, buffer: bytearray, timeout: float = 5.0,
                  head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Read one response (Content-Length or chunked) from `sock`, leaving extra bytes."""
    sock.settimeout(timeout)

    def fill() -> None:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer.extend(chunk)

    while b"\r\n\r\n" not in buffer:
        fill()
    block, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    del buffer[: len(block) + 4]
    lines = block.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if head or status < 200 or status in (204, 304):
        return status, headers, b""
    if headers.get("transfer-encoding") == "chunked":
        body: bytes | bytearray = bytearray()
        while True:
            while b"\r\n" not in buffer:
                fill()
            size_line, _, _ = bytes(buffer).partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(buffer) < len(size_line) + 2 + size + 2:
                fill()
            body += buffer[len(size_line) + 2: len(size_line) + 2 + size]
            del buffer[: len(size_line) + 2 + size + 2]
            if size == 0:
                return status, headers, bytes(body)
    length = int(headers.get("content-length", "0"))
    while len(buffer) < length:
        fill()
    body = bytes(buffer[:length])
    del buffer[:length]
    return status, headers, body


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


@pytest.fixture
def server(start_server: StartServer) -> Server:
    return start_server("--app", "mymod:handler", "--workers", "2", "--keep-alive", "2",
                        "--header-timeout", "2", "--limit-request-body", "100000")


def test_keep_alive_reuses_one_connection(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    pids = set()
    for _ in range(20):
        conn.request("GET", "/pid")
        response = conn.getresponse()
        pids.add(response.read())
        assert response.status == 200 and response.getheader("Connection") is None
    assert len(pids) == 1  # one connection stays with one worker
    conn.close()


def test_http10_keep_alive_only_when_asked(server: Server) -> None:
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, body = read_response(sock, buffer)
        assert (status, body, headers.get("connection", "").lower()) == (
            200, b"Hello world!", "keep-alive")
        sock.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        status, headers, body = read_response(sock, buffer)
        assert body == b"Hello world!"
        assert sock.recv(10) == b""  # 1.0 without keep-alive: closed after the response


def test_connection_close_is_honoured_both_ways(server: Server) -> None:
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, _ = read_response(sock, buffer)
        assert headers["connection"] == "close"
        assert sock.recv(10) == b""


def test_pipelined_requests_answered_in_order(server: Server) -> None:
    paths = ["/text", "/hello", "/length", "/list", "/hello"] * 4
    payload = b""
    for path in paths:
        if path == "/length":
            payload += b"POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
        else:
            payload += f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    expected = {"/text": b"plain text", "/hello": b"Hello world!", "/length": b"5",
                "/list": b"[1, 2, 3]"}
    with connect(server) as sock:
        sock.sendall(payload)
        buffer = bytearray()
        for path in paths:
            assert read_response(sock, buffer)[2] == expected[path]


def test_head_has_no_body_but_the_same_length(server: Server) -> None:
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(sock, buffer, head=True)
        assert status == 200 and headers["content-length"] == "12"
        # the GET's response follows the HEAD's head directly: no body bytes in between
        status, headers, body = read_response(sock, buffer)
        assert (status, body) == (200, b"Hello world!")


def test_100_continue_is_sent_only_when_the_body_is_read(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        sock.settimeout(5)
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"abcd")
        buffer = bytearray(interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):])
        assert read_response(sock, buffer)[2] == b"4"
    with connect(server) as sock:
        # a handler that never reads the body: no 100, a final answer, and no hang
        sock.sendall(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        status, headers, body = read_response(sock, bytearray())
        assert status == 200 and body == b"did not read the body"
    with connect(server) as sock:
        sock.sendall(b"POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Expect: something-else\r\n\r\n")
        assert read_response(sock, bytearray())[0] == 417


def test_chunked_request_and_chunked_response(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /length HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        buffer = bytearray()
        assert read_response(sock, buffer)[2] == b"11"
        sock.sendall(b"GET /stream?n=4 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock, buffer)
        assert headers["transfer-encoding"] == "chunked"
        assert body == b"part 0\npart 1\npart 2\npart 3\n"
        # still usable afterwards
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock, buffer)[2] == b"Hello world!"
    with connect(server) as sock:  # HTTP/1.0: close-delimited stream
        sock.sendall(b"GET /stream?n=2 HTTP/1.0\r\n\r\n")
        sock.settimeout(5)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.endswith(b"\r\n\r\npart 0\npart 1\n") and b"chunked" not in data


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(120))
     + b"\r\n", 431),
    (b"POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n", 413),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
     400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
])
def test_limits_and_rejections_answer_then_close(server: Server, request_bytes: bytes,
                                                 status: int) -> None:
    raw = server.raw(request_bytes)
    assert raw.startswith(f"HTTP/1.1 {status} ".encode()), raw[:200]
    assert b"Connection: close" in raw
    assert b"Traceback" not in raw


def test_413_is_sent_before_the_body_is_read(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 413")


def test_header_timeout_answers_408(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # head never finished
        started = time.monotonic()
        sock.settimeout(10)
        data = sock.recv(65536)
        elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408"), data
    assert 1.5 <= elapsed <= 4.0


def test_idle_keep_alive_connection_is_closed_quietly(server: Server) -> None:
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock, buffer)
        started = time.monotonic()
        sock.settimeout(10)
        assert sock.recv(100) == b""  # closed without a response
        assert 1.5 <= time.monotonic() - started <= 4.0


def test_slow_body_is_cut_with_408(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--header-timeout", "1",
                          "--min-body-rate", "100")
    with connect(server) as sock:
        sock.sendall(b"POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        sock.settimeout(10)
        started = time.monotonic()
        data = b""
        try:
            for _ in range(40):
                sock.sendall(b"x")
                time.sleep(0.1)
        except OSError:
            pass
        try:
            data = sock.recv(65536)
        except OSError:
            pass
    assert data.startswith(b"HTTP/1.1 408"), data
    assert time.monotonic() - started < 6


def test_keep_alive_zero_closes_after_every_response(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--keep-alive", "0")
    with connect(server) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(sock, bytearray())
        assert headers["connection"] == "close"


def test_max_keepalive_requests(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--max-keepalive-requests", "3")
    with connect(server) as sock:
        buffer = bytearray()
        for number in range(1, 4):
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            _, headers, _ = read_response(sock, buffer)
            assert (headers.get("connection") == "close") == (number == 3)


def test_client_disconnects_cost_only_their_own_request(server: Server) -> None:
    for _ in range(5):
        with connect(server) as sock:  # mid-head
            sock.sendall(b"GET /hello HTTP/1.1\r\nHo")
        with connect(server) as sock:  # mid-body
            sock.sendall(b"POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
        with connect(server) as sock:  # mid-response: a long stream the client drops
            sock.sendall(b"GET /stream?n=200000 HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(100)
        sock.close()
    time.sleep(0.3)
    assert server.request("GET", "/hello")[2] == b"Hello world!"
    assert "Traceback" not in server.stderr
    assert server.proc.poll() is None


def test_unread_body_that_has_not_arrived_closes_with_notice(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
        status, headers, body = read_response(sock, bytearray())
        assert (status, body) == (200, b"did not read the body")
        assert headers["connection"] == "close"  # announced, not a surprise reset
    with connect(server) as sock:  # an unread body that did arrive: the connection lives on
        buffer = bytearray()
        sock.sendall(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                     b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock, buffer)
        assert "connection" not in headers
        assert read_response(sock, buffer)[2] == b"Hello world!"


def test_closing_response_arrives_whole_while_a_forked_child_holds_the_socket(
        server: Server) -> None:
    # A closing response's tail is held for the FIN (MSG_MORE). The handler's child keeps a
    # copy of the socket, so close() alone would send no FIN: the response would hang until
    # the child exits. The FIN must come from shutdown().
    with connect(server) as sock:
        sock.sendall(b"GET /fork?s=15 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        sock.settimeout(8)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        finally:
            head, _, body = data.partition(b"\r\n\r\n")
            child = int(body) if body.isdigit() else 0
            alive = False
            if child:
                try:
                    os.kill(child, 0)
                    alive = True
                except ProcessLookupError:
                    pass
                os.kill(child, signal.SIGKILL)
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
    assert alive  # the end of the response came while the child still held the socket


def test_defer_accept_still_serves_clients_that_wait_before_sending(
        start_server: StartServer) -> None:
    # --defer-accept is on by default for sockets forkhttpd binds itself: a connection
    # reaches a worker with its first bytes, or after the deferral if it sends none.
    port = free_port()
    server = start_server("--app", "mymod:handler", "--bind", f"127.0.0.1:{port}",
                          "--header-timeout", "1", bind_socket=False)
    server.port = port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as late, \
            socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
        time.sleep(1.5)  # longer than the default deferral of 1 s
        late.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(late, bytearray())[2] == b"Hello world!"
        silent.settimeout(10)
        # handed over after the deferral; a connection that never sent a byte is then
        # closed quietly at the header timeout, like an idle keep-alive one (no 408)
        assert silent.recv(65536) == b""
    assert server.request("GET", "/hello")[2] == b"Hello world!"


def test_a_stopping_server_refuses_new_connections_while_it_finishes(
        start_server: StartServer) -> None:
    # A graceful stop keeps serving the connections it has, but new ones are refused at
    # once, not queued in a backlog nobody will take and reset when the last process exits.
    port = free_port()
    server = start_server("--app", "mymod:handler", "--workers", "1", "--keep-alive", "4",
                          "--bind", f"127.0.0.1:{port}", bind_socket=False)
    server.port = port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as kept:
        buffer = bytearray()
        kept.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(kept, buffer)[2] == b"Hello world!"
        server.send_signal(signal.SIGTERM)
        refused = False
        deadline = time.monotonic() + 3.0  # the kept connection holds the stop for 4 s
        while not refused and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                time.sleep(0.05)
            except ConnectionRefusedError:
                refused = True
        assert refused
        assert server.proc.poll() is None  # still finishing: the kept connection is served
        kept.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        _, headers, body = read_response(kept, buffer)
        assert (body, headers["connection"]) == (b"Hello world!", "close")
    assert server.proc.wait(10) == 0
