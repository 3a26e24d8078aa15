"""What a worker sends: a response as status, fields and body (ResponseParts), the file
bodies it can sendfile, and the server-owned fields (Date, Server, framing: ServerFields);
imports no I/O module and nothing of interfaces, master or config."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["SERVER_NAME", "FileSlice", "OwnFields", "RawFile", "ResponseParts", "ServerFields",
           "error_parts", "imf_fixdate", "trusted_fields", "reset_date_cache"]

SERVER_NAME = "forkhttpd"


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


def reset_date_cache() -> None:
    """Forget the cached Date line, so that the next response reads the clock anew (tests)."""
    _date_cache[:] = [-1, "", b"", b""]


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


def trusted_fields(server: bool = True, date: bool = True) -> bytes:
    """The server's own Date and Server field lines, pre-encoded, rebuilt once a second."""
    if not date:
        return _server_line if server else b""
    cache = _now_cached()
    return cache[3] if server else cache[2]


def error_parts(status: int, message: str) -> ResponseParts:
    """A short text/plain error response that reveals nothing about the server's insides."""
    body = (message.rstrip("\n") + "\n").encode("utf-8", "replace")
    return ResponseParts(status, [("Content-Type", "text/plain; charset=utf-8")], body,
                         trusted=trusted_fields())


# What a field name means to ServerFields.split (see there).
_PLAIN, _DROP, _CONNECTION, _LENGTH, _DATE, _SERVER, _TYPE = range(7)
_KIND_MEMO_LIMIT = 512  # distinct field names remembered per interface; then start over


class OwnFields:
    """An application's fields once the server has taken its own: `headers` to send as
    they are, `close` if the application asked for the connection's close, `trusted` (the
    server's Date and Server lines the application did not set, built when asked: a caller
    may remember `trusted_wanted` and build them per response), `length` (the last
    Content-Length value, or the first one that is not a number) and `has_type`."""

    __slots__ = ("headers", "close", "trusted_wanted", "length", "has_type")

    def __init__(self, headers: list[tuple[str, str]], close: bool,
                 trusted_wanted: tuple[bool, bool], length: str | None,
                 has_type: bool) -> None:
        self.headers = headers
        self.close = close
        self.trusted_wanted = trusted_wanted  # (Server, Date): trusted_fields' arguments
        self.length = length
        self.has_type = has_type

    @property
    def trusted(self) -> bytes:
        """The server's Date and Server lines that the application left to it."""
        return trusted_fields(*self.trusted_wanted)


class ServerFields:
    """The one place that decides which response fields the server writes itself: framing
    (Content-Length, Transfer-Encoding, Connection and the other names in `drop`) is left to
    the protocol, and Date and Server are added unless the application sent its own. One
    instance per interface, since what counts as framing differs a little between them
    (WSGI drops every hop-by-hop field, CGI its Status line). Field names are classified
    once each and remembered, bounded."""

    __slots__ = ("drop", "honour_close", "_kinds")

    def __init__(self, drop: frozenset[str], honour_close: bool = True) -> None:
        self.drop = drop
        self.honour_close = honour_close  # "Connection: close" from the app closes after
        self._kinds: dict[str, int] = {}

    def _kind(self, name: str) -> int:
        lowered = name.lower()
        if lowered == "content-length":
            kind = _LENGTH
        elif lowered == "connection":
            kind = _CONNECTION if self.honour_close else _DROP
        elif lowered in self.drop:
            kind = _DROP
        else:
            kind = {"date": _DATE, "server": _SERVER, "content-type": _TYPE}.get(lowered,
                                                                                _PLAIN)
        kinds = self._kinds
        if len(kinds) >= _KIND_MEMO_LIMIT:
            kinds.clear()
        kinds[name] = kind
        return kind

    def split(self, fields: Iterable[tuple[str, Any]]) -> OwnFields:
        """Separate the application's `fields` (values made str) from the server's own."""
        kinds = self._kinds
        headers: list[tuple[str, str]] = []
        close = has_date = has_server = has_type = False
        length: str | None = None
        for name, value in fields:
            kind = kinds.get(name)
            if kind is None:
                kind = self._kind(name)
            if value.__class__ is not str:
                value = str(value)
            if kind == _PLAIN:
                headers.append((name, value))
            elif kind == _LENGTH:
                if length is None or length.strip().isdigit():
                    length = value
            elif kind == _CONNECTION:
                close = close or "close" in value.lower()
            elif kind != _DROP:
                headers.append((name, value))
                if kind == _DATE:
                    has_date = True
                elif kind == _SERVER:
                    has_server = True
                else:
                    has_type = True
        return OwnFields(headers, close, (not has_server, not has_date), length, has_type)

    def reset(self) -> None:
        """Forget the remembered field names (tests)."""
        self._kinds.clear()
