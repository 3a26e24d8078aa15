"""ServerConnection.trailing_data: the bytes received but not parsed yet, and the EOF flag."""

from __future__ import annotations

from forkhttpd.protocol import NEED_DATA, Data, EndOfMessage, Request, ServerConnection


def test_trailing_data_is_what_follows_the_parsed_request() -> None:
    conn = ServerConnection()
    assert conn.trailing_data == (b"", False)
    conn.receive_data(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHo")
    assert conn.trailing_data[0].startswith(b"GET /a ")  # nothing parsed yet
    assert type(conn.next_event()) is Request
    assert conn.trailing_data == (b"GET /b HTTP/1.1\r\nHo", False)
    assert type(conn.next_event()) is EndOfMessage
    conn.receive_data(b"")
    assert conn.trailing_data == (b"GET /b HTTP/1.1\r\nHo", True)


def test_trailing_data_keeps_an_unread_body() -> None:
    conn = ServerConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel")
    assert type(conn.next_event()) is Request
    assert conn.trailing_data == (b"hel", False)
    event = conn.next_event()
    assert isinstance(event, Data) and event.data == b"hel"
    assert conn.trailing_data == (b"", False)
    assert conn.next_event() is NEED_DATA
