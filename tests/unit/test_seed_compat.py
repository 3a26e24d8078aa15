"""Issue 15's pure and in-process parts: the dot-file rule of the static path mapping,
keyword options of the embedded servers checked against the settings table, VSHS's rootDir(),
the handler class bound to its drop-in server, and pyhttp's request handler answering over a
socketpair (no fork, no port)."""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import socket
import sys
from pathlib import Path

import pytest

import forkhttpd
from forkhttpd.interfaces.compat import rootDir, with_server
from forkhttpd.interfaces.compat_pyhttp import BaseHttpRequestHandler, Request
from forkhttpd.interfaces.static import map_path
from forkhttpd.ops.embedded import HttpServer


@pytest.mark.parametrize("raw", ["/.env", "/.git/config", "/%2egit/config", "/%2Eenv",
                                 "/a/.b/c", "/a/%2e%62", "/.", "/..", "/%2e%2e/x"])
def test_dot_segments_are_refused_unless_hidden(raw: str) -> None:
    assert map_path("/srv", raw) is None
    if raw not in ("/.", "/..", "/%2e%2e/x"):  # climbing is refused even then
        assert map_path("/srv", raw, hidden=True) is not None
    else:
        assert map_path("/srv", raw, hidden=True) is None


def test_dots_inside_a_name_are_fine() -> None:
    assert map_path("/srv", "/a.b/c.txt") == "/srv/a.b/c.txt"
    assert map_path("/srv", "/%252egit") == "/srv/%2egit"  # decoded once: a literal name


def _handler(request: object, response: object) -> None:
    pass


def test_http_server_keeps_picohttp_positions_and_checks_options() -> None:
    server = HttpServer(8080, _handler, ("x",), False, False)  # threads=False, start=False
    assert (server.threads, server.block, server.args, server.pid) == (False, True, ("x",), None)
    assert server.settings.workers == 1 and server.settings.bind[0].port == 8080
    server = HttpServer(8080, _handler, start=False, workers="3", keep_alive=0,  # type: ignore[arg-type]
                        access_logfile="-", static=["/s=./static"])
    assert (server.settings.workers, server.settings.keep_alive) == (3, 0.0)
    assert str(server.settings.static[0]) == "/s=./static"
    with pytest.raises(TypeError, match=r"unknown option keepalive=3 \(did you mean "
                                        r"keep_alive=\?\)"):
        HttpServer(8080, _handler, start=False, keepalive=3)
    with pytest.raises(ValueError, match="HttpServer: workers=0: expected an integer >= 1"):
        HttpServer(8080, _handler, start=False, workers=0)
    with pytest.raises(TypeError, match="handler must be callable"):
        HttpServer(8080, "index.html", start=False)  # type: ignore[arg-type]


def test_drop_in_options_fail_before_anything_binds() -> None:
    with pytest.raises(TypeError, match="HTTPServer: unknown option"):
        forkhttpd.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler,
                             worker=2)
    with pytest.raises(TypeError, match="BaseServer: unknown option"):
        forkhttpd.BaseServer(port=0, threads=4)
    with pytest.raises(FileNotFoundError, match="routes=.*is not a directory"):
        asyncio.run(forkhttpd.startHTTPServer(routes="/no-such-routes-dir"))


def test_root_dir_is_the_main_scripts_directory(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    script = tmp_path / "main.py"
    script.write_text("")
    main = type(sys)("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert rootDir() == str(tmp_path)
    # an exec'd zygote's __main__ has no file: the master's argv[0] names the script
    del main.__file__
    monkeypatch.setattr(sys, "argv", [str(script)])
    assert rootDir() == str(tmp_path)
    monkeypatch.setattr(sys, "argv", ["-c"])
    assert rootDir() == os.getcwd()


class _Seen(http.server.BaseHTTPRequestHandler):
    def __init__(self, request: object, client_address: object, server: object,
                 directory: str = "") -> None:
        self.seen = (server, directory)


def test_with_server_hands_the_drop_in_server_to_the_handler() -> None:
    server = object()
    bound = with_server(_Seen, server)
    handler = bound(None, ("127.0.0.1", 1), "adapter's stand-in")
    assert handler.seen == (server, "")
    assert (bound.__name__, bound.__qualname__) == ("_Seen", "_Seen")
    assert issubclass(bound, http.server.BaseHTTPRequestHandler)
    partial = with_server(functools.partial(_Seen, directory="/srv"), server)
    assert partial(None, ("127.0.0.1", 1), None).seen == (server, "/srv")


def _exchange(handler: type, request: bytes, server: object = None,
              **kwargs: object) -> bytes:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(request)
        handler(ours, ("127.0.0.1", 5555), server, **kwargs)
        theirs.settimeout(5)
        chunks = []
        while chunk := theirs.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_pyhttp_request_reads_head_and_body() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(b"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        request = Request(ours)
    assert (request.command, request.path, request.http_ver) == ("POST", "/x?y=1", "HTTP/1.1")
    assert request.headers == {"Host": "a", "Content-Length": "5"}
    assert request.body == b"hello" and request.header("content-length") == "5"


def test_pyhttp_handler_files_listing_and_refusals(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("aaa")
    (tmp_path / ".env").write_text("secret")
    (tmp_path / "d").mkdir()
    answer = _exchange(BaseHttpRequestHandler, b"GET /a.txt HTTP/1.1\r\nHost: a\r\n\r\n",
                       directory=str(tmp_path))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\naaa")
    listing = _exchange(BaseHttpRequestHandler, b"GET / HTTP/1.1\r\n\r\n",
                        directory=str(tmp_path))
    assert b'href="a.txt"' in listing and b'href="d/"' in listing and b".env" not in listing
    assert str(tmp_path).encode() not in listing  # URL paths, not the server's
    for path in (b"/.env", b"/%2eenv", b"/d/..%2f.env", b"/../x"):
        refused = _exchange(BaseHttpRequestHandler, b"GET " + path + b" HTTP/1.1\r\n\r\n",
                            directory=str(tmp_path))
        assert refused.startswith(b"HTTP/1.1 404 "), path
    moved = _exchange(BaseHttpRequestHandler, b"GET //d HTTP/1.1\r\n\r\n",
                      directory=str(tmp_path))
    assert moved.startswith(b"HTTP/1.1 301 ") and b"\r\nLocation: /d/\r\n" in moved
    assert _exchange(BaseHttpRequestHandler, b"DELETE /a.txt HTTP/1.1\r\n\r\n",
                     directory=str(tmp_path)).startswith(b"HTTP/1.1 405 ")
    assert _exchange(BaseHttpRequestHandler, b"nonsense\r\n\r\n",
                     directory=str(tmp_path)).startswith(b"HTTP/1.1 400 ")


def test_pyhttp_handler_serves_hidden_files_when_its_server_says_so(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("secret")
    server = type("S", (), {"settings": type("Settings", (), {"serve_hidden": True})})()
    answer = _exchange(BaseHttpRequestHandler, b"GET /.env HTTP/1.1\r\n\r\n", server,
                       directory=str(tmp_path))
    assert answer.endswith(b"\r\n\r\nsecret")
