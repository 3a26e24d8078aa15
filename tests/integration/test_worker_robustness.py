"""A worker under hostile or unusual clients, over real sockets: a pipelining flood up to
--max-keepalive-requests, descriptor exhaustion on accept, handlers that fork children which
hold the client socket, and a slow but steady upload longer than --timeout."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import threading
import time

import pytest

from .harness import Server, StartServer, wait_until

REQUEST = b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n"


def drain_until_eof(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True) or `seconds` pass (False)."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    data = bytearray()
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return bytes(data), False
        except ConnectionResetError:
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
        sock.settimeout(max(0.01, deadline - time.monotonic()))
    return bytes(data), False


def flood(port: int, batches: list[bytes]) -> tuple[int, bool]:
    """Send every batch while reading; the number of responses and whether the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        def send() -> None:
            try:
                for batch in batches:
                    sock.sendall(batch)
            except OSError:
                pass  # the server closed after its limit: the rest is not wanted

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        data, closed = drain_until_eof(sock, 10.0)
        sender.join(5)
    return data.count(b"HTTP/1.1 200 "), closed


@pytest.mark.parametrize("close_at", [None, 37])
def test_pipelining_flood_to_the_keepalive_limit_leaves_the_worker_serving(
        start_server: StartServer, close_at: int | None) -> None:
    # One worker: if the flood froze it, nobody else would answer the probe below.
    server = start_server("--app", "mymod:handler", "--workers", "1",
                          "--max-keepalive-requests", "60", "--timeout", "30")
    requests = [REQUEST] * 200
    if close_at is not None:
        requests[close_at] = b"GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    batches = [b"".join(requests[i:i + 20]) for i in range(0, len(requests), 20)]
    for _ in range(3):
        answered, closed = flood(server.port, batches)
        assert closed and answered == (60 if close_at is None else close_at + 1)
    status, _, body = server.request("GET", "/hello", timeout=5)
    assert (status, body) == (200, b"Hello world!")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_descriptor_exhaustion_backs_off_and_recovers(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "1",
                          "--header-timeout", "30")
    assert wait_until(lambda: len(server.worker_pids()) == 1)
    worker = server.worker_pids()[0]
    assert server.request("GET", "/hello")[0] == 200
    limit = open_fds(worker) + 6
    resource.prlimit(worker, resource.RLIMIT_NOFILE, (limit, limit))
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(40)]
    try:
        for sock in held:  # a head that never ends: each holds a descriptor in the worker
            sock.sendall(b"GET /hello HTTP/1.1\r\n")
        assert wait_until(lambda: "accept failed" in server.stderr, timeout=5)
        time.sleep(2.5)  # exhausted for a while: the log must stay small meanwhile
        lines = server.stderr.count("accept failed")
        print(f"descriptor exhaustion: {lines} 'accept failed' lines while exhausted")
        assert 1 <= lines <= 12, server.stderr[-2000:]
        assert re.search(r"accept failed: .*Too many open files.*not accepting for", server.stderr)
    finally:
        for sock in held:
            sock.close()
    # the held connections end, the worker frees their descriptors and accepts by itself again
    status, _, body = server.request("GET", "/hello", timeout=10)
    assert (status, body) == (200, b"Hello world!")
    for _ in range(20):
        assert server.request("GET", "/hello", timeout=5)[0] == 200
    assert "Traceback" not in server.stderr


@pytest.fixture
def forking_server(start_server: StartServer) -> Server:
    return start_server("--app", "forking:app", "--interface", "wsgi", "--workers", "1")


@pytest.mark.parametrize("path", ["/stream", "/list", "/file"])
@pytest.mark.parametrize("head", [b"HTTP/1.0\r\n", b"HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"])
def test_a_child_forked_by_the_handler_never_holds_the_client(
        forking_server: Server, path: str, head: bytes) -> None:
    with socket.create_connection(("127.0.0.1", forking_server.port), timeout=5) as sock:
        sock.sendall(b"GET " + path.encode() + b"?10 " + head + b"\r\n")
        data, closed = drain_until_eof(sock, 3.0)
    match = re.search(rb"X-Child: (\d+)", data)
    assert match, data
    child = int(match[1])
    try:
        alive = _alive(child)
        assert data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0]
        assert closed and alive  # the end of the response came while the child held the socket
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_steady_upload_longer_than_the_timeout_keeps_the_heartbeat(
        start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "1", "--timeout", "1",
                          "--limit-request-body", "10000000")
    size, piece = 300_000, 10_000  # ~100 KB/s for ~3 s: three times --timeout
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /length HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % size)
        for _ in range(size // piece):
            sock.sendall(b"x" * piece)
            time.sleep(0.1)
        data, closed = drain_until_eof(sock, 5.0)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\n300000"), data[-300:]
    assert "timeout" not in server.stderr and "Traceback" not in server.stderr
