"""The WSGI adapter in-process: a real Exchange and ServerConnection over a fake connection
that records what would be sent, so that the exact bytes of each response shape are checked
(one-piece bodies, streams, HEAD, HTTP/1.0, mismatched Content-Length), every app also runs
under wsgiref.validate, and wsgi.input reads linearly."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest

from forkhttpd.interfaces.wsgi import InputStream, build_environ, wsgi_adapter
from forkhttpd.protocol import DEFAULT_LIMITS, LocalProtocolError, Request, ServerConnection
from forkhttpd.worker.exchange import Exchange, ExchangeContext

StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Options:
    header_timeout = 10.0
    min_body_rate = 0.0


class _Loop:
    options = _Options()
    stopping = False
    on_tick = None


class FakeConn:
    """What Exchange needs of a Connection: the protocol, a peer, sends recorded in order
    (with their `last` flag), reads served from bytes given up front."""

    def __init__(self, raw: bytes, peer: object = ("10.0.0.7", 51234),
                 local: object = ("127.0.0.1", 8080)) -> None:
        self.proto = ServerConnection(DEFAULT_LIMITS)
        self.peer = peer
        self.local = local
        self.scheme = "http"
        self.loop = _Loop()
        self.sent: list[tuple[bytes, bool]] = []
        self.getsockname_calls = 0
        self.pending = b""
        head_end = raw.index(b"\r\n\r\n") + 4
        self.proto.receive_data(raw[:head_end])
        self.pending = raw[head_end:]

    def request(self) -> Request:
        event = self.proto.next_event()
        assert isinstance(event, Request)
        return event

    def local_address(self) -> object:
        self.getsockname_calls += 1
        return self.local

    def send_all(self, data: bytes, timeout: float = 30.0, more: bool = False,
                 last: bool = False) -> None:
        self.sent.append((bytes(data), last))

    def fill(self, timeout: float) -> None:
        # the body arrives in 1,000-byte pieces, as over a socket
        piece, self.pending = self.pending[:1000], self.pending[1000:]
        self.proto.receive_data(piece)

    def recv_nowait(self) -> bytes | None:
        piece, self.pending = self.pending, b""
        return piece or None

    @property
    def wire(self) -> bytes:
        return b"".join(data for data, _ in self.sent)


def serve(app: App, raw: bytes, validate: bool = True, conn: FakeConn | None = None
          ) -> FakeConn:
    """One request through wsgi_adapter (under wsgiref.validate unless told otherwise)."""
    conn = conn or FakeConn(raw)
    request = conn.request()
    exchange = Exchange(conn, request, ExchangeContext(),  # type: ignore[arg-type]
                        close=not request.keep_alive)
    wsgi_adapter(validator(app) if validate else app)(exchange)
    return conn


def no_date(wire: bytes) -> bytes:
    return re.sub(rb"Date: [^\r]*\r\n", b"Date: X\r\n", wire)


GET = b"GET /p?q=1 HTTP/1.1\r\nHost: h\r\n\r\n"
GET_CLOSE = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
GET_10 = b"GET / HTTP/1.0\r\n\r\n"
HEAD = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"
TEXT = [("Content-Type", "text/plain")]


def _listed(body: bytes, fields: list[tuple[str, str]] | None = None,
            status: str = "200 OK") -> App:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, list(fields if fields is not None else TEXT))
        return [body]
    return app


def _generated(pieces: list[bytes], fields: list[tuple[str, str]]) -> App:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", list(fields))
        yield from pieces
    return app


SERVER = b"Server: forkhttpd\r\nDate: X\r\n"
CASES: list[tuple[str, App, bytes, bytes]] = [
    ("list, no length", _listed(b"hello"), GET,
     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + SERVER
     + b"Content-Length: 5\r\n\r\nhello"),
    ("list, declared length", _listed(b"hello", [*TEXT, ("Content-Length", "5")]), GET,
     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + SERVER
     + b"Content-Length: 5\r\n\r\nhello"),
    ("list, close", _listed(b"bye"), GET_CLOSE,
     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + SERVER
     + b"Content-Length: 3\r\nConnection: close\r\n\r\nbye"),
    ("list, HTTP/1.0", _listed(b"old"), GET_10,
     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + SERVER
     + b"Content-Length: 3\r\nConnection: close\r\n\r\nold"),
    ("list, HEAD", _listed(b"hello"), HEAD,
     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + SERVER
     + b"Content-Length: 5\r\n\r\n"),
    ("generator, one piece of the declared length",
     _generated([b"hello"], [*TEXT, ("Content-Length", "5")]), GET,
     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + SERVER
     + b"Content-Length: 5\r\n\r\nhello"),
    ("generator, one piece, closing", _generated([b"hi"], [*TEXT, ("Content-Length", "2")]),
     GET_CLOSE, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + SERVER
     + b"Content-Length: 2\r\nConnection: close\r\n\r\nhi"),
    ("generator, no length: chunked", _generated([b"ab", b"", b"cd"], TEXT), GET,
     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + SERVER
     + b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"),
    ("generator, two pieces of the declared length",
     _generated([b"ab", b"cd"], [*TEXT, ("Content-Length", "4")]), GET,
     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + SERVER
     + b"Content-Length: 4\r\n\r\nabcd"),
    ("empty generator", _generated([], TEXT), GET,
     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + SERVER
     + b"Content-Length: 0\r\n\r\n"),
    ("204, own Date and Server, hop-by-hop fields dropped",
     _listed(b"", [("Date", "Mon, 01 Jan 2024 00:00:00 GMT"), ("Server", "app"),
                   ("X-A", "1")], status="204 No Content"), GET,
     b"HTTP/1.1 204 No Content\r\nDate: X\r\nServer: app\r\nX-A: 1\r\n\r\n"),
    ("404 with a reason of its own", _listed(b"nope", status="404 Gone Fishing"), GET,
     b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n" + SERVER
     + b"Content-Length: 4\r\n\r\nnope"),
]


@pytest.mark.parametrize(("app", "raw", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_response_bytes(app: App, raw: bytes, expected: bytes) -> None:
    conn = serve(app, raw, validate=False)
    assert no_date(conn.wire) == expected


@pytest.mark.parametrize(("app", "raw", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_every_app_passes_wsgiref_validate(app: App, raw: bytes, expected: bytes) -> None:
    # validate wraps the iterable, so the framing may differ; head fields and body may not
    wire = no_date(serve(app, raw).wire)
    head, _, body = wire.partition(b"\r\n\r\n")
    expected_head, _, expected_body = expected.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[:3] == expected_head.split(b"\r\n")[:3]
    if b"chunked" not in head:
        assert body == expected_body


def test_one_piece_bodies_leave_in_one_send_with_the_fin_on_a_closing_connection() -> None:
    conn = serve(_listed(b"bye"), GET_CLOSE, validate=False)
    assert len(conn.sent) == 1 and conn.sent[0][1] is True
    conn = serve(_generated([b"hi"], [*TEXT, ("Content-Length", "2")]), GET_CLOSE,
                 validate=False)
    assert len(conn.sent) == 1 and conn.sent[0][1] is True
    conn = serve(_listed(b"hello"), GET, validate=False)  # kept alive: nothing waits for a FIN
    assert conn.sent == [(conn.wire, False)]


def test_hop_by_hop_fields_are_dropped_and_connection_close_honoured() -> None:
    app = _listed(b"x", [*TEXT, ("Connection", "close"), ("Keep-Alive", "timeout=5"),
                         ("Transfer-Encoding", "gzip")])
    wire = no_date(serve(app, GET, validate=False).wire)
    assert wire == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + SERVER
                    + b"Content-Length: 1\r\nConnection: close\r\n\r\nx")


def test_a_body_longer_or_shorter_than_its_content_length_is_an_error() -> None:
    with pytest.raises(LocalProtocolError):
        serve(_listed(b"toolong", [*TEXT, ("Content-Length", "3")]), GET, validate=False)
    with pytest.raises(LocalProtocolError):
        serve(_generated([b"ab", b"c"], [*TEXT, ("Content-Length", "2")]), GET,
              validate=False)
    with pytest.raises(LocalProtocolError):
        serve(_generated([b"ab"], [*TEXT, ("Content-Length", "3")]), GET, validate=False)


def test_invalid_status_and_content_length_are_refused() -> None:
    with pytest.raises(ValueError, match="WSGI status"):
        serve(_listed(b"x", status="OK"), GET, validate=False)
    with pytest.raises(ValueError, match="invalid Content-Length"):
        serve(_listed(b"x", [("Content-Length", "1"), ("Content-Length", "x")]), GET,
              validate=False)
    with pytest.raises(ValueError, match="invalid Content-Length"):
        serve(_listed(b"x", [("Content-Length", "x"), ("Content-Length", "1")]), GET,
              validate=False)


def _environ_of(raw: bytes, conn: FakeConn | None = None) -> dict[str, Any]:
    conn = conn or FakeConn(raw)
    request = conn.request()
    return build_environ(Exchange(conn, request, ExchangeContext(), close=False))  # type: ignore[arg-type]


def test_environ() -> None:
    environ = _environ_of(b"POST /a%20b?x=1 HTTP/1.1\r\nHost: h:81\r\nContent-Type: t/p\r\n"
                          b"Content-Length: 3\r\nX-Y: 1\r\nX_Z: 2\r\nCookie: a=1\r\n"
                          b"Cookie: b=2\r\nAccept: a\r\nAccept: b\r\n\r\nabc")
    assert environ["PATH_INFO"] == "/a b" and environ["QUERY_STRING"] == "x=1"
    assert environ["REQUEST_URI"] == environ["RAW_URI"] == "/a%20b?x=1"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", "8080")
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("10.0.0.7", "51234")
    assert environ["CONTENT_TYPE"] == "t/p" and environ["CONTENT_LENGTH"] == "3"
    assert environ["HTTP_X_Y"] == "1" and "HTTP_X_Z" not in environ
    assert environ["HTTP_COOKIE"] == "a=1; b=2" and environ["HTTP_ACCEPT"] == "a,b"
    assert environ["HTTP_HOST"] == "h:81" and environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["wsgi.input"].read() == b"abc"
    other = _environ_of(GET)
    assert "CONTENT_LENGTH" not in other and "HTTP_X_Y" not in other
    assert other["wsgi.input"].read() == b"" and other["wsgi.input"].readline() == b""
    other["wsgi.errors"].write("")  # one stream per worker, shared by requests


def test_environ_of_a_unix_socket_takes_the_host_field() -> None:
    conn = FakeConn(b"GET / HTTP/1.1\r\nHost: example.org:8000\r\n\r\n", peer="",
                    local="/run/app.sock")
    environ = _environ_of(b"", conn)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.org", "8000")
    assert environ["REMOTE_ADDR"] == "" and "REMOTE_PORT" not in environ


def test_the_local_address_is_asked_once_per_connection() -> None:
    conn = FakeConn(GET + GET)
    for _ in range(2):
        request = conn.request()
        exchange = Exchange(conn, request, ExchangeContext(),  # type: ignore[arg-type]
                            close=False)
        wsgi_adapter(validator(_listed(b"x")))(exchange)
        conn.proto.start_next_cycle()
        conn.proto.receive_data(conn.pending)
        conn.pending = b""
    assert conn.getsockname_calls == 1


def test_upload_through_the_adapter() -> None:
    body = bytes(range(256)) * 40

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        first = stream.read(10)
        line = stream.readline()
        rest = stream.read()
        start_response("200 OK", list(TEXT))
        return [b"%d %d %d" % (len(first), len(line), len(rest))]

    raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    wire = serve(app, raw, validate=False).wire  # validate forbids read() without a size
    line_end = body.index(b"\n", 10) + 1
    assert wire.endswith(b"10 %d %d" % (line_end - 10, len(body) - line_end))


def _stream(pieces: list[bytes]) -> InputStream:
    feed = iter(pieces)
    return InputStream(lambda: next(feed, b""))


def test_input_reads_like_a_file() -> None:
    stream = _stream([b"ab\ncd", b"ef\n", b"gh", b""])
    assert stream.read(1) == b"a"
    assert stream.readline() == b"b\n"
    assert stream.readline(2) == b"cd"
    assert stream.readline() == b"ef\n"
    assert stream.read(0) == b""
    assert stream.read() == b"gh"
    assert stream.read() == b"" and stream.readline() == b"" and stream.read(5) == b""
    assert list(_stream([b"1\n2\n", b"3"])) == [b"1\n", b"2\n", b"3"]
    assert _stream([b"1\n2\n3\n"]).readlines(3) == [b"1\n", b"2\n"]
    assert _stream([b"abc", b"def", b"g"]).read(5) == b"abcde"
    sized = _stream([b"abc", b"def"])
    assert [sized.read(2), sized.read(2), sized.read(2), sized.read(2)] == [
        b"ab", b"cd", b"ef", b""]
    assert _stream([b"a" * 10, b"b\nc"]).readline(11) == b"a" * 10 + b"b"
    assert _stream([b"x", b"y", b"z\n"]).readline() == b"xyz\n"


def test_input_read_copies_each_byte_a_bounded_number_of_times() -> None:
    """A body of many pieces read whole costs one join, not a growing copy per piece."""
    piece = b"x" * 1000
    count = 4000  # 4 MB
    stream = _stream([piece] * count)
    data = stream.read()
    assert len(data) == len(piece) * count
    stream = _stream([piece] * count)
    total = 0
    while chunk := stream.read(8192):
        total += len(chunk)
    assert total == len(piece) * count
