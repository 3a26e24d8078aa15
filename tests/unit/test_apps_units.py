"""The interfaces' pure parts: range parsing, SSE framing, VSHS body conversion and URL helpers,
CGI output parsing, interface detection, wsgi.input semantics, route matching."""

from __future__ import annotations

import asyncio
import http.server
from pathlib import Path
from typing import Any

import pytest

from forkhttpd import URL, Blob, get_query
from forkhttpd.interfaces import InterfaceError, detect_interface
from forkhttpd.interfaces.cgi import CGIError, parse_cgi_output
from forkhttpd.interfaces.routes import RoutesDirectory
from forkhttpd.interfaces.sse import SSEEvent, format_event
from forkhttpd.interfaces.static import byte_range
from forkhttpd.interfaces.vshs import BodyError, convert_body
from forkhttpd.interfaces.wsgi import InputStream


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-9", (0, 9)), ("bytes=5-", (5, 99)), ("bytes=-10", (90, 99)),
    ("bytes=90-200", (90, 99)), ("bytes=-500", (0, 99)), ("BYTES = 1 - 2", (1, 2)),
    ("bytes=100-", False), ("bytes=-0", False), ("bytes=200-300", False),
    ("bytes=5-1", None), ("bytes=0-1,3-4", None), ("items=0-1", None), ("bytes=-", None),
    ("bytes=x-1", None), ("", None),
])
def test_byte_range(header: str, expected: object) -> None:
    assert byte_range(header, 100) == expected


def test_byte_range_of_an_empty_file() -> None:
    assert byte_range("bytes=0-", 0) is False and byte_range("bytes=-1", 0) is False


def test_sse_format() -> None:
    assert format_event("hi") == b"data: hi\n\n"
    assert format_event({"a": [1, 2]}) == b'data: {"a":[1,2]}\n\n'
    assert format_event("a\r\nb\rc\nd", event="e", id=3, retry=10) == (
        b"event: e\nid: 3\nretry: 10\ndata: a\ndata: b\ndata: c\ndata: d\n\n")
    assert format_event(b"bytes") == b"data: bytes\n\n"
    assert format_event() == b": keep-alive\n\n"
    for bad in ({"event": "x\ny"}, {"id": "a\rb"}, {"id": "nul\0"}):
        with pytest.raises(ValueError):
            format_event("d", **bad)  # type: ignore[arg-type]
    assert SSEEvent("d", event="e").event == "e"


@pytest.mark.parametrize(("body", "content_type", "expected"), [
    (b"", "application/json", None),
    (b'{"a": 1}', "application/json", {"a": 1}),
    (b'{"a": 1}', "application/vnd.api+json; charset=utf-8", {"a": 1}),
    (b"plain", "text/plain", "plain"),
    (b"[1, 2]", "text/plain", [1, 2]),
    (b"caf\xe9", "text/plain; charset=latin-1", "caf\u00e9"),
    (b"a=1&b=x+y", "application/x-www-form-urlencoded", {"a": "1", "b": "x y"}),
    (b'{"a": 1}', "application/x-www-form-urlencoded", {"a": 1}),
    (b"\x00", "application/octet-stream", b"\x00"),
    (b"\x00", None, b"\x00"),
])
def test_convert_body(body: bytes, content_type: str | None, expected: object) -> None:
    assert convert_body(body, content_type) == expected


def test_convert_body_blob_and_errors() -> None:
    blob = convert_body(b"<x/>", "image/svg+xml")
    assert isinstance(blob, Blob) and blob.type == "image/svg+xml" and blob.size == 4
    assert asyncio.run(blob.text()) == "<x/>" and asyncio.run(blob.bytes()) == b"<x/>"
    for body, content_type in ((b"{", "application/json"), (b"\xff", "text/plain"),
                               (b"x", "text/plain; charset=nope")):
        with pytest.raises(BodyError):
            convert_body(body, content_type)


