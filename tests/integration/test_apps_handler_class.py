"""Handler classes over real sockets: http.server's SimpleHTTPRequestHandler and a user subclass
with do_GET/do_POST run pre-forked; forkhttpd's head limits still apply."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from pathlib import Path

from .harness import APPS, StartServer, wait_until


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


def test_stop_ends_a_kept_alive_connection_at_its_deadline(start_server: StartServer) -> None:
    # as for every interface: an idle connection is closed at its keep-alive deadline, not
    # at once (that would race a client sending its next request on it)
    server = start_server("--app", "handler_classes:EchoHandler", "--keep-alive", "2")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_json_response(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert server.stop() == 0  # graceful: the connection ends, the worker exits
        assert time.monotonic() - started < 8
        assert sock.recv(4096) == b""


def test_an_unread_body_never_becomes_the_next_request(start_server: StartServer) -> None:
    # EchoHandler's do_GET reads no body: forkhttpd frames each request, so the body is
    # skipped, never parsed by http.server as a request of its own (request smuggling).
    server = start_server("--app", "handler_classes:EchoHandler")
    hidden = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = server.raw(b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(hidden)
                     + hidden + b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.count(b"HTTP/1.1 200 ") == 2, raw
    assert b'"path": "/a"' in raw and b'"path": "/b"' in raw and b"smuggled" not in raw
    # a chunked body left unread is framed by forkhttpd too
    raw = server.raw(b"GET /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"%x\r\n" % len(hidden) + hidden + b"\r\n0\r\n\r\n"
                     b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.count(b"HTTP/1.1 200 ") == 2 and b"smuggled" not in raw, raw


def test_a_chunked_body_reaches_the_class_as_sent(start_server: StartServer) -> None:
    server = start_server("--app", "handler_classes:ChunkedEchoHandler")
    raw = server.raw(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                     b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.count(b"HTTP/1.1 200 ") == 2 and b"hello world" in raw, raw


def test_handler_class_requests_are_counted_and_logged(start_server: StartServer,
                                                       tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    server = start_server("--app", "handler_classes:EchoHandler", "--workers", "1",
                          "--max-requests", "4", "--access-logfile", str(access))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for path in ("/one", "/two", "/three"):  # three requests on one connection
            conn.request("GET", path)
            assert conn.getresponse().read().startswith(b"{")
    finally:
        conn.close()
    assert server.request("GET", "/four")[0] == 200
    log = server.wait_for_log("exited: reason=max-requests")
    served = [int(n) for n in re.findall(r"served (\d+) requests", log)]
    assert served and served[0] >= 4
    assert wait_until(lambda: access.exists() and access.read_text().count("\n") >= 4)
    lines = access.read_text().splitlines()
    assert [line.split('"')[1] for line in lines[:4]] == [
        "GET /one HTTP/1.1", "GET /two HTTP/1.1", "GET /three HTTP/1.1", "GET /four HTTP/1.1"]
    assert all('" 200 ' in line for line in lines[:4])
