"""What comes before a connection's first HTTP byte: a PROXY protocol header (--proxy-protocol)
and a TLS handshake (--certfile), each advanced one non-blocking step whenever the socket has
bytes; must not import the loop, interfaces, master, config or ops.

The loop keeps connections in their prelude apart from the others (so that a connection with
none costs nothing extra), under the same deadline as a request head: a client that stalls or
trickles its PROXY header or its ClientHello is closed when --header-timeout runs out, and holds
nothing meanwhile but a few bytes.
"""

from __future__ import annotations

from ..protocol.proxy import ProxyHeaderError, parse_proxy_header
from .connection import Connection

__all__ = ["Prelude", "PreludeRefused"]


class PreludeRefused(Exception):
    """The connection must be closed; `answer` (raw bytes, maybe empty) is sent first and
    `status` (0 for none) is what the access log records."""

    def __init__(self, reason: str, answer: bytes = b"", status: int = 0) -> None:
        super().__init__(reason)
        self.answer = answer
        self.status = status


class Prelude:
    """One connection's prelude. `advance()` reads what the socket holds and returns True once
    the connection is ready for HTTP; `leftover` then holds bytes read past a PROXY header on a
    plain connection (the start of the request)."""

    __slots__ = ("conn", "proxy", "trusted", "tls", "buffer", "leftover")

    def __init__(self, conn: Connection, proxy: bool, trusted: bool, tls: bool) -> None:
        self.conn = conn
        self.proxy = proxy  # a PROXY header is still expected
        self.trusted = trusted  # the peer may send one (--forwarded-allow-ips)
        self.tls = tls
        self.buffer = b""
        self.leftover = b""

    def advance(self) -> bool:
        conn = self.conn
        if self.proxy and not self.trusted:
            # HAProxy spec 2: a receiver must not accept a header from just anyone, and the
            # bytes of a peer that cannot send one are not guessed at as HTTP either
            raise PreludeRefused(f"PROXY protocol expected, but {conn.peer} is not in "
                                 "--forwarded-allow-ips")
        raw = Connection.recv_nowait(conn)  # the raw socket, beneath TLS
        if raw is None:
            return False
        if not raw:
            raise PreludeRefused("closed before its first request")
        if self.proxy:
            self.buffer += raw
            try:
                header = parse_proxy_header(self.buffer)
            except ProxyHeaderError as error:
                raise PreludeRefused(str(error)) from None
            if header is None:
                return False
            self.proxy = False
            if header.source is not None:
                conn.peer = header.source
            raw, self.buffer = self.buffer[header.length:], b""
            if not self.tls:
                self.leftover = raw
                return True
            if not raw:
                return False
        if self.tls:
            from .tls import HandshakeFailed, PlainHTTP

            try:
                return conn.handshake(raw)  # type: ignore[attr-defined]
            except PlainHTTP:
                from .tls import PLAIN_HTTP_ANSWER

                raise PreludeRefused("plain HTTP on the TLS port", PLAIN_HTTP_ANSWER,
                                     400) from None
            except HandshakeFailed as error:
                raise PreludeRefused(f"TLS handshake failed: {error}") from None
        return True