def test_url_and_get_query() -> None:
    url = URL("/a%20b/c", "x=1&x=2&y=&z=%C3%A9", "example.com", 8080)
    assert url.path == "/a b/c" and url.raw_path == "/a%20b/c"
    assert str(url) == "http://example.com:8080/a%20b/c?x=1&x=2&y=&z=%C3%A9"
    assert url.query["x"] == "1" and url.query.getall("x") == ["1", "2"]
    assert get_query(url) == {"x": ["1", "2"], "y": "", "z": "\u00e9"}
    assert get_query("http://h/p?a=b") == {"a": "b"}
    assert str(URL("/", "", "::1", 80)) == "http://[::1]/"
    assert URL.parse("http://h:81/p?q=1") == URL("/p", "q=1", "h", 81)


def test_parse_cgi_output() -> None:
    assert parse_cgi_output(b"Content-Type: text/plain\r\nX: 1\r\n\r\nbody") == (
        [("Content-Type", "text/plain"), ("X", "1")], b"body")
    assert parse_cgi_output(b"Status: 404\n\n") == ([("Status", "404")], b"")
    for bad in (b"no blank line", b"Content-Type text/plain\n\n", b"Bad Name: x\n\n",
                b"".join(b"X-%d: y\n" % i for i in range(200)) + b"\n"):
        with pytest.raises(CGIError):
            parse_cgi_output(bad)


def test_detect_interface() -> None:
    flask = pytest.importorskip("flask")
    assert detect_interface(flask.Flask("x")) == "wsgi"
    assert detect_interface(http.server.SimpleHTTPRequestHandler) == "handler-class"
    assert detect_interface(lambda request, response: None) == "native"

    def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return []

    assert detect_interface(plain) == "wsgi"  # what gunicorn users write

    class Either:  # an object's __call__(environ, start_response) could be a handler too
        def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
            return []

    with pytest.raises(InterfaceError, match="pass --interface wsgi"):
        detect_interface(Either())
    Either.__forkhttpd_interface__ = "wsgi"  # type: ignore[attr-defined]
    assert detect_interface(Either()) == "wsgi"

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(InterfaceError, match="ASGI"):
        detect_interface(asgi)
    with pytest.raises(InterfaceError, match="not callable"):
        detect_interface(42)

    class Odd(http.server.BaseHTTPRequestHandler):
        __forkhttpd_interface__ = "wsgi"

    with pytest.raises(InterfaceError, match="--interface wsgi"):
        detect_interface(Odd)


def test_wsgi_input_reads_like_a_file() -> None:
    pieces = iter([b"ab\ncd", b"ef\n", b"gh", b""])
    stream = InputStream(lambda: next(pieces, b""))
    assert stream.read(1) == b"a"
    assert stream.readline() == b"b\n"
    assert stream.readline(2) == b"cd"
    assert stream.readline() == b"ef\n"
    assert stream.read() == b"gh"
    assert stream.read() == b"" and stream.readline() == b""
    lines = iter([b"1\n2\n", b"3"])
    assert list(InputStream(lambda: next(lines, b""))) == [b"1\n", b"2\n", b"3"]
    lines = iter([b"1\n2\n3\n"])
    assert InputStream(lambda: next(lines, b"")).readlines(3) == [b"1\n", b"2\n"]


def test_route_matching(tmp_path: Path) -> None:
    for rel in ("GET.py", "a/GET.py", "a/{x}/GET.py", "a/b/POST.py", "{y}/c/PUT.py"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("def default(url, body, route):\n    return route.vars\n")
    (tmp_path / "a" / "helper.py").write_text("raise SystemExit('not a route')\n")
    routes = RoutesDirectory(str(tmp_path))
    assert routes.count == 5

    def matched(path: str) -> list[tuple[str, dict[str, str]]]:
        return [(node.pattern, variables) for node, variables in routes.match(path)]

    assert matched("/") == [("/", {})]
    assert matched("/a") == [("/a", {})]
    assert matched("/a/b") == [("/a/b", {}), ("/a/{x}", {"x": "b"})]
    assert matched("/a/q%2Fr") == [("/a/{x}", {"x": "q/r"})]
    assert matched("/z/c") == [("/{y}/c", {"y": "z"})]
    assert matched("/a/c") == [("/a/{x}", {"x": "c"}), ("/{y}/c", {"y": "a"})]
    assert matched("/nothing/here") == [] and matched("/a//") == []
