"""Every number a client writes into a request head or a chunked body has a bounded parse:
a 5,000-digit value (past Python's 4,300-digit int() limit) is answered with a 4xx, never
a 500 and never an exception other than ProtocolError, whether fed whole or byte by byte."""

from __future__ import annotations

import pytest

from forkhttpd.protocol import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Limits,
    ProtocolError,
    ServerConnection,
)

HUGE = b"9" * 5000
HUGE_HEX = b"f" * 5000


def verdict(data: bytes, bytewise: bool) -> int | None:
    """The status the connection refuses `data` with (None: accepted)."""
    conn = ServerConnection(Limits())
    pieces = [data[i:i + 1] for i in range(len(data))] if bytewise else [data]
    try:
        for piece in pieces:
            conn.receive_data(piece)
            while (event := conn.next_event()) is not NEED_DATA:
                if event is PAUSED or isinstance(event, ConnectionClosed):
                    return None
    except ProtocolError as exc:
        response = conn.error_response(exc)
        assert response.startswith(b"HTTP/1.1 %d " % exc.status)
        assert HUGE[:50] not in response  # the number is never echoed back
        return exc.status
    return None


CASES = {
    "content-length": (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + HUGE + b"\r\n\r\n",
                       400),
    "content-length-zeros": (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + b"0" * 5000
                             + b"1\r\n\r\n", 400),
    "content-length-list": (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, " + HUGE
                            + b"\r\n\r\n", 400),
    "content-length-over-limit": (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
                                  + b"9" * 18 + b"\r\n\r\n", 413),
    "chunk-size": (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + HUGE_HEX + b"\r\n", 400),
    "chunk-size-17-digits": (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + b"1" + b"0" * 16 + b"\r\n", 400),
    "chunk-size-over-limit": (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                              + b"f" * 16 + b"\r\n", 413),
    "version-minor": (b"GET / HTTP/1." + HUGE + b"\r\nHost: h\r\n\r\n", 400),
    "version-major": (b"GET / HTTP/" + HUGE + b".1\r\nHost: h\r\n\r\n", 400),
    "expect": (b"POST / HTTP/1.1\r\nHost: h\r\nExpect: " + HUGE + b"-continue\r\n"
               b"Content-Length: 1\r\n\r\n", 417),
    "host-port": (b"GET / HTTP/1.1\r\nHost: h:" + HUGE + b"\r\n\r\n", 400),
    "absolute-form-port": (b"GET http://h:" + HUGE + b"/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "connect-port": (b"CONNECT h:" + HUGE + b" HTTP/1.1\r\nHost: h\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_huge_number_is_a_4xx(name: str, bytewise: bool) -> None:
    data, status = CASES[name]
    assert verdict(data, bytewise) == status


def test_sixteen_hex_digit_chunk_size_still_parses() -> None:
    # the bound is on significant digits: leading zeros are allowed (RFC 9112 7.1)
    data = (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"0" * 100 + b"5\r\nhello\r\n0\r\n\r\n")
    assert verdict(data, False) is None


def test_five_digit_ports_accepted() -> None:
    assert verdict(b"GET http://h:65535/ HTTP/1.1\r\nHost: h:65535\r\n\r\n", False) is None
