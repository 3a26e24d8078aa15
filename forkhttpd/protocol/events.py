"""Events returned by ServerConnection.next_event(); must not import I/O modules or forkhttpd.

The objects are plain __slots__ classes: they are created once per request (or
per body piece) on the hot path, so they carry no per-instance dict and no
derived data that nobody reads.
"""

from __future__ import annotations

from typing import Final

Headers = list[tuple[str, str]]


class Request:
    """A parsed request head. Strings are latin-1 decodings of the raw bytes."""

    __slots__ = ("method", "target", "path", "query", "version", "headers", "host",
                 "content_length", "chunked", "keep_alive", "expect_continue", "request_line")

    method: str
    target: str
    path: str
    query: str
    version: str
    headers: Headers
    host: str | None
    content_length: int | None
    chunked: bool
    keep_alive: bool
    expect_continue: bool
    request_line: str

    def __init__(self, method: str, target: str, path: str, query: str, version: str,
                 headers: Headers, host: str | None, content_length: int | None,
                 chunked: bool, keep_alive: bool, expect_continue: bool,
                 request_line: str) -> None:
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.host = host
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.request_line = request_line

    def get_header(self, name: str) -> str | None:
        """First value of header `name` (case-insensitive) or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable value object

    def __repr__(self) -> str:
        return f"<Request {self.request_line!r} host={self.host!r} headers={len(self.headers)}>"


class Data:
    """A piece of request body, exactly as it arrived (chunk framing removed)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Data) and other.data == self.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Data({self.data[:40]!r}{'...' if len(self.data) > 40 else ''})"


class EndOfMessage:
    """The request body is complete; `trailers` holds chunked trailer fields ([] when none)."""

    __slots__ = ("trailers",)

    def __init__(self, trailers: Headers | None = None) -> None:
        self.trailers = [] if trailers is None else trailers

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EndOfMessage) and other.trailers == self.trailers

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EndOfMessage(trailers={self.trailers!r})"


class ConnectionClosed:
    """The peer closed the connection cleanly between requests."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConnectionClosed)

    def __hash__(self) -> int:
        return hash(ConnectionClosed)

    def __repr__(self) -> str:
        return "ConnectionClosed()"


class Sentinel:
    """A named marker object (NEED_DATA, PAUSED); compare with `is`."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        # pickling/copying returns the module-level singleton, keeping `is` checks valid
        return self._name


#: next_event(): more bytes are needed (call receive_data, then next_event again)
NEED_DATA: Final = Sentinel("NEED_DATA")
#: next_event(): the current request is complete; call start_next_cycle() after responding
PAUSED: Final = Sentinel("PAUSED")

Event = Request | Data | EndOfMessage | ConnectionClosed | Sentinel
