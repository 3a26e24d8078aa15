"""Streaming and Server-Sent Events over real sockets: generators chunked on 1.1 and
close-delimited on 1.0, open files by sendfile, SSE streams (VSHS style and generators) with
keep-alive comments, and producers closed when a raw client disconnects."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from .harness import APPS, StartServer, wait_until


def read_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_native_generators_and_files(start_server: StartServer) -> None:
    server = start_server("--app", "streams:handler")
    raw = server.raw(b"GET /gen?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"8\r\npiece 0\n\r\n8\r\npiece 1\n\r\n8\r\npiece 2\n\r\n0\r\n\r\n"
    raw = server.raw(b"GET /gen?n=2 HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"chunked" not in head and b"Content-Length" not in head
    assert body == b"piece 0\npiece 1\n"
    status, headers, body = server.request("GET", "/file")
    assert (status, body) == (200, (APPS / "site" / "index.html").read_bytes())
    assert headers["content-length"] == str(len(body))


def test_sse_events_as_vshs_sends_them(start_server: StartServer) -> None:
    server = start_server("--app", "streams:handler")
    status, headers, body = server.request("GET", "/vshs-events")
    assert status == 200 and headers["content-type"] == "text/event-stream; charset=utf-8"
    assert headers["cache-control"] == "no-cache"
    assert headers["server"] == "forkhttpd" and headers["date"].endswith(" GMT")
    assert body == (b"retry: 2000\n\n"
                    + b"".join(b'event: event_name\ndata: {"count":%d}\n\n' % i for i in range(3)))
    status, headers, body = server.request("GET", "/finite")  # response.data = SSEResponse
    assert headers["content-type"].startswith("text/event-stream")
    assert body == b'data: a\n\ndata: b\n\ndata: {"c":1}\n\n'
    assert server.request("GET", "/sync-func")[2] == (
        b'event: greeting\ndata: first\n\n: between\n\nid: b\ndata: {"n":2}\n\n')
    assert server.request("GET", "/async-gen")[2] == b"".join(
        b"id: %d\ndata: %d\n\n" % (i, i) for i in range(3))
    assert server.request("HEAD", "/async-gen")[2] == b""


def test_sync_generator_stream_is_closed_when_the_client_leaves(
        start_server: StartServer, tmp_path: Path) -> None:
    server = start_server("--app", "streams:handler")  # one worker: the stream holds it
    mark = tmp_path / "sync-closed"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"GET /sync-events?mark={mark} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = read_until(sock, b"data: 0\n\n")
        assert b"Transfer-Encoding: chunked" in data
        assert b'data: {"hello":"world"}\n\n' in data
        assert b"event: multi\nid: 7\nretry: 1500\ndata: two\ndata: lines\n\n" in data
        data = read_until(sock, b": keep-alive\n\n")  # most items are None: room for comments
        assert b": keep-alive" in data
    assert wait_until(mark.exists, 5), "the generator's finally did not run"
    assert mark.read_text() == "closed"
    assert server.request("GET", "/hello")[2] == b"hello"  # the worker is free again


def test_async_stream_keepalives_and_cancel_on_disconnect(start_server: StartServer,
                                                          tmp_path: Path) -> None:
    server = start_server("--app", "streams:handler")
    mark = tmp_path / "async-closed"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"GET /async-events?mark={mark} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = read_until(sock, b'data: {"count":0}\n\n')
        assert b"event: tick\n" in data
        started = time.monotonic()
        data = read_until(sock, b": keep-alive\n\n")
        data += read_until(sock, b": keep-alive\n\n")
        assert data.count(b": keep-alive") >= 2 and time.monotonic() - started < 3
    # the producer sleeps 30 s, but is cancelled (its finally runs) within a moment
    assert wait_until(mark.exists, 3), "the coroutine was not cancelled"
    assert server.request("GET", "/hello")[2] == b"hello"
    assert "Traceback" not in server.stderr


def test_stream_ends_when_the_server_stops(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server("--app", "streams:handler")
    mark = tmp_path / "stopped"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /async-events?mark={mark} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        read_until(sock, b'data: {"count":0}\n\n')
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 10
        assert read_until(sock, b"0\r\n\r\n").endswith(b"0\r\n\r\n")  # a clean end
    assert mark.exists()
