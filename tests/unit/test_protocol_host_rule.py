"""The missing-Host rule (RFC 9112 3.2) and its one narrow relaxation."""

from __future__ import annotations

import pytest

from forkhttpd.protocol import NEED_DATA, PAUSED, Limits, ProtocolError, Request, ServerConnection


def serve_all(conn: ServerConnection, data: bytes) -> list[str]:
    conn.receive_data(data)
    seen = []
    while True:
        event = conn.next_event()
        if isinstance(event, Request):
            seen.append(event.request_line)
        elif event is PAUSED:
            conn.simple_response(200, [], b"ok")
            conn.start_next_cycle()
        elif event is NEED_DATA:
            return seen


def test_http11_without_host_is_400_by_default() -> None:
    conn = ServerConnection(Limits())
    with pytest.raises(ProtocolError) as caught:
        serve_all(conn, b"GET / HTTP/1.1\r\n\r\n")
    assert caught.value.status == 400


def test_a_connection_that_starts_as_http11_stays_strict() -> None:
    conn = ServerConnection(Limits())
    with pytest.raises(ProtocolError):
        serve_all(conn, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n")


def test_an_http10_client_connection_gets_the_old_client_relaxation() -> None:
    conn = ServerConnection(Limits())
    seen = serve_all(conn, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                           b"GET /b HTTP/1.1\r\n\r\n")
    assert seen == ["GET /a HTTP/1.0", "GET /b HTTP/1.1"]


def test_two_host_fields_are_400_even_when_relaxed() -> None:
    conn = ServerConnection(Limits(require_host=False))
    with pytest.raises(ProtocolError):
        serve_all(conn, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
