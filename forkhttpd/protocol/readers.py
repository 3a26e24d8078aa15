"""Incremental head/body readers; must not import socket/select/os/signal or forkhttpd code.

Readers consume a shared `bytearray` buffer from the front (CPython makes `del buf[:n]`
cheap) and remember where they last searched, so feeding a message one byte at
a time costs linear, not quadratic, time.
"""

from __future__ import annotations

from .errors import ProtocolError
from .events import NEED_DATA, Data, EndOfMessage, Headers, Sentinel
from .grammar import CHUNK_LINE_RE, HEX_RUN_RE, MAX_CHUNK_LINE
from .head import check_line, parse_fields
from .limits import Limits


class SectionScanner:
    """Finds the end of a field section (a request head or a trailer section).

    While the section is incomplete it checks every completed line, and the
    length of the partial last line, with the same rules (head.check_line) the
    complete-section parser applies, so oversize or malformed input is refused
    as soon as it is seen instead of being buffered up to a size limit.
    """

    __slots__ = ("_limits", "_request_line", "search_from", "_nl_from", "_line_start", "_lines")

    def __init__(self, limits: Limits, has_request_line: bool) -> None:
        self._limits = limits
        self._request_line = has_request_line
        self.search_from = 0
        self._nl_from = 0
        self._line_start = 0
        self._lines = 0

    def reset(self) -> None:
        self.search_from = self._nl_from = self._line_start = self._lines = 0

    def find_end(self, buf: bytearray) -> int:
        """Index just past the section's empty line, or -1 (after checking) if incomplete."""
        if not self._request_line and buf[:2] == b"\r\n":
            return 2  # empty trailer section (RFC 9112 7.1.2)
        end = buf.find(b"\r\n\r\n", self.search_from)
        if end >= 0:
            return end + 4
        self.search_from = max(0, len(buf) - 3)
        self.scan(buf)
        return -1

    def scan(self, buf: bytearray) -> None:
        """Check the lines completed since the last call and the partial last line."""
        limits = self._limits
        pos = self._nl_from
        while (nl := buf.find(b"\n", pos)) >= 0:
            start = self._line_start
            crlf = nl > start and buf[nl - 1] == 13
            line = buf[start:nl - 1 if crlf else nl].decode("latin-1")
            check_line(line, crlf, self._lines, limits, self._request_line)
            self._lines += 1
            self._line_start = pos = nl + 1
        self._nl_from = len(buf)
        partial = len(buf) - self._line_start
        if partial and buf[-1] == 13:
            partial -= 1  # may be the CR of the CRLF that ends this line
        if partial:
            if self._request_line and self._lines == 0:
                if partial > limits.max_request_line:
                    # RFC 9110 15.5.15: 414, decided before the CRLF ever arrives
                    raise ProtocolError(414, "request line too long")
                return
            number = self._lines if self._request_line else self._lines + 1
            if number > limits.max_header_fields:
                raise ProtocolError(431, "too many header fields")  # RFC 6585 5
            if partial > limits.max_header_field_size:
                raise ProtocolError(431, "header field too large")


