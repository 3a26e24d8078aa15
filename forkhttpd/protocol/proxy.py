"""The PROXY protocol header (HAProxy's spec, v1 and v2); must not import forkhttpd or I/O.

The header is parsed as a pure function over the first bytes of a connection.

`parse_proxy_header(data)` returns the header once it is complete, None while more bytes are
needed, and raises ProxyHeaderError as soon as the bytes cannot become a valid header, so that
a connection that sends something else is closed at once, and one that sends an endless header
is refused at a fixed size (the caller's deadline covers one that stops sending).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

__all__ = ["MAX_V1", "MAX_V2", "ProxyHeader", "ProxyHeaderError", "parse_proxy_header"]

# spec 2.1: "PROXY UNKNOWN ffff:...:ffff ffff:...:ffff 65535 65535\r\n" is the longest line
MAX_V1 = 107
# spec 2.2: a v2 header is 16 bytes and up to 65535 more; addresses take at most 216 (AF_UNIX)
# and the TLVs a proxy adds are small: past this, we refuse rather than wait for more
MAX_V2 = 16 + 2048
V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # spec 2.2: 12 bytes no HTTP request starts with
_PP2_TYPE_SSL = 0x20
_PP2_CLIENT_SSL = 0x01


class ProxyHeaderError(ValueError):
    """Not a valid PROXY header: the connection must be closed (spec 2: a receiver must not
    try to guess)."""


class ProxyHeader:
    """A parsed header. `source`/`destination` are (address, port) for a proxied TCP
    connection, None when the real connection's endpoints stand: LOCAL (v2: a health check
    by the proxy itself), UNKNOWN (v1) or an address family other than TCP over IPv4/IPv6.
    `tls`: the proxy says the client spoke TLS to it (v2 PP2_TYPE_SSL). `length`: the
    header's bytes; what follows is the client's."""

    __slots__ = ("version", "local", "source", "destination", "tls", "length")

    def __init__(self, version: int, length: int, source: tuple[str, int] | None = None,
                 destination: tuple[str, int] | None = None, local: bool = False,
                 tls: bool = False) -> None:
        self.version = version
        self.length = length
        self.source = source
        self.destination = destination
        self.local = local
        self.tls = tls

    def __repr__(self) -> str:
        return (f"ProxyHeader(v{self.version}, source={self.source}, "
                f"destination={self.destination}, local={self.local}, tls={self.tls}, "
                f"length={self.length})")


def parse_proxy_header(data: bytes | bytearray | memoryview) -> ProxyHeader | None:
    """The header at the start of `data`, None if it is incomplete, ProxyHeaderError if the
    bytes cannot begin a valid one."""
    data = bytes(data[:MAX_V2])
    if data[:1] == b"P":
        if not V1_PREFIX.startswith(data[:6]):
            raise ProxyHeaderError("no PROXY protocol header")
        return _parse_v1(data)
    if data[:1] == b"\r":
        if not V2_SIGNATURE.startswith(data[:12]):
            raise ProxyHeaderError("no PROXY protocol header")
        return _parse_v2(data)
    if data:
        raise ProxyHeaderError("no PROXY protocol header")
    return None


def _parse_v1(data: bytes) -> ProxyHeader | None:
    """Spec 2.1: "PROXY" SP proto SP src SP dst SP sport SP dport CRLF, one space each,
    at most 107 bytes."""
    end = data.find(b"\r\n", 0, MAX_V1)
    if end < 0:
        if len(data) >= MAX_V1 or b"\n" in data or b"\r" in data[:-1]:
            raise ProxyHeaderError("PROXY v1 line too long or not ended by CRLF")
        return None
    line = data[:end]
    try:
        words = line.decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not ASCII") from None
    length = end + 2
    if len(words) >= 2 and words[1] == "UNKNOWN":
        return ProxyHeader(1, length)  # spec: the rest of the line is to be ignored
    if len(words) != 6 or words[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("PROXY v1 line malformed")
    kind = IPv4Address if words[1] == "TCP4" else IPv6Address
    try:
        source_ip, dest_ip = str(kind(words[2])), str(kind(words[3]))
    except ValueError:
        raise ProxyHeaderError("PROXY v1 address malformed") from None
    source_port, dest_port = _v1_port(words[4]), _v1_port(words[5])
    return ProxyHeader(1, length, (source_ip, source_port), (dest_ip, dest_port))


def _v1_port(text: str) -> int:
    # spec 2.1: a port is 0..65535 in decimal, without leading zeros
    if (not text.isascii() or not text.isdigit() or len(text) > 5
            or (len(text) > 1 and text[0] == "0") or int(text) > 65535):
        raise ProxyHeaderError("PROXY v1 port malformed")
    return int(text)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    """Spec 2.2: signature (12), version and command (1), family and transport (1), length
    (2, big-endian), then the addresses and TLVs."""
    if len(data) < 16:
        return None
    version_command, family = data[12], data[13]
    if version_command >> 4 != 2:
        raise ProxyHeaderError("PROXY v2 version is not 2")
    command = version_command & 0x0F
    if command not in (0, 1):
        raise ProxyHeaderError("PROXY v2 command unknown")
    size = int.from_bytes(data[14:16], "big")
    length = 16 + size
    if length > MAX_V2:
        raise ProxyHeaderError("PROXY v2 header too long")
    if len(data) < length:
        return None
    body = data[16:length]
    if command == 0:
        # LOCAL: the proxy's own connection (a health check); the endpoints are the real ones
        return ProxyHeader(2, length, local=True)
    if family == 0x11:  # TCP over IPv4
        need, kind, width = 12, IPv4Address, 4
    elif family == 0x21:  # TCP over IPv6
        need, kind, width = 36, IPv6Address, 16  # type: ignore[assignment]
    elif family >> 4 in (0, 1, 2, 3) and family & 0x0F in (0, 1, 2):
        # UNSPEC, UDP or AF_UNIX: spec 2.2 says to keep the real endpoints for what we do
        # not handle; the connection itself is TCP to us all the same
        return ProxyHeader(2, length)
    else:
        raise ProxyHeaderError("PROXY v2 address family unknown")
    if size < need:
        raise ProxyHeaderError("PROXY v2 addresses truncated")
    source = str(kind(body[:width]))
    destination = str(kind(body[width:2 * width]))
    ports = body[2 * width:2 * width + 4]
    tls = _client_tls(body[need:])
    return ProxyHeader(2, length, (source, int.from_bytes(ports[:2], "big")),
                       (destination, int.from_bytes(ports[2:], "big")), tls=tls)


def _client_tls(tlvs: bytes) -> bool:
    """Spec 2.2.5: a PP2_TYPE_SSL TLV whose client byte has PP2_CLIENT_SSL set. TLVs are read
    only as far as they are well-formed; a broken one ends the reading, not the connection."""
    position = 0
    while position + 3 <= len(tlvs):
        kind = tlvs[position]
        size = int.from_bytes(tlvs[position + 1:position + 3], "big")
        value = tlvs[position + 3:position + 3 + size]
        if len(value) < size:
            return False
        if kind == _PP2_TYPE_SSL and value:
            return bool(value[0] & _PP2_CLIENT_SSL)
        position += 3 + size
    return False
