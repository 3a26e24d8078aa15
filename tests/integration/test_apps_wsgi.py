"""WSGI (PEP 3333) over real sockets: the environ, wsgi.input (chunked, 100-continue),
start_response with exc_info, write(), streamed iterables, close(), wsgi.file_wrapper, wsgiref's
validator, a real Flask app, and --interface auto's choices."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import APPS, REPO, Server, StartServer


def chunked_body(text: bytes, size: int = 5) -> bytes:
    pieces = [text[i:i + size] for i in range(0, len(text), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_environ_has_every_required_key(start_server: StartServer) -> None:
    server = start_server("--app", "wsgi_apps:app", "--interface", "wsgi")
    status, _, body = server.request(
        "POST", "/environ/caf%C3%A9?x=1&y=%20", body=b"abc",
        headers={"Content-Type": "text/plain", "X-Thing": "yes", "X_Sneaky": "no"})
    environ = json.loads(body)
    assert status == 200
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/environ/caf\u00c3\u00a9"  # bytes as latin-1 (PEP 3333)
    assert environ["QUERY_STRING"] == "x=1&y=%20"
    assert environ["CONTENT_TYPE"] == "text/plain" and environ["CONTENT_LENGTH"] == "3"
    assert environ["SERVER_NAME"] == "127.0.0.1" and environ["SERVER_PORT"] == str(server.port)
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "127.0.0.1" and environ["REMOTE_PORT"].isdigit()
    assert environ["HTTP_X_THING"] == "yes" and environ["HTTP_HOST"].startswith("127.0.0.1")
    assert "HTTP_X_SNEAKY" not in environ  # "_" in a name could pose as "-"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert environ["wsgi.url_scheme"] == "http" and environ["wsgi.version"] == [1, 0]
    assert environ["wsgi.multiprocess"] is True
    assert environ["body"] == "abc"


def test_input_streams_chunked_bodies_and_sends_100_continue(start_server: StartServer) -> None:
    server = start_server("--app", "wsgi_apps:app", "--interface", "wsgi")
    text = b"line one\nline two\nline three\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /lines HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(chunked_body(text))
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"3 lines; last=line three\n")


def test_streaming_write_length_and_exc_info(start_server: StartServer) -> None:
    server = start_server("--app", "wsgi_apps:app", "--interface", "wsgi")
    raw = server.raw(b"GET /generator HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert b"chunk 0;" in body and body.endswith(b"0\r\n\r\n")
    raw = server.raw(b"GET /generator HTTP/1.0\r\n\r\n")  # HTTP/1.0: ends with the close
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"chunked" not in head and body == b"".join(b"chunk %d;" % i for i in range(5))
    assert server.request("GET", "/write")[2] == b"written then returned"
    status, headers, body = server.request("GET", "/length")
    assert (status, headers["content-length"], body) == (200, "10", b"0123456789")
    status, _, body = server.request("GET", "/exc-info")
    assert (status, body) == (503, b"recovered")


def test_file_wrapper_errors_and_failures(start_server: StartServer) -> None:
    server = start_server("--app", "wsgi_apps:app", "--interface", "wsgi")
    status, headers, body = server.request("GET", "/file")
    assert status == 200 and body == (APPS / "site" / "style.css").read_bytes()
    assert headers["content-length"] == str(len(body))
    head = server.request("HEAD", "/file")
    assert head[0] == 200 and head[2] == b""
    assert server.request("GET", "/errors")[0] == 204
    server.wait_for_log("a line for the error log")
    status, _, body = server.request("GET", "/fails-early")
    assert status == 500 and b"secret" not in body
    server.wait_for_log("secret early failure")
    assert server.request("GET", "/nothing")[0] == 404


def test_close_is_always_called(start_server: StartServer) -> None:
    server = start_server("--app", "wsgi_apps:closing_app")
    assert server.request("GET", "/")[2] == b"ab"
    raw = server.raw(b"GET /raise HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200") and b"partial" in raw
    assert not raw.endswith(b"0\r\n\r\n")  # no clean end: the client sees the failure
    server.wait_for_log("mid-stream failure")
    # /closed reports the count before its own close(): both earlier iterables were closed
    assert server.request("GET", "/closed")[2] == b"2"


def test_wsgiref_validator_passes(start_server: StartServer) -> None:
    server = start_server("--app", "wsgi_apps:validated")
    assert json.loads(server.request("POST", "/environ", body=b"xyz",
                                     headers={"Content-Type": "text/plain"})[2])["body"] == "xyz"
    assert server.request("GET", "/generator")[2].startswith(b"chunk 0;")
    assert server.request("GET", "/write")[2] == b"written then returned"
    assert server.request("GET", "/length")[2] == b"0123456789"
    assert server.request("POST", "/lines", body=b"a\nb\n",
                          headers={"Content-Type": "text/plain"})[2] == b"2 lines; last=b\n"
    assert server.request("GET", "/file")[0] == 200
    assert server.request("HEAD", "/generator")[0] == 200
    log = server.stderr
    assert "AssertionError" not in log and "garbage collected" not in log, log


def test_flask_app(start_server: StartServer) -> None:
    pytest.importorskip("flask")
    server = start_server("--app", "flask_app:app", "--workers", "2")
    status, headers, body = server.request("GET", "/")
    assert (status, body) == (200, b"hello from flask")
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["server"] == "forkhttpd" and headers["date"].endswith(" GMT")
    status, headers, body = server.request("GET", "/users/42?tab=posts")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"id": 42, "name": "user 42", "args": {"tab": "posts"}}
    status, _, body = server.request(
        "POST", "/form", body=b"name=Ada+Lovelace&lang=en",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert json.loads(body) == {"fields": {"name": "Ada Lovelace", "lang": "en"}, "length": 25}
    status, _, body = server.request("POST", "/json", body=json.dumps({"numbers": [1, 2]}),
                                     headers={"Content-Type": "application/json"})
    assert status == 201 and json.loads(body)["doubled"] == [2, 4]
    raw = server.raw(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n" + chunked_body(b"x" * 1000, 300))
    assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b'{"size":1000}\n')
    raw = server.raw(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in raw and b"line 3\n" in raw
    status, headers, body = server.request("GET", "/file")
    assert (status, body) == (200, (APPS / "site" / "index.html").read_bytes())
    assert server.request("GET", "/missing")[0] == 404
    assert server.request("GET", "/teapot")[:1] == (418,)
    status, _, body = server.request("GET", "/boom")
    assert status == 500 and b"secret" not in body
    server.wait_for_log("secret flask failure")
    assert server.request("GET", "/")[0] == 200


@pytest.mark.parametrize(("args", "expected"), [
    (["--app", "gunicorn_style:either"], "pass --interface wsgi"),
    (["--app", "wsgi_apps:validated", "--interface", "handler-class"],
     "not a subclass of http.server.BaseHTTPRequestHandler"),
    (["--app", "mymod:VERSION"], "is not callable"),
])
def test_interface_mistakes_are_one_clear_line(args: list[str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "forkhttpd", *args, "--bind", "127.0.0.1:0"],
        cwd=APPS, capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_interface_flag_overrides_detection(tmp_path: Path) -> None:
    server = Server("--app", "wsgi_apps:app", "--interface", "wsgi", log_dir=tmp_path)
    try:
        server.wait_ready()
        assert server.request("GET", "/write")[2] == b"written then returned"
    finally:
        server.stop()