class ContentLengthReader:
    """Body framed by Content-Length (RFC 9112 6.2): exactly `remaining` bytes."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    def read(self, buf: bytearray, eof: bool) -> Data | EndOfMessage | Sentinel:
        remaining = self.remaining
        if not remaining:
            return EndOfMessage()
        have = len(buf)
        if not have:
            if eof:
                # RFC 9112 8: a message closed before its Content-Length is
                # incomplete; it must never be treated as complete.
                raise ProtocolError(400, "incomplete request body")
            return NEED_DATA
        if have <= remaining:
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:remaining])  # never read past the body (pipelining)
            del buf[:remaining]
        self.remaining = remaining - len(data)
        return Data(data)


_SIZE, _DATA, _DATA_END, _TRAILERS = range(4)

# RFC 9110 6.5.1: fields a sender must not put in a trailer section because they
# frame, route or authenticate the message, or control how it is processed; a
# client that sends them in trailers is either broken or trying to smuggle
# semantics past an intermediary, so we refuse (400). Content-Type stays allowed:
# common clients send it as a trailer and it cannot change framing.
FORBIDDEN_TRAILERS = frozenset((
    "content-length", "transfer-encoding", "trailer", "host", "connection", "keep-alive",
    "proxy-connection", "te", "upgrade", "expect", "max-forwards", "authorization",
    "proxy-authorization", "cookie", "content-encoding", "content-range", "range",
    "if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range",
    "cache-control",
))


class ChunkedReader:
    """Body with the chunked transfer coding (RFC 9112 7.1), trailers included."""

    __slots__ = ("_limits", "_state", "_remaining", "_total", "_search_from", "_trailers")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._state = _SIZE
        self._remaining = 0
        self._total = 0
        self._search_from = 0
        self._trailers: SectionScanner | None = None

    def read(self, buf: bytearray, eof: bool) -> Data | EndOfMessage | Sentinel:
        while True:
            state = self._state
            if state == _DATA:
                return self._read_data(buf, eof)
            if state == _SIZE:
                if not self._read_size(buf, eof):
                    return NEED_DATA
            elif state == _DATA_END:
                # RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
                if buf[:2] != b"\r\n":
                    if len(buf) >= 2 or buf[:1] not in (b"", b"\r"):
                        raise ProtocolError(400, "missing CRLF after chunk data")
                    if eof:
                        raise ProtocolError(400, "incomplete chunked body")  # RFC 9112 8
                    return NEED_DATA
                del buf[:2]
                self._state = _SIZE
            else:
                return self._read_trailers(buf, eof)

    def _read_size(self, buf: bytearray, eof: bool) -> bool:
        end = buf.find(b"\r\n", self._search_from, MAX_CHUNK_LINE + 2)
        if end < 0:
            if len(buf) >= MAX_CHUNK_LINE + 2:  # a CRLF would have been inside the window
                # RFC 9112 7.1.1: a server should limit chunk-ext length; this bounds it
                raise ProtocolError(400, "chunk header too long")
            if buf.find(b"\n", self._search_from) >= 0:
                raise ProtocolError(400, "bare LF in chunk header")  # RFC 9112 2.2
            if eof:
                raise ProtocolError(400, "incomplete chunked body")
            self._search_from = max(0, len(buf) - 1)
            return False
        line = bytes(buf[:end])
        m = CHUNK_LINE_RE.fullmatch(line)
        if m is None:
            run = HEX_RUN_RE.match(line)
            if run is not None and len(run.group().lstrip(b"0")) > 16:
                # RFC 9112 7.1: recipients must anticipate and guard against overflow
                raise ProtocolError(400, "chunk size too large")
            # RFC 9112 7.1: chunk-size = 1*HEXDIG, no sign/0x/whitespace; extensions
            # must follow the chunk-ext grammar (no bare CR, no stray spaces)
            raise ProtocolError(400, "invalid chunk header")
        del buf[:end + 2]
        self._search_from = 0
        size = int(m.group(1), 16)
        limit = self._limits.max_body_size
        if limit and self._total + size > limit:
            # RFC 9110 15.5.14: refuse as soon as the declared size proves it
            raise ProtocolError(413, "request body too large")
        if size:
            self._total += size
            self._remaining = size
            self._state = _DATA
        else:
            self._state = _TRAILERS  # last-chunk (RFC 9112 7.1)
        return True

    def _read_data(self, buf: bytearray, eof: bool) -> Data | Sentinel:
        have = len(buf)
        if not have:
            if eof:
                raise ProtocolError(400, "incomplete chunked body")  # RFC 9112 8
            return NEED_DATA
        remaining = self._remaining
        if have <= remaining:
            data = bytes(buf)  # hand out what arrived; do not wait for the whole chunk
            buf.clear()
        else:
            data = bytes(buf[:remaining])
            del buf[:remaining]
        remaining -= len(data)
        self._remaining = remaining
        if not remaining:
            self._state = _DATA_END
        return Data(data)

    def _read_trailers(self, buf: bytearray, eof: bool) -> EndOfMessage | Sentinel:
        scanner = self._trailers
        if scanner is None:
            scanner = self._trailers = SectionScanner(self._limits, False)
        end = scanner.find_end(buf)
        if end < 0:
            if eof:
                raise ProtocolError(400, "incomplete chunked body")  # RFC 9112 8
            return NEED_DATA
        text = buf[:end - 2].decode("latin-1")
        del buf[:end]
        trailers: Headers = []
        if text:
            # RFC 9112 7.1.2: trailer-section = *( field-line CRLF ), same rules as the head
            trailers, names, _ = parse_fields(text, self._limits, False, text)
            if not FORBIDDEN_TRAILERS.isdisjoint(names):
                raise ProtocolError(400, "forbidden field in trailer section")  # RFC 9110 6.5.1
        return EndOfMessage(trailers)
