"""The parsing decisions of docs/security.md, over a real socket (issue 19 item 7): duplicate
or empty-element Transfer-Encoding refused, HTTP/1.2 served as 1.1, raw bytes >= 0x80 in the
target handed to the application unchanged, a few empty lines before a request skipped and
a stream of them refused."""

from __future__ import annotations

import pytest

from .attacks import connect, read_until_close, status_of
from .conftest import Hostile


def exchange(port: int, data: bytes) -> bytes:
    with connect(port) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # refused part way: the answer is still there to read
        return read_until_close(sock, 5)


@pytest.mark.parametrize("fields", [
    b"Transfer-Encoding: \r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked,\r\n",
    b"Transfer-Encoding: , chunked\r\n",
], ids=["empty-line-then-chunked", "chunked-twice", "trailing-comma", "leading-comma"])
def test_ambiguous_transfer_encoding_is_400(shared: Hostile, fields: bytes) -> None:
    raw = exchange(shared.port, b"POST /body HTTP/1.1\r\nHost: h\r\n" + fields
                   + b"\r\n5\r\nhello\r\n0\r\n\r\nGET /p HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status_of(raw) == 400 and raw.count(b"HTTP/1.1") == 1  # closed: nothing smuggled
    assert b"Transfer-Encoding" in raw.partition(b"\r\n\r\n")[2]  # the reason says which


def test_http_1_2_is_served_as_1_1(shared: Hostile) -> None:
    raw = exchange(shared.port, b"GET /p HTTP/1.2\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"ok\n")


def test_raw_bytes_over_0x7f_reach_the_application_unchanged(shared: Hostile) -> None:
    raw = exchange(shared.port, b"GET /echo/caf\xc3\xa9/\xff HTTP/1.1\r\nHost: h\r\n"
                                b"Connection: close\r\n\r\n")
    assert status_of(raw) == 200 and raw.endswith(b"\r\n\r\n/echo/caf\xc3\xa9/\xff\n")


def test_control_bytes_in_the_target_are_400(shared: Hostile) -> None:
    assert status_of(exchange(shared.port, b"GET /p\x7f HTTP/1.1\r\nHost: h\r\n\r\n")) == 400


def test_empty_lines_before_the_request_line_are_bounded(shared: Hostile) -> None:
    request = b"GET /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    assert status_of(exchange(shared.port, b"\r\n" * 8 + request)) == 200
    assert status_of(exchange(shared.port, b"\r\n" * 9 + request)) == 400
    raw = exchange(shared.port, b"\r\n" * 10_000)
    assert status_of(raw) == 400 and b"empty lines" in raw
    shared.recovered()
