"""Response side of forkhttpd.protocol: framing, keep-alive decisions, header safety."""

from __future__ import annotations

import pytest

from forkhttpd.protocol import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Limits,
    LocalProtocolError,
    ProtocolError,
    Request,
    ServerConnection,
)

LAX = Limits(require_host=False)


def ready(data: bytes, read_body: bool = True) -> ServerConnection:
    """A connection whose first request head (and, by default, body) has been read."""
    conn = ServerConnection(LAX)
    conn.receive_data(data)
    assert isinstance(conn.next_event(), Request)
    if read_body:
        while not isinstance(conn.next_event(), EndOfMessage):
            pass
    return conn


GET11 = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
GET10 = b"GET / HTTP/1.0\r\n\r\n"
HEAD11 = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"


def test_simple_response_is_one_bytes_object() -> None:
    conn = ready(GET11)
    out = conn.simple_response(200, [("Content-Type", "text/plain"), ("X-A", "1")], b"hello")
    assert out == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n"
                   b"Content-Length: 5\r\n\r\nhello")
    assert type(out) is bytes
    assert conn.keep_alive
    conn.start_next_cycle()


@pytest.mark.parametrize(("status", "line"), [
    (200, b"HTTP/1.1 200 OK\r\n"), (404, b"HTTP/1.1 404 Not Found\r\n"),
    (418, b"HTTP/1.1 418 I'm a Teapot\r\n"), (599, b"HTTP/1.1 599 Unknown\r\n"),
    (299, b"HTTP/1.1 299 Unknown\r\n"),
])
def test_reason_phrases(status: int, line: bytes) -> None:
    assert ready(GET11).simple_response(status, [], b"").startswith(line)


def test_custom_reason() -> None:
    head = ready(GET11).start_response(200, [], 0, reason="Fine Thanks")
    assert head.startswith(b"HTTP/1.1 200 Fine Thanks\r\n")
    with pytest.raises(LocalProtocolError):
        ready(GET11).start_response(200, [], 0, reason="OK\r\nX: injected")
    with pytest.raises(LocalProtocolError):
        ready(GET11).start_response(200, [], 0, reason="\u2713")  # not latin-1


@pytest.mark.parametrize("status", [99, 600, 1000, -1, 100, 101, 103, True])
def test_invalid_final_status(status: int) -> None:
    with pytest.raises(LocalProtocolError):
        ready(GET11).start_response(status, [], 0)


@pytest.mark.parametrize("name", ["Content-Length", "content-length", "Transfer-Encoding",
                                  "TRANSFER-ENCODING", "Connection", "connection"])
def test_framing_headers_refused(name: str) -> None:
    with pytest.raises(LocalProtocolError):
        ready(GET11).simple_response(200, [("X-Ok", "1"), (name, "5")], b"")


@pytest.mark.parametrize("header", [
    ("X-Bad", "a\r\nSet-Cookie: evil=1"),   # response splitting
    ("X-Bad", "a\rb"), ("X-Bad", "a\nb"), ("X-Bad", "a\x00b"),
    ("X\r\nInjected", "v"), ("X\x00", "v"), ("Bad Name", "v"), ("X:y", "v"), ("", "v"),
    ("X-Uni", "\u20ac"),                     # not latin-1 encodable
    ("X-Ok", "a\0X-Fake\0b"),                # a NUL-joined fake field
])
def test_invalid_response_header_refused(header: tuple[str, str]) -> None:
    with pytest.raises(LocalProtocolError):
        ready(GET11).start_response(200, [header])


def test_non_str_header_refused() -> None:
    with pytest.raises(LocalProtocolError):
        ready(GET11).start_response(200, [("X-Num", 5)])  # type: ignore[list-item]
    with pytest.raises(LocalProtocolError):
        ready(GET11).start_response(200, [("X", "a", "b")])  # type: ignore[list-item]


def test_header_values_may_hold_tabs_and_latin1() -> None:
    head = ready(GET11).start_response(200, [("X-Tab", "a\tb"), ("X-L1", "caf\xe9")], 0)
    assert b"X-Tab: a\tb\r\nX-L1: caf\xe9\r\n" in head


def test_chunked_response_on_http11() -> None:
    conn = ready(GET11)
    head = conn.start_response(200, [("Content-Type", "text/plain")])
    assert head == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
    assert conn.send_data(b"hello") == b"5\r\nhello\r\n"
    assert conn.send_data(b"") == b""  # an empty chunk would end the body early
    assert conn.send_data(b"x" * 300) == b"12c\r\n" + b"x" * 300 + b"\r\n"
    assert conn.end_response() == b"0\r\n\r\n"
    assert conn.keep_alive
    conn.start_next_cycle()


