"""Range (RFC 9110 14) and conditional fields of the static handler with hostile numbers:
a bounded parse answering 206, 416 or the whole file, never an exception, and every file
the handler opens closed on every path (issue 19 item 3)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from forkhttpd.interfaces.response import HttpResponse
from forkhttpd.interfaces.static import StaticFiles, byte_range
from forkhttpd.worker.parts import FileSlice

HUGE = "9" * 5000
SIZE = 100


def short(value: object) -> str:
    """A readable test id for values holding 5,000-digit numbers."""
    text = str(value)
    return text if len(text) <= 40 else f"{text[:16]}...({len(text)} chars)...{text[-8:]}"


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-9", (0, 9)),
    ("bytes=90-", (90, 99)),
    ("bytes=-10", (90, 99)),
    ("bytes=-0", False),                          # RFC 9110 14.1.3: nothing to send
    ("bytes=100-", False),                        # first-pos past the end: 416
    ("bytes=5-2", None),                          # invalid spec: the header is ignored
    ("bytes=0-,5-9", None),                       # several ranges: the whole file
    ("bytes = 3 - 4", (3, 4)),
    ("BYTES=3-4", (3, 4)),
    ("bytes=\u0663-4", None),                     # non-ASCII digits are not DIGIT
    (f"bytes={HUGE}-", False),                    # issue 19 item 3: was ValueError (500)
    (f"bytes=-{HUGE}", (0, 99)),                  # a suffix longer than the file: all of it
    (f"bytes=0-{HUGE}", (0, 99)),                 # a last-pos past the end: to the end
    (f"bytes=5-{HUGE}", (5, 99)),
    (f"bytes={HUGE}-{HUGE}", False),
    (f"bytes={HUGE}-9", None),                    # last < first: invalid, ignored
    (f"bytes={HUGE}8-{HUGE}9", False),
    (f"bytes={HUGE}9-{HUGE}8", None),
    ("bytes=" + "0" * 5000 + "7-" + "0" * 5000 + "8", (7, 8)),  # leading zeros only
    ("bytes=-" + "0" * 5000, False),
    ("bytes=" + "9" * 18 + "-", False),           # the largest int() ever taken
    ("bytes=" + "9" * 19 + "-", False),           # the smallest compared as text
], ids=short)
def test_byte_range_bounded(header: str, expected: object) -> None:
    assert byte_range(header, SIZE) == expected


def test_byte_range_of_an_empty_file() -> None:
    assert byte_range(f"bytes=-{HUGE}", 0) is False
    assert byte_range("bytes=0-", 0) is False


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def files(tmp_path: Path) -> StaticFiles:
    (tmp_path / "f.txt").write_bytes(bytes(range(SIZE)))
    return StaticFiles(str(tmp_path))


def serve(files: StaticFiles, headers: Any, method: str = "GET") -> HttpResponse:
    request = SimpleNamespace(method=method, raw_path="/f.txt", raw_query="", headers=headers)
    response = HttpResponse()
    files(request, response)
    return response


def finish(response: HttpResponse) -> bytes:
    """What the connection does with a file body: read it, then close the file."""
    data = response.data
    if isinstance(data, FileSlice):
        data.file.seek(data.offset)
        body = data.file.read(data.length)
        data.file.close()
        return bytes(body)
    return bytes(data)


@pytest.mark.parametrize(("headers", "status", "body"), [
    ({"range": f"bytes={HUGE}-"}, 416, b"Range Not Satisfiable\n"),
    ({"range": f"bytes=-{HUGE}"}, 206, bytes(range(SIZE))),
    ({"range": f"bytes=98-{HUGE}"}, 206, bytes([98, 99])),
    ({"range": f"bytes={HUGE}-1"}, 200, bytes(range(SIZE))),
    ({"if-modified-since": HUGE}, 200, bytes(range(SIZE))),
    ({"if-modified-since": f"Sun, 06 Nov {HUGE} 08:49:37 GMT"}, 200, bytes(range(SIZE))),
    ({"if-range": f"Sun, 06 Nov {HUGE} 08:49:37 GMT", "range": "bytes=0-1"}, 200,
     bytes(range(SIZE))),
], ids=["range-first", "range-suffix", "range-last", "range-last-lt-first", "ims-digits",
        "ims-year", "if-range-year"])
def test_hostile_numbers_never_raise_and_close_the_file(
        files: StaticFiles, headers: dict[str, str], status: int, body: bytes) -> None:
    before = open_fds()
    for _ in range(200):
        response = serve(files, headers)
        assert response.status == status
        assert finish(response) == body
    assert open_fds() == before
    if status == 416:
        assert response.headers["Content-Range"] == f"bytes */{SIZE}"


class ExplodingHeaders(dict[str, str]):
    """Request fields whose every look-up after the first few fails, as a broken or hostile
    value would make a parser fail: the handler must still close what it opened."""

    def get(self, key: str, default: Any = None) -> Any:
        if key in ("range", "if-range"):
            raise ValueError("a field no parser can read")
        return super().get(key, default)


def test_file_closed_when_answering_raises(files: StaticFiles) -> None:
    before = open_fds()
    for _ in range(50):
        with pytest.raises(ValueError):
            serve(files, ExplodingHeaders())
    assert open_fds() == before


def test_head_and_not_modified_close_the_file(files: StaticFiles) -> None:
    before = open_fds()
    first = serve(files, {})
    etag = first.headers["ETag"]
    finish(first)
    for _ in range(50):
        response = serve(files, {"if-none-match": etag})
        assert response.status == 304 and response.data == b""
    assert open_fds() == before
