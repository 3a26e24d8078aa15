"""Handler classes over real sockets: http.server's SimpleHTTPRequestHandler and a user subclass
with do_GET/do_POST run pre-forked; forkhttpd's head limits still apply."""

from __future__ import annotations

import http.client
import json
import socket
import time

from .harness import APPS, StartServer


def read_json_response(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"}"):
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_simple_http_request_handler_serves_the_directory(start_server: StartServer) -> None:
    server = start_server("--app", "http.server:SimpleHTTPRequestHandler", "--workers", "2",
                          cwd=APPS / "site")
    status, headers, body = server.request("GET", "/style.css")
    assert (status, body) == (200, (APPS / "site" / "style.css").read_bytes())
    assert headers["server"].startswith("SimpleHTTP/")  # its own HTTP handling applies
    status, _, body = server.request("GET", "/sub/")
    assert status == 200 and body == (APPS / "site" / "sub" / "index.html").read_bytes()
    assert server.request("GET", "/nothing-here")[0] == 404
    assert server.request("GET", "/../secret.txt")[0] == 404
    raw = server.raw(b"GET / HTTP/1.0\r\n\r\n")  # http.server answers 1.0 and closes
    assert raw.startswith(b"HTTP/1.0 200") and raw.endswith(b"<h1>index</h1>\n")
    for _ in range(10):  # every worker keeps serving after handing connections over
        assert server.request("GET", "/index.html")[0] == 200
    assert "Traceback" not in server.stderr


def test_a_partial_with_directory_is_a_handler_class_too(start_server: StartServer) -> None:
    server = start_server("--app", "handler_classes:site_files")  # cwd is apps/, not site/
    assert server.request("GET", "/style.css")[2] == (APPS / "site" / "style.css").read_bytes()


def test_user_subclass_keep_alive_post_and_prefork(start_server: StartServer) -> None:
    server = start_server("--app", "handler_classes:EchoHandler", "--workers", "2")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/first?x=1", headers={"User-Agent": "probe/1"})
        reply = conn.getresponse()
        first = json.loads(reply.read())
        assert reply.status == 200 and first["path"] == "/first?x=1"
        assert first["agent"] == "probe/1" and first["client"] == "127.0.0.1"
        conn.request("POST", "/second", body=b"h\xc3\xa9llo",
                     headers={"Content-Type": "text/plain"})
        reply = conn.getresponse()
        second = json.loads(reply.read())
        assert reply.status == 201 and second == {"method": "POST", "path": "/second",
                                                  "data": "h\u00e9llo"}
    finally:
        conn.close()
    pids = {json.loads(server.request("GET", "/pid")[2])["pid"] for _ in range(20)}
    assert pids <= set(server.worker_pids())


def test_body_already_buffered_with_the_head_is_replayed(start_server: StartServer) -> None:
    server = start_server("--app", "handler_classes:EchoHandler")
    request = (b"POST /together HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
               b"GET /pipelined HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = server.raw(request)
    assert raw.count(b"HTTP/1.1 ") == 2
    assert b'"data": "hello"' in raw and b'"path": "/pipelined"' in raw


def test_forkhttpd_limits_apply_to_every_head(start_server: StartServer) -> None:
    server = start_server("--app", "handler_classes:EchoHandler", "--limit-request-line", "100",
                          "--limit-request-fields", "5")
    long_target = b"/" + b"a" * 200
    raw = server.raw(b"GET " + long_target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 414")  # forkhttpd's parser, before the class
    many = b"".join(b"X-%d: y\r\n" % i for i in range(8))
    raw = server.raw(b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert raw.startswith(b"HTTP/1.1 431")
    # the second request on a kept-alive connection is parsed by http.server: same limits
    raw = server.raw(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET " + long_target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200") and b"414" in raw.split(b"\r\n\r\n", 1)[1]


def test_idle_kept_alive_connection_is_closed_and_frees_the_worker(
        start_server: StartServer) -> None:
    server = start_server("--app", "handler_classes:EchoHandler", "--keep-alive", "0.5")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_json_response(sock).startswith(b"HTTP/1.1 200")
        assert sock.recv(4096) == b""  # closed after --keep-alive of silence
    # the single worker is free again
    assert server.request("GET", "/again")[0] == 200


def test_stop_ends_a_held_connection(start_server: StartServer) -> None:
    server = start_server("--app", "handler_classes:EchoHandler", "--keep-alive", "60")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_json_response(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert server.stop() == 0  # graceful: the held connection ends, the worker exits
        assert time.monotonic() - started < 10
        assert sock.recv(4096) == b""