def test_http10_close_delimited() -> None:
    conn = ready(GET10)
    head = conn.start_response(200, [])
    assert head == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"  # RFC 9112 6.3 item 8
    assert not conn.keep_alive
    assert conn.send_data(b"raw") == b"raw"
    assert conn.end_response() == b""
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


def test_http10_keep_alive_with_length() -> None:
    conn = ready(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    out = conn.simple_response(200, [], b"ok")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
    assert conn.keep_alive
    # and without asking for keep-alive, a 1.0 client gets a close
    out = ready(GET10).simple_response(200, [], b"ok")
    assert b"Connection: close\r\n" in out


def test_head_response_has_no_body() -> None:
    conn = ready(HEAD11)
    out = conn.simple_response(200, [("Content-Type", "text/html")], b"<html>")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n"
    assert conn.keep_alive
    conn = ready(HEAD11)
    head = conn.start_response(200, [], 1234)
    assert b"Content-Length: 1234\r\n" in head
    assert conn.send_data(b"ignored") == b""
    assert conn.end_response() == b""
    conn = ready(HEAD11)
    head = conn.start_response(200, [])  # unknown length: no framing field, no close needed
    assert head == b"HTTP/1.1 200 OK\r\n\r\n" and conn.keep_alive
    conn = ready(b"HEAD / HTTP/1.0\r\n\r\n")
    assert conn.start_response(200, []) == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("status", [204, 304])
def test_204_304_have_no_body_and_no_length(status: int) -> None:
    conn = ready(GET11)
    out = conn.simple_response(status, [("ETag", '"x"')], b"")
    assert b"Content-Length" not in out and b"Transfer-Encoding" not in out
    assert out.endswith(b'ETag: "x"\r\n\r\n') and conn.keep_alive
    conn = ready(GET11)
    conn.start_response(status, [])
    assert conn.send_data(b"dropped") == b""
    assert conn.end_response() == b""


def test_content_length_honoured() -> None:
    conn = ready(GET11)
    conn.start_response(200, [], 5)
    assert conn.send_data(b"abc") == b"abc"
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"def")  # 6 > 5
    conn = ready(GET11)
    conn.start_response(200, [], 5)
    conn.send_data(b"abc")
    with pytest.raises(LocalProtocolError):
        conn.end_response()  # 2 bytes short
    assert not conn.keep_alive
    conn = ready(GET11)
    conn.start_response(200, [], 3)
    # any bytes-like body goes through, though the annotation says bytes
    assert conn.send_data(bytearray(b"abc")) == b"abc"  # type: ignore[arg-type]
    assert conn.end_response() == b""


