"""Request-side rules of forkhttpd.protocol: every rejection with its exact status.

Each rejection is checked twice, with the input fed whole and byte by byte, so
the incremental scanner and the complete-head fast path are held to the same
verdict.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import pytest

from forkhttpd.protocol import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Limits,
    LocalProtocolError,
    ProtocolError,
    Request,
    ServerConnection,
)

LAX = Limits(require_host=False)


def events(data: bytes, limits: Limits = LAX, eof: bool = False) -> list[Event]:
    """Feed `data` whole; collect events until NEED_DATA/PAUSED/ConnectionClosed."""
    conn = ServerConnection(limits)
    conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    out: list[Event] = []
    while True:
        event = conn.next_event()
        out.append(event)
        if event is NEED_DATA or event is PAUSED or isinstance(event, ConnectionClosed):
            return out


def request(data: bytes, limits: Limits = LAX) -> Request:
    first = events(data, limits)[0]
    assert isinstance(first, Request), first
    return first


def body_of(data: bytes, limits: Limits = LAX) -> tuple[bytes, EndOfMessage]:
    evs = events(data, limits)
    assert isinstance(evs[0], Request)
    body = b"".join(e.data for e in evs if isinstance(e, Data))
    ends = [e for e in evs if isinstance(e, EndOfMessage)]
    assert len(ends) == 1, evs
    return body, ends[0]


def _status(pieces: list[bytes], limits: Limits, eof: bool) -> int | None:
    conn = ServerConnection(limits)
    try:
        for piece in pieces:
            conn.receive_data(piece)
            while (event := conn.next_event()) is not NEED_DATA:
                if event is PAUSED or isinstance(event, ConnectionClosed):
                    return None
        if eof:
            conn.receive_data(b"")
            while (event := conn.next_event()) is not NEED_DATA:
                if event is PAUSED or isinstance(event, ConnectionClosed):
                    return None
    except ProtocolError as exc:
        assert exc.reason and "\n" not in exc.reason
        with pytest.raises(ProtocolError):
            conn.next_event()  # a dead connection stays dead
        return exc.status
    return None


def reject(data: bytes, status: int, limits: Limits = LAX, eof: bool = False) -> None:
    """`data` must be refused with `status`, whether fed whole or byte by byte."""
    assert _status([data], limits, eof) == status, "whole"
    assert _status([data[i:i + 1] for i in range(len(data))], limits, eof) == status, "bytewise"


GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


def with_header(line: bytes, version: bytes = b"1.1") -> bytes:
    return b"GET / HTTP/" + version + b"\r\nHost: h\r\n" + line + b"\r\n\r\n"


# --------------------------------------------------------------------------- request line

def test_typical_request_fields() -> None:
    req = request(b"GET /a/b%20c?x=1&y=%41 HTTP/1.1\r\nHost: example.com:8080\r\n"
                  b"User-Agent:  test/1.0 \t\r\nACCEPT: */*\r\naccept: text/html\r\n\r\n")
    assert req.method == "GET"
    assert req.target == "/a/b%20c?x=1&y=%41"
    assert req.path == "/a/b%20c" and req.query == "x=1&y=%41"  # raw, not percent-decoded
    assert req.version == "1.1"
    # RFC 9110 5.1 names lower-cased; RFC 9112 5 surrounding OWS stripped; order and repeats kept
    assert req.headers == [("host", "example.com:8080"), ("user-agent", "test/1.0"),
                           ("accept", "*/*"), ("accept", "text/html")]
    assert req.host == "example.com:8080"
    assert req.content_length is None and not req.chunked
    assert req.keep_alive and not req.expect_continue
    assert req.request_line == "GET /a/b%20c?x=1&y=%41 HTTP/1.1"
    assert req.get_header("Accept") == "*/*" and req.get_header("x-none") is None


@pytest.mark.parametrize(("version", "expected"), [(b"HTTP/1.0", "1.0"), (b"HTTP/1.1", "1.1"),
                                                   (b"HTTP/1.2", "1.1"), (b"HTTP/1.9", "1.1")])
def test_versions_accepted(version: bytes, expected: str) -> None:
    # RFC 9110 2.5: a higher 1.x minor is processed as the highest we implement (1.1)
    req = request(b"GET / " + version + b"\r\nHost: h\r\n\r\n")
    assert req.version == expected
    assert req.request_line.endswith(version.decode())


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/9.9", b"HTTP/0.9", b"HTTP/3.0"])
def test_unsupported_major_version_is_505(version: bytes) -> None:
    reject(b"GET / " + version + b"\r\nHost: h\r\n\r\n", 505)  # RFC 9110 15.6.6


@pytest.mark.parametrize("version", [b"http/1.1", b"HTTP/1.1x", b"HTTP/11", b"HTTP/1.10",
                                     b"HTTP/0.99", b"HTTP/1", b"HTTP 1.1", b"FTP/1.1",
                                     b"HTTP/1.1 ", b"HTTP/\xc2\xb9.1"])
def test_malformed_version_is_400(version: bytes) -> None:
    reject(b"GET / " + version + b"\r\nHost: h\r\n\r\n", 400)  # RFC 9112 2.3


def test_http09_request_rejected_without_waiting_for_more() -> None:
    # RFC 9112 2.3: no version = HTTP/0.9; refused as soon as its line ends, no EOF needed
    reject(b"GET /\r\n", 400)


@pytest.mark.parametrize("method", [b"get", b"-BLARGH", b"M-SEARCH", b"X!#$%&'*+.^_`|~1"])
def test_any_token_method_accepted(method: bytes) -> None:
    # RFC 9110 9.1: method = token, case-sensitive; unknown ones are the app's business
    assert request(method + b" / HTTP/1.1\r\n\r\n").method == method.decode()


@pytest.mark.parametrize("method", [b"GE:T", b"GET\x00", b"GET\xc3\x9f", b"G(T", b"G\"T"])
def test_non_token_method_is_400(method: bytes) -> None:
    reject(method + b" / HTTP/1.1\r\nHost: h\r\n\r\n", 400)  # RFC 9110 5.6.2


@pytest.mark.parametrize("line", [b"GET  / HTTP/1.1", b"GET /  HTTP/1.1", b" GET / HTTP/1.1",
                                  b"GET\t/ HTTP/1.1", b"GET / HTTP/1.1 ", b"GET /\tHTTP/1.1",
                                  b"GET", b"GET /a b HTTP/1.1", b"GET\x0b/ HTTP/1.1"])
def test_request_line_needs_single_spaces(line: bytes) -> None:
    reject(line + b"\r\nHost: h\r\n\r\n", 400)  # RFC 9112 3


def test_request_line_limit_is_414_before_crlf() -> None:
    limits = Limits(require_host=False, max_request_line=100)
    ok = b"GET /" + b"a" * (100 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(ok) == 100
    assert request(ok + b"\r\n\r\n", limits).target.startswith("/aaa")
    reject(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n\r\n", 414, limits)
    # no CRLF yet and no EOF: refused as soon as the line is provably too long
    assert _status([b"GET /" + b"a" * 100], limits, eof=False) == 414
    assert _status([b"GET /" + b"a" * 90], limits, eof=False) is None


# --------------------------------------------------------------------------- request-target

def test_origin_form_fragment_dropped() -> None:
    req = request(b"GET /p?q=1#frag HTTP/1.1\r\n\r\n")
    assert (req.target, req.path, req.query) == ("/p?q=1#frag", "/p", "q=1")
    req = request(b"GET /p#f?notquery HTTP/1.1\r\n\r\n")
    assert (req.path, req.query) == ("/p", "")


def test_lenient_target_bytes_accepted() -> None:
    req = request(b'GET /with_"quotes"/\xc3\xa0 HTTP/1.1\r\n\r\n')
    assert req.path == '/with_"quotes"/\xc3\xa0'  # raw bytes as latin-1


@pytest.mark.parametrize("raw", [b"\x80", b"\xff", b"\xc3\xa9", b"\xe2\x80\xa8"])
def test_target_bytes_over_0x7f_passed_through(raw: bytes) -> None:
    # docs/security.md: obs-text in the target cannot frame anything, so it is handed on
    # byte for byte (latin-1), in the path and in the query, whole and byte by byte
    data = b"GET /a" + raw + b"?q=" + raw + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    for pieces in ([data], [data[i:i + 1] for i in range(len(data))]):
        conn = ServerConnection(Limits())
        for piece in pieces:
            conn.receive_data(piece)
        req = conn.next_event()
        assert isinstance(req, Request)
        assert req.path.encode("latin-1") == b"/a" + raw
        assert req.query.encode("latin-1") == b"q=" + raw


@pytest.mark.parametrize("raw", [b"\x7f", b"\x00", b"\x1f"])
def test_target_control_bytes_are_400(raw: bytes) -> None:
    reject(b"GET /a" + raw + b" HTTP/1.1\r\nHost: h\r\n\r\n", 400)


def test_absolute_form_target_host_wins() -> None:
    # RFC 9112 3.2.2: the authority of an absolute-form target replaces Host
    req = request(b"GET http://localhost:8080/abs?x=y#f HTTP/1.1\r\nHost: other.example\r\n\r\n")
    assert (req.host, req.path, req.query) == ("localhost:8080", "/abs", "x=y")
    assert request(b"GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n").path == "/"
    assert request(b"GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n").query == "q"
    assert request(b"GET http://[::1]:80/ HTTP/1.1\r\nHost: h\r\n\r\n").host == "[::1]:80"


@pytest.mark.parametrize("target", [
    b"http://user:pass@h/",     # RFC 9110 4.2.4: userinfo is an error
    b"ftp://h/",                # not a scheme we serve
    b"http:///path",            # RFC 9110 4.2.1: empty host
    b"http://:80/",
    b"http://h h/",
    b"s://]ufd/:",
    b"foo/bar",                 # relative reference
    b"example.com:443",         # authority-form for a non-CONNECT method
    b"*",                       # asterisk-form for a non-OPTIONS method
    b"?q",
])
def test_bad_targets_are_400(target: bytes) -> None:
    reject(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n", 400)  # RFC 9112 3.2


def test_asterisk_form_for_options() -> None:
    req = request(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (req.path, req.query, req.host) == ("*", "", "h")


def test_connect_is_refused() -> None:
    # RFC 9112 3.2.3 / RFC 9110 9.3.6: we are not a proxy -> 501, checked form -> 400
    reject(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501)
    reject(b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", 501)
    reject(b"CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n", 400)
    reject(b"CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", 400)
    reject(b"CONNECT http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400)


# --------------------------------------------------------------------------- field lines

@pytest.mark.parametrize(("line", "why"), [
    (b"X-Custom : value", "RFC 9112 5.1: whitespace before colon"),
    (b"X-Custom\t: value", "RFC 9112 5.1: whitespace before colon"),
    (b"X-No-Colon value", "no colon"),
    (b": value", "empty field name"),
    (b"X y: value", "RFC 9110 5.1: name must be a token"),
    (b"X(y): value", "RFC 9110 5.1: name must be a token"),
    (b"ba\x00z: bar", "NUL in name"),
    (b"Content-Length\xc3\x9f: 3", "non-ASCII in name"),
    (b"X: a\x00b", "RFC 9110 5.5: NUL in value"),
    (b"X: plain\x07bell", "RFC 9110 5.5: CTL in value"),
    (b"X: plain\x7fdel", "RFC 9110 5.5: DEL in value"),
    (b"X: \x0bvt", "RFC 9110 5.5: VT is not OWS"),
    (b"X: a\rb", "RFC 9112 2.2: bare CR"),
    (b"X: a\r", "RFC 9112 2.2: bare CR before CRLF"),
])
def test_bad_field_lines_are_400(line: bytes, why: str) -> None:
    reject(with_header(line), 400)


@pytest.mark.parametrize("fold", [b" folded", b"\tfolded"])
def test_obs_fold_is_400(fold: bytes) -> None:
    # RFC 9112 5.2: obs-fold must be rejected (or unfolded); we reject
    reject(b"GET / HTTP/1.1\r\nHost: h\r\nX: one\r\n" + fold + b"\r\n\r\n", 400)
    reject(b"GET / HTTP/1.1\r\n folded\r\nHost: h\r\n\r\n", 400)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\n\n",
    b"GET / HTTP/1.1\r\nHost: h\r\n\n",
    b"\nGET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nNewline: a\nContent-Length: 26\r\n"
    b"GET / HTTP/1.1\nHost: x\r\n\r\n",
])
def test_bare_lf_is_400_without_waiting(data: bytes) -> None:
    # RFC 9112 2.2 allows accepting a bare LF; we do not (smuggling risk), and we say
    # so as soon as the bad line ends rather than waiting for a CRLFCRLF or EOF.
    reject(data, 400)
    bare = next(i for i, c in enumerate(data) if c == 10 and data[i - 1:i] != b"\r")
    assert _status([data[:bare + 1]], LAX, eof=False) == 400


def test_field_values_tolerated() -> None:
    req = request(b"GET / HTTP/1.1\r\nX-Value:\tabc\t\r\nE:\r\nF: \t \r\nO: caf\xc3\xa9\r\n"
                  b"X.Custom|Pipe: a  \t b\r\n\r\n")
    assert req.headers == [("x-value", "abc"), ("e", ""), ("f", ""), ("o", "caf\xc3\xa9"),
                           ("x.custom|pipe", "a  \t b")]


def test_underscore_names_are_distinct_fields() -> None:
    req = request(b"GET / HTTP/1.0\r\nTransfer_Encoding: x\r\nContent_Length: -1E23\r\n"
                  b"Content-Length: 7\r\n\r\n")
    assert req.content_length == 7 and not req.chunked


def test_header_count_limit_is_431() -> None:
    limits = Limits(require_host=False, max_header_fields=5)
    five = b"".join(b"X-%d: v\r\n" % i for i in range(5))
    assert len(request(b"GET / HTTP/1.1\r\n" + five + b"\r\n", limits).headers) == 5
    reject(b"GET / HTTP/1.1\r\n" + five + b"X-5: v\r\n\r\n", 431, limits)
    # refused when the sixth field line starts, before the head is complete
    assert _status([b"GET / HTTP/1.1\r\n" + five + b"X"], limits, eof=False) == 431


def test_header_field_size_limit_is_431() -> None:
    limits = Limits(require_host=False, max_header_field_size=50)
    line = b"X: " + b"v" * 47
    assert request(b"GET / HTTP/1.1\r\n" + line + b"\r\n\r\n", limits).headers[0][1] == "v" * 47
    reject(b"GET / HTTP/1.1\r\n" + line + b"v\r\n\r\n", 431, limits)
    assert _status([b"GET / HTTP/1.1\r\n" + line + b"vv"], limits, eof=False) == 431


def test_default_limits_accept_8190_byte_field() -> None:
    line = b"X: " + b"y" * 8187
    assert len(request(with_header(line)).headers[1][1]) == 8187
    reject(with_header(line + b"y"), 431)


def test_huge_head_in_one_piece_is_bounded() -> None:
    limits = Limits(require_host=False, max_request_line=100, max_header_fields=10,
                    max_header_field_size=100)
    assert limits.max_head_size == 102 + 10 * 102 + 2
    # bigger than any head the limits allow: refused without regex-parsing it all
    reject(b"GET / HTTP/1.1\r\n" + b"X: " + b"v" * 5000 + b"\r\n\r\n", 431, limits)
    reject(b"GET / HTTP/1.1\r\n" + b"X: v\r\n" * 300 + b"\r\n", 431, limits)
    reject(b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n", 414, limits)


def test_hostile_heads_parse_in_linear_time() -> None:
    # regression: an unanchored re.split made each of these lines cost ~0.5 s
    for line in (b"a" * 8000, b"X:" + b" " * 8000 + b"\x00", b"X: " + b"a b" * 2600 + b"\x00"):
        data = b"GET / HTTP/1.1\r\n" + (line + b"\r\n") * 99 + b"\r\n"
        start = time.perf_counter()
        assert _status([data], LAX, eof=False) in (400, 431)
        assert time.perf_counter() - start < 0.5


def test_byte_by_byte_feeding_is_linear() -> None:
    def cost(n_fields: int) -> float:
        data = (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 4000)
                                                for i in range(n_fields)) + b"\r\n")
        conn = ServerConnection(LAX)
        start = time.perf_counter()
        for i in range(len(data)):
            conn.receive_data(data[i:i + 1])
            event = conn.next_event()
        assert isinstance(event, Request)
        return time.perf_counter() - start
    small, large = min(cost(4) for _ in range(3)), min(cost(16) for _ in range(3))
    assert large / small < 8, (small, large)  # quadratic would be ~16


def test_leading_empty_lines_ignored() -> None:
    # RFC 9112 2.2: a server SHOULD ignore at least one empty line before a request-line
    assert request(b"\r\n\r\n" + GET).path == "/"
    evs = events(b"\r\n", eof=True)
    assert isinstance(evs[0], ConnectionClosed)


def test_leading_empty_lines_are_bounded() -> None:
    # RFC 9112 2.2 asks for "at least one"; 8 are skipped, the ninth is refused, so that
    # a stream of CRLFs cannot hold a connection open without ever sending a request
    assert request(b"\r\n" * 8 + GET).path == "/"
    reject(b"\r\n" * 9 + GET, 400)
    reject(b"\r\n" * 100_000, 400)


def test_leading_empty_lines_counted_per_request() -> None:
    conn = ServerConnection(LAX)
    for _ in range(3):
        conn.receive_data(b"\r\n" * 8 + GET)
        assert isinstance(conn.next_event(), Request)
        assert isinstance(conn.next_event(), EndOfMessage)
        conn.simple_response(200, [], b"")
        conn.start_next_cycle()


def test_bare_lf_empty_line_before_request_line_is_400() -> None:
    reject(b"\n" + GET, 400)  # RFC 9112 2.2: we never take a bare LF as a line end


# --------------------------------------------------------------------------- Content-Length

def test_content_length_body() -> None:
    data = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n"
    body, end = body_of(data)
    assert body == b"hello" and end.trailers == []
    assert request(data).content_length == 5


@pytest.mark.parametrize("value", [b"5, 5", b"5,5", b"05"])
def test_identical_content_length_list_folded(value: bytes) -> None:
    # RFC 9110 8.6: a list of identical values may be replaced by one
    assert request(with_header(b"Content-Length: " + value) + b"hello").content_length == 5


def test_repeated_identical_content_length_folded() -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
    assert body_of(data)[0] == b"abc"


@pytest.mark.parametrize("value", [b"+5", b"-1", b"-0", b"0x5", b"5 5", b"0 1", b"5_0", b"0_1",
                                   b"", b"abc", b"5.0", b"\xb2", b"5,", b", 5", b"1" * 19,
                                   b"5, 6", b"1e3"])
def test_bad_content_length_is_400(value: bytes) -> None:
    # RFC 9110 8.6: Content-Length = 1*DIGIT; RFC 9112 6.3 item 5: invalid -> 400
    reject(with_header(b"Content-Length: " + value), 400)


def test_conflicting_content_length_lines_are_400() -> None:
    reject(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 48\r\n\r\nhello",
           400)


def test_content_length_over_limit_is_413_at_head() -> None:
    limits = Limits(require_host=False, max_body_size=10)
    assert request(with_header(b"Content-Length: 10"), limits).content_length == 10
    reject(with_header(b"Content-Length: 11"), 413, limits)  # no body byte needed
    unlimited = Limits(require_host=False, max_body_size=0)
    assert request(with_header(b"Content-Length: 999999999999"), unlimited).content_length


def test_body_never_read_past_content_length() -> None:
    conn = ServerConnection(LAX)
    conn.receive_data(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\n")
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() == Data(b"abc")
    assert conn.next_event() == EndOfMessage()
    assert conn.has_buffered_data
    assert conn.next_event() is PAUSED


def test_truncated_body_at_eof_is_400() -> None:
    # RFC 9112 8: an incomplete message must never be treated as complete
    reject(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nhello", 400, eof=True)


# --------------------------------------------------------------------------- Transfer-Encoding

def chunked(body: bytes, te: bytes = b"chunked", version: bytes = b"1.1") -> bytes:
    return (b"POST / HTTP/" + version + b"\r\nHost: h\r\nTransfer-Encoding: " + te
            + b"\r\n\r\n" + body)


def test_chunked_body_and_trailers() -> None:
    data = chunked(b"5\r\nhello\r\n6;ext=1;q=\"a b\" ; x\r\n world\r\n0\r\nX-Sum: 1\r\n"
                   b"Content-Type: text/plain\r\n\r\n")
    body, end = body_of(data)
    assert body == b"hello world"
    assert end.trailers == [("x-sum", "1"), ("content-type", "text/plain")]
    req = request(data)
    assert req.chunked and req.content_length is None


@pytest.mark.parametrize("te", [b"Chunked", b"CHUNKED", b"chunked ", b"chunked\t"])
def test_chunked_name_case_insensitive(te: bytes) -> None:
    assert request(chunked(b"0\r\n\r\n", te)).chunked


@pytest.mark.parametrize(("te", "status"), [
    (b"gzip, chunked", 501),            # RFC 9112 6.1: coding we cannot decode
    (b"identity, chunked", 501),
    (b"chunked, gzip", 400),            # RFC 9112 6.3: chunked not final
    (b"identity", 400),
    (b"xchunked", 400),
    (b"chunked;x=1", 400),
    (b"chunked, chunked", 400),         # RFC 9112 6.1: chunked at most once
    (b"", 400),
    (b"\x0bchunked", 400),              # VT is not OWS
])
def test_bad_transfer_encoding(te: bytes, status: int) -> None:
    reject(chunked(b"0\r\n\r\n", te), status)


def test_transfer_encoding_twice_as_lines() -> None:
    reject(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
           400)
    # RFC 9110 5.3 would join them; a front end that reads one line frames differently
    reject(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
           400)


@pytest.mark.parametrize("lines", [
    b"Transfer-Encoding: \r\nTransfer-Encoding: chunked\r\n",   # issue 19 item 7
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: \r\n",
    b"Transfer-Encoding: chunked\r\ntransfer-encoding: chunked\r\n",
])
def test_more_than_one_transfer_encoding_line_is_400(lines: bytes) -> None:
    reject(b"POST / HTTP/1.1\r\nHost: h\r\n" + lines + b"\r\n0\r\n\r\n", 400, Limits())


@pytest.mark.parametrize("te", [b"chunked,", b", chunked", b"chunked, ", b" , chunked",
                                b"gzip,,chunked", b",", b""])
def test_empty_transfer_encoding_element_is_400(te: bytes) -> None:
    reject(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + te
           + b"\r\n\r\n0\r\n\r\n", 400, Limits())


def test_transfer_encoding_on_http10_is_400() -> None:
    reject(chunked(b"0\r\n\r\n", version=b"1.0"), 400)  # RFC 9112 6.1


def test_transfer_encoding_with_content_length_is_400() -> None:
    # RFC 9112 6.1: the smuggling classic; rejected, never "TE wins" on a reused connection
    reject(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           400)
    reject(b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello",
           400)


@pytest.mark.parametrize("size", [b"A", b"a", b"0005", b"00000000000000000000000005"])
def test_chunk_size_hex(size: bytes) -> None:
    n = int(size, 16)
    assert body_of(chunked(size + b"\r\n" + b"x" * n + b"\r\n0\r\n\r\n"))[0] == b"x" * n


@pytest.mark.parametrize("line", [b"0x5", b"+5", b"-5", b" 5", b"5 ", b"5\t", b"6_0", b"",
                                  b"g", b";ext", b" ;foo=bar", b"5;", b"5;a=", b"5;a b",
                                  b"5;ext=val\rue", b"5;a=\"unterminated", b"5\n;"])
def test_bad_chunk_header_is_400(line: bytes) -> None:
    reject(chunked(line + b"\r\nhello\r\n0\r\n\r\n"), 400)  # RFC 9112 7.1 / 7.1.1


def test_chunk_size_bounded() -> None:
    unlimited = Limits(require_host=False, max_body_size=0)
    reject(chunked(b"1" + b"0" * 16 + b"\r\n"), 400, unlimited)  # 17 significant digits
    reject(chunked(b"FFFFFFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n"), 400, unlimited)
    assert events(chunked(b"FFFFFFFFFFFFFFFF\r\nab"), unlimited)[1:] == [Data(b"ab"), NEED_DATA]


def test_chunk_extension_length_bounded() -> None:
    reject(chunked(b"5;x=" + b"a" * 5000 + b"\r\nhello\r\n0\r\n\r\n"), 400)
    assert _status([chunked(b"5;x=" + b"a" * 5000)], LAX, eof=False) == 400


def test_chunk_line_limit_is_the_same_whole_and_bytewise() -> None:
    ext = b"5;x=" + b"a" * (4096 - 4)
    assert len(ext) == 4096
    assert body_of(chunked(ext + b"\r\nhello\r\n0\r\n\r\n"))[0] == b"hello"
    assert _status([bytes([c]) for c in chunked(ext + b"\r\nhello\r\n0\r\n\r\n")],
                   LAX, eof=False) is None
    reject(chunked(ext + b"a\r\nhello\r\n0\r\n\r\n"), 400)


def test_tiny_pieces_then_next_head_scanned_afresh() -> None:
    conn = ServerConnection(LAX)
    for piece in (b"GE", b"T / HTTP/1.1\r\n\r\n"):
        conn.receive_data(piece)
        event = conn.next_event()
    assert isinstance(event, Request)
    assert conn.next_event() == EndOfMessage()
    conn.simple_response(200, [], b"")
    conn.start_next_cycle()
    conn.receive_data(b"A\nB")  # bare LF right at the start of the next head
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert info.value.reason == "bare LF in request head"


@pytest.mark.parametrize("after", [b"XX0\r\n\r\n", b"\n0\r\n\r\n", b"\rX", b" \r\n0\r\n\r\n"])
def test_missing_crlf_after_chunk_data_is_400(after: bytes) -> None:
    reject(chunked(b"5\r\nhello" + after), 400)


def test_chunk_data_delivered_as_it_arrives() -> None:
    conn = ServerConnection(LAX)
    conn.receive_data(chunked(b"b\r\nhel"))
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() == Data(b"hel")  # not waiting for the whole 11-byte chunk
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"lo worl")
    assert conn.next_event() == Data(b"lo worl")
    conn.receive_data(b"d\r\n0\r\n\r\n")
    assert conn.next_event() == Data(b"d")
    assert conn.next_event() == EndOfMessage()


@pytest.mark.parametrize("name", [b"Content-Length", b"Transfer-Encoding", b"Host", b"trailer",
                                  b"Connection", b"Authorization", b"Expect"])
def test_forbidden_trailer_is_400(name: bytes) -> None:
    reject(chunked(b"5\r\nhello\r\n0\r\n" + name + b": 1\r\n\r\n"), 400)  # RFC 9110 6.5.1


@pytest.mark.parametrize("trailer", [b"X : 1", b"X: a\x00", b"no colon", b" folded",
                                     b"X: 1\nY: 2"])
def test_bad_trailer_lines_are_400(trailer: bytes) -> None:
    reject(chunked(b"0\r\n" + trailer + b"\r\n\r\n"), 400)


def test_chunked_total_over_limit_is_413_immediately() -> None:
    limits = Limits(require_host=False, max_body_size=10)
    assert body_of(chunked(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"), limits)[0] == b"helloworld"
    reject(chunked(b"5\r\nhello\r\n6\r\n"), 413, limits)  # the size line alone proves it


@pytest.mark.parametrize("cut", [b"5\r\nhel", b"5\r\nhello", b"5\r\nhello\r\n", b"5\r\nhello\r\n0",
                                 b"5\r\nhello\r\n0\r\n", b"0\r\nX: 1\r\n", b"5"])
def test_truncated_chunked_body_at_eof_is_400(cut: bytes) -> None:
    reject(chunked(cut), 400, eof=True)


# --------------------------------------------------------------------------- Host

def test_missing_host_on_http11() -> None:
    strict = Limits()
    reject(b"GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n", 400, strict)  # RFC 9112 3.2
    reject(b"GET http://h/ HTTP/1.1\r\n\r\n", 400, strict)  # absolute-form needs Host too
    assert request(b"GET / HTTP/1.1\r\n\r\n", LAX).host is None  # require_host=False relaxes it
    assert request(b"GET / HTTP/1.0\r\n\r\n", strict).host is None  # 1.0 needs no Host


def test_two_hosts_always_400() -> None:
    for limits in (Limits(), LAX):
        reject(b"GET / HTTP/1.1\r\nHost: a\r\nHost: evil.example\r\n\r\n", 400, limits)
        reject(b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", 400, limits)


@pytest.mark.parametrize("host", [b"a b", b"a/b", b"[::1", b"user@h", b"h:80x", b"h:80:81",
                                  b"%zz", b"h,\tx", b"h:123456",
                                  pytest.param(b"h:" + b"9" * 5000, id="5000-digit-port")])
def test_invalid_host_is_400(host: bytes) -> None:
    reject(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", 400)  # RFC 9112 3.2 / RFC 3986


@pytest.mark.parametrize("host", [b"example.com", b"0.0.0.0=5000", b"[::1]:8080", b"h:", b"h:65535",
                                  b"", b"xn--bcher-kva.example:443", b"%41b", b"[v1.x]"])
def test_valid_host_values(host: bytes) -> None:
    assert request(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", Limits()).host == host.decode()


# --------------------------------------------------------------------------- Expect, Connection

@pytest.mark.parametrize("value", [b"100-continue", b"100-Continue", b" 100-CONTINUE "])
def test_expect_100_continue(value: bytes) -> None:
    data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nExpect: " + value + b"\r\n\r\n"
    assert request(data).expect_continue


@pytest.mark.parametrize("value", [b"foo", b"100-continue, foo", b"100-continued", b"200-ok"])
def test_other_expectations_are_417(value: bytes) -> None:
    reject(with_header(b"Expect: " + value), 417)  # RFC 9110 10.1.1


def test_expect_ignored_on_http10() -> None:
    req = request(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nX: 1\r\n\r\n")
    assert not req.expect_continue
    assert not request(b"GET / HTTP/1.0\r\nExpect: something-else\r\n\r\n").expect_continue


@pytest.mark.parametrize(("version", "value", "keep"), [
    (b"1.1", None, True), (b"1.1", b"close", False), (b"1.1", b"Close", False),
    (b"1.1", b"keep-alive", True), (b"1.1", b"Upgrade, close", False),
    (b"1.0", None, False), (b"1.0", b"keep-alive", True), (b"1.0", b"Keep-Alive", True),
    (b"1.0", b"keep-alive, close", False), (b"1.0", b"te, keep-alive", True),
])
def test_keep_alive_request_flag(version: bytes, value: bytes | None, keep: bool) -> None:
    line = b"Connection: " + value + b"\r\n" if value is not None else b""
    assert request(b"GET / HTTP/" + version + b"\r\n" + line + b"\r\n").keep_alive is keep


# --------------------------------------------------------------------------- state machine

def test_pipelined_requests_stay_buffered() -> None:
    conn = ServerConnection(LAX)
    conn.receive_data(b"GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"
                      b"GET /3 HTTP/1.1\r\n\r\n")
    seen: list[Any] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            break
        if event is PAUSED:
            assert conn.request_complete
            conn.simple_response(200, [], b"")
            conn.start_next_cycle()
            continue
        seen.append(event.path if isinstance(event, Request) else event)
        if isinstance(event, Request):
            assert conn.request is event and not conn.request_complete
    assert seen == ["/1", EndOfMessage(), "/2", Data(b"ok"), EndOfMessage(), "/3", EndOfMessage()]
    assert not conn.has_buffered_data


def test_paused_until_next_cycle() -> None:
    conn = ServerConnection(LAX)
    conn.receive_data(GET + GET)
    assert isinstance(conn.next_event(), Request)
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()  # request not complete yet
    assert conn.next_event() == EndOfMessage()
    assert conn.next_event() is PAUSED and conn.next_event() is PAUSED
    assert conn.has_buffered_data
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()  # no response yet
    conn.simple_response(200, [], b"x")
    conn.start_next_cycle()
    assert conn.request is None and not conn.request_complete
    assert isinstance(conn.next_event(), Request)


def test_eof_handling() -> None:
    conn = ServerConnection(LAX)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert isinstance(conn.next_event(), ConnectionClosed)
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"late")
    reject(b"GET / HTTP/1.1\r\nHost", 400, eof=True)  # EOF inside a head
    reject(b"G", 400, eof=True)


def test_eof_after_complete_request_still_allows_response() -> None:
    conn = ServerConnection(LAX)
    conn.receive_data(GET)
    conn.receive_data(b"")  # client half-closed after sending its request
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() == EndOfMessage()
    assert conn.simple_response(200, [], b"hi").endswith(b"hi")
    conn.start_next_cycle()
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_error_is_sticky_and_drops_input() -> None:
    conn = ServerConnection(LAX)
    conn.receive_data(b"BAD LINE\r\n\r\n")
    with pytest.raises(ProtocolError) as first:
        conn.next_event()
    conn.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(ProtocolError) as again:
        conn.next_event()
    assert (first.value.status, first.value.reason) == (again.value.status, again.value.reason)
    assert not conn.keep_alive and not conn.has_buffered_data


def test_event_reprs() -> None:
    req = request(GET)
    assert repr(req) == "<Request 'GET / HTTP/1.1' host='example.com' headers=1>"
    assert req == request(GET) and req != "GET"
    assert repr(Data(b"x" * 50)).endswith("...)")
    assert repr(EndOfMessage([("a", "b")])) == "EndOfMessage(trailers=[('a', 'b')])"
    assert repr(ConnectionClosed()) == "ConnectionClosed()"
    assert len({ConnectionClosed(), ConnectionClosed()}) == 1
    assert repr(ProtocolError(400, "x")) == "ProtocolError(400, 'x')"


def test_sentinels_and_events() -> None:
    assert repr(NEED_DATA) == "NEED_DATA" and repr(PAUSED) == "PAUSED"
    assert NEED_DATA is not PAUSED
    assert Data(b"a") == Data(b"a") and Data(b"a") != Data(b"b")
    assert EndOfMessage() == EndOfMessage([]) and ConnectionClosed() == ConnectionClosed()
    err = ProtocolError(400, "bad")
    assert (err.status, err.reason, str(err)) == (400, "bad", "400 bad")


def test_limits_validation() -> None:
    with pytest.raises(ValueError):
        Limits(max_header_fields=0)
    with pytest.raises(ValueError):
        Limits(max_body_size=-1)
    with pytest.raises(AttributeError):
        Limits().max_body_size = 5  # frozen


def test_protocol_package_imports_no_io_modules() -> None:
    banned = {"socket", "select", "selectors", "os", "signal", "asyncio", "threading"}
    package = Path(__file__).resolve().parents[2] / "forkhttpd" / "protocol"
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        doc = ast.get_docstring(tree)
        assert doc and "must not import" in doc.splitlines()[0], path.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: stays inside forkhttpd.protocol
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in banned, (path.name, name)
                assert not name.startswith("forkhttpd"), (path.name, name)
        assert len(path.read_text().splitlines()) < 450, path.name
