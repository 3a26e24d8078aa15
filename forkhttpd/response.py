"""The handler-facing response object (picohttp's HttpResponse) and the rules that turn a
handler's result into status, header fields and body; imports no I/O and no settings."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["FileSlice", "HTTPError", "HttpResponse", "RawFile", "ResponseParts", "finalize",
           "http_date", "imf_fixdate", "SERVER_NAME"]

SERVER_NAME = "forkhttpd"

# Fields the connection itself writes (RFC 9112 6: message framing belongs to the server).
_FRAMING_FIELDS = frozenset({"content-length", "transfer-encoding", "connection"})


class HTTPError(Exception):
    """Raised by a handler to answer `status` with `message` as a text/plain body (VSHS)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(status, message)
        self.status = int(status)
        self.message = message

    @property
    def error_code(self) -> int:
        """VSHS's name for the status."""
        return self.status

    def __str__(self) -> str:
        return self.message or str(self.status)


class HttpResponse:
    """What the handler fills in: picohttp's protocol, status, headers and data."""

    __slots__ = ("protocol", "status", "headers", "data")

    def __init__(self) -> None:
        self.protocol = "HTTP/1.1"
        self.status = 200
        self.headers: dict[str, str] = {}
        self.data: Any = ""

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status}>"


class ResponseParts:
    """A finished response ready for the connection: fields exclude framing fields;
    `trusted` holds the server's own pre-encoded field lines (Date, Server)."""

    __slots__ = ("status", "headers", "body", "close", "trusted")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: Any,
                 close: bool = False, trusted: bytes = b"") -> None:
        self.status = status
        self.headers = headers
        self.body = body  # bytes, or (streaming interfaces) an iterable / file
        self.close = close
        self.trusted = trusted


class RawFile:
    """An open file as a bare descriptor: what FileSlice needs of a file, without the buffer,
    the isatty ioctl and the seeks that Python's open() costs each static response."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def seek(self, offset: int) -> int:
        return os.lseek(self.fd, offset, os.SEEK_SET)

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = max(0, os.fstat(self.fd).st_size - os.lseek(self.fd, 0, os.SEEK_CUR))
        return os.read(self.fd, size)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class FileSlice:
    """`length` bytes of an open file from `offset` (a Range): the connection sends them with
    os.sendfile and closes the file."""

    __slots__ = ("file", "offset", "length")

    def __init__(self, file: Any, offset: int, length: int) -> None:
        self.file = file
        self.offset = offset
        self.length = length

    def fileno(self) -> int:
        return int(self.file.fileno())

    def tell(self) -> int:
        return self.offset

    def read(self, size: int = -1) -> bytes:
        """The slice's bytes from its start (for consumers that cannot use sendfile)."""
        self.file.seek(self.offset)
        return bytes(self.file.read(self.length if size < 0 else min(size, self.length)))

    def close(self) -> None:
        self.file.close()


_server_line = f"Server: {SERVER_NAME}\r\n".encode()
# one clock cache for both forms: [second, IMF-fixdate, b"Date: ...", b"Server: ...Date: ..."]
_date_cache: list[Any] = [-1, "", b"", b""]


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def imf_fixdate(seconds: float) -> str:
    """RFC 9110 5.6.7 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT" (English names
    whatever the locale; email.utils would do it too, but costs every worker its imports)."""
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def _now_cached() -> list[Any]:
    now = int(time.time())
    cache = _date_cache
    if cache[0] != now:
        text = imf_fixdate(now)
        date_line = f"Date: {text}\r\n".encode()
        cache[:] = [now, text, date_line, _server_line + date_line]
    return cache


def http_date() -> str:
    """The IMF-fixdate of now (RFC 9110 5.6.7), formatted at most once a second."""
    return str(_now_cached()[1])


def trusted_fields(server: bool = True, date: bool = True) -> bytes:
    """The server's own Date and Server field lines, pre-encoded, rebuilt once a second."""
    if not date:
        return _server_line if server else b""
    cache = _now_cached()
    return cache[3] if server else cache[2]


def _encode_value(value: Any) -> tuple[bytes | Any, str | None]:
    """A returned value -> (body, default content type), by VSHS's table."""
    if value is None:
        return b"", None
    if isinstance(value, str):
        return value.encode("utf-8"), "text/plain; charset=utf-8"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), "application/octet-stream"
    typed = getattr(value, "__forkhttpd_body__", None)
    if typed is not None:  # Blob-like objects and SSE responses describe themselves
        body, content_type = typed()
        return body, content_type
    if isinstance(value, (dict, list, tuple, int, float, bool)):
        import json  # not at import: most workers never send JSON

        return json.dumps(value).encode("utf-8"), "application/json"
    if isinstance(value, Iterable) or hasattr(value, "read"):
        return value, None  # streamed by the connection
    raise TypeError(f"cannot send a {type(value).__name__} as a response body")


def _encode_data(data: Any) -> tuple[Any, str | None]:
    """picohttp's response.data: str as UTF-8, bytes as they are, None as empty (no default
    content type for these); a typed object (Blob, SSEResponse) brings its own."""
    if isinstance(data, str):
        return data.encode("utf-8"), None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), None
    if data is None:
        return b"", None
    body, content_type = _encode_value(data)
    return body, content_type if hasattr(data, "__forkhttpd_body__") else None


def finalize(response: HttpResponse, returned: Any = None) -> ResponseParts:
    """Combine the filled-in response and the handler's return value into ResponseParts.

    A returned value (other than None) wins over response.data, and brings its content type
    unless the handler set Content-Type itself. Date and Server are added unless set.
    """
    content_type: str | None
    if returned.__class__ is str:  # the most common handler result, without a call
        body: Any = returned.encode("utf-8")
        content_type = "text/plain; charset=utf-8"
    elif returned is None:
        body, content_type = _encode_data(response.data)
    else:
        body, content_type = _encode_value(returned)
    close = response.protocol == "HTTP/1.0"
    if not response.headers:  # nothing set by the handler: no loop
        fields = [] if content_type is None else [("Content-Type", content_type)]
        return ResponseParts(int(response.status), fields, body, close, trusted_fields())
    headers: list[tuple[str, str]] = []
    has_date = has_server = has_type = False
    for name, value in response.headers.items():
        lowered = name.lower()
        if lowered in _FRAMING_FIELDS:
            if lowered == "connection" and "close" in str(value).lower():
                close = True
            continue
        if lowered == "date":
            has_date = True
        elif lowered == "server":
            has_server = True
        elif lowered == "content-type":
            has_type = True
        headers.append((name, value if isinstance(value, str) else str(value)))
    if content_type is not None and not has_type:
        headers.append(("Content-Type", content_type))
    return ResponseParts(int(response.status), headers, body, close,
                         trusted_fields(not has_server, not has_date))


def error_parts(status: int, message: str) -> ResponseParts:
    """A short text/plain error response that reveals nothing about the server's insides."""
    body = (message.rstrip("\n") + "\n").encode("utf-8", "replace")
    return ResponseParts(status, [("Content-Type", "text/plain; charset=utf-8")], body,
                         trusted=trusted_fields())