def test_response_call_order_enforced() -> None:
    conn = ServerConnection(LAX)
    with pytest.raises(LocalProtocolError):
        conn.start_response(200, [])  # no request yet
    conn = ready(GET11)
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")
    with pytest.raises(LocalProtocolError):
        conn.end_response()
    conn.start_response(200, [], 0)
    with pytest.raises(LocalProtocolError):
        conn.start_response(200, [], 0)
    with pytest.raises(LocalProtocolError):
        conn.simple_response(200, [], b"")
    with pytest.raises(LocalProtocolError):
        conn.informational_response()
    assert conn.response_started
    conn.end_response()
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")
    for bad in (-1, 1.5, "5"):
        with pytest.raises(LocalProtocolError):
            ready(GET11).start_response(200, [], bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- keep-alive

def test_close_requested_by_handler_or_client() -> None:
    conn = ready(GET11)
    out = conn.simple_response(200, [], b"", close=True)
    assert b"Connection: close\r\n" in out and not conn.keep_alive
    conn = ready(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    out = conn.simple_response(200, [], b"")
    assert b"Connection: close\r\n" in out and not conn.keep_alive
    assert conn.next_event() is PAUSED
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


def test_unread_content_length_body_can_be_drained() -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\n\r\n"
    conn = ready(data, read_body=False)
    conn.simple_response(413, [], b"")  # answered before reading the body
    assert conn.keep_alive  # RFC 9112 6.2: the remaining length is known
    assert conn.next_event() == Data(b"hello")
    assert conn.next_event() == EndOfMessage()
    conn.start_next_cycle()
    assert conn.next_event().path == "/next"  # type: ignore[union-attr]


def test_unread_chunked_body_forces_close() -> None:
    conn = ready(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                 read_body=False)
    out = conn.simple_response(200, [], b"")
    assert b"Connection: close\r\n" in out and not conn.keep_alive


def test_unread_body_after_expect_without_100_forces_close() -> None:
    data = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    conn = ready(data, read_body=False)
    out = conn.simple_response(417, [], b"")
    # RFC 9110 10.1.1: the client may never send the body it was asked to wait with
    assert b"Connection: close\r\n" in out and not conn.keep_alive
    conn = ready(data, read_body=False)
    assert conn.informational_response() == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.simple_response(200, [], b"")
    assert conn.keep_alive  # the client was told to send it: it can be drained


def test_body_read_fully_keeps_alive() -> None:
    conn = ready(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    conn.simple_response(200, [], b"ok")
    assert conn.keep_alive
    conn.start_next_cycle()


# --------------------------------------------------------------------------- 1xx and errors

def test_informational_responses() -> None:
    conn = ready(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                 read_body=False)
    assert conn.informational_response() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.informational_response(103, [("Link", "</s.css>; rel=preload")]) == (
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
    for bad in (101, 200, 99):
        with pytest.raises(LocalProtocolError):
            conn.informational_response(bad)
    assert not conn.response_started
    # RFC 9110 15.2: never a 1xx to an HTTP/1.0 client
    assert ready(GET10, read_body=False).informational_response() == b""


def test_error_response_format() -> None:
    conn = ServerConnection(LAX)
    conn.receive_data(b"GARBAGE\r\n\r\n")
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    out = conn.error_response(info.value)
    body = (info.value.reason + "\n").encode()
    assert out == (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    assert conn.request is None and not conn.keep_alive
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()
    with pytest.raises(LocalProtocolError):
        conn.error_response(info.value)  # one response per connection end


def test_error_response_statuses_and_extra_headers() -> None:
    conn = ServerConnection(LAX)
    conn.receive_data(b"GET / HTTP/2.0\r\n\r\n")
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    out = conn.error_response(info.value, [("Date", "Sat, 21 Nov 2026 01:38:00 GMT")])
    assert out.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n")
    assert b"\r\nDate: Sat, 21 Nov 2026 01:38:00 GMT\r\n" in out
    assert out.endswith(b"\r\n\r\nHTTP version not supported\n")


def test_error_response_for_head_request_has_no_body() -> None:
    conn = ServerConnection(LAX)
    conn.receive_data(b"HEAD / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() == Data(b"ab")
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    out = conn.error_response(info.value)
    assert out.endswith(b"Connection: close\r\n\r\n") and b"Content-Length: " in out


def test_error_response_by_server_kills_connection() -> None:
    conn = ServerConnection(LAX)
    conn.receive_data(b"GET / HTTP/1.1\r\nHo")
    assert conn.next_event() is NEED_DATA
    out = conn.error_response(ProtocolError(408, "request timeout"))
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_error_after_response_started_is_local_error() -> None:
    conn = ready(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", read_body=False)
    conn.start_response(200, [])
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert not conn.keep_alive
    with pytest.raises(LocalProtocolError):
        conn.error_response(info.value)  # too late: the server must just close
    assert conn.send_data(b"x") == b"1\r\nx\r\n"  # the handler may still finish writing
    conn.end_response()
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


def test_start_next_cycle_then_eof_is_closed() -> None:
    conn = ready(GET11)
    conn.simple_response(200, [], b"")
    conn.receive_data(b"")
    conn.start_next_cycle()
    assert isinstance(conn.next_event(), ConnectionClosed)


@pytest.mark.parametrize("request_bytes", [
    GET11, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", GET10, HEAD11,
])
def test_refused_fields_leave_the_cycle_able_to_answer_500(request_bytes: bytes) -> None:
    """Header validation happens before any state changes, on the fast path as on the slow
    one: the server can still send its 500 after a handler's bad field."""
    conn = ready(request_bytes)
    with pytest.raises(LocalProtocolError):
        conn.simple_response(200, [("X-Bad", "a\r\nInjected: 1")], b"body")
    assert not conn.response_started
    out = conn.simple_response(500, [("Content-Type", "text/plain")], b"error\n", close=True)
    assert out.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") or out.startswith(
        b"HTTP/1.0 500")
    assert b"Injected" not in out and b"Connection: close\r\n" in out


@pytest.mark.parametrize("request_bytes", [
    GET11, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", GET10, HEAD11,
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
])
@pytest.mark.parametrize("status", [200, 204, 304, 404, 599])
@pytest.mark.parametrize("close", [False, True])
def test_simple_response_fast_path_matches_start_response(request_bytes: bytes, status: int,
                                                           close: bool) -> None:
    """simple_response's shortcut decides exactly what start_response + send_data would."""
    fields = [("Content-Type", "text/plain")]
    fast = ready(request_bytes)
    out = fast.simple_response(status, fields, b"hello", close=close, trusted=b"Server: t\r\n")
    slow = ready(request_bytes)
    head = slow.start_response(status, fields, 5, close=close, trusted=b"Server: t\r\n")
    expected = head + slow.send_data(b"hello") + slow.end_response()
    assert out == expected
    assert fast.keep_alive == slow.keep_alive
