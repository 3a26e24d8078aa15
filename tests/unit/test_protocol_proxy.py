"""The PROXY protocol header parser (HAProxy spec, v1 and v2): complete, incomplete and refused
headers, whole and byte by byte."""

from __future__ import annotations

import socket
import struct

import pytest

from forkhttpd.protocol.proxy import (
    MAX_V1,
    MAX_V2,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    parse_proxy_header,
)


def v2(command: int, family: int, body: bytes) -> bytes:
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def tcp4(src: str, dst: str, sport: int, dport: int, tlvs: bytes = b"") -> bytes:
    return v2(1, 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
              + struct.pack("!HH", sport, dport) + tlvs)


def tcp6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return v2(1, 0x21, socket.inet_pton(socket.AF_INET6, src)
              + socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!HH", sport, dport))


def whole_and_bytewise(data: bytes) -> ProxyHeader:
    """Every proper prefix needs more bytes; the whole header parses."""
    for cut in range(len(data)):
        assert parse_proxy_header(data[:cut]) is None, cut
    header = parse_proxy_header(data + b"GET / HTTP/1.1\r\n")
    assert header is not None and header.length == len(data)
    return header


def test_v1_tcp4_and_tcp6() -> None:
    header = whole_and_bytewise(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n")
    assert header.version == 1 and header.source == ("192.0.2.1", 56324)
    assert header.destination == ("198.51.100.2", 443)
    header = whole_and_bytewise(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n")
    assert header.source == ("2001:db8::1", 1) and header.destination == ("2001:db8::2", 65535)


def test_v1_unknown_keeps_the_real_endpoints() -> None:
    header = whole_and_bytewise(b"PROXY UNKNOWN whatever follows\r\n")
    assert header.source is None and not header.local


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",  # a port missing
    b"PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n",  # two spaces
    b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",  # family mismatch
    b"PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n",
    b"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",  # leading zero
    b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
    b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
    b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",  # LF alone
    b"PROXY TCP4 192.0.2.\xff 198.51.100.2 1 2\r\n",
    b"PROXY " + b"A" * MAX_V1 + b"\r\n",  # oversized
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # no header at all
    b"\x16\x03\x01\x02\x00",  # a TLS ClientHello
    b"PROXX",
])
def test_v1_refused(line: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(line)


def test_v1_oversized_without_end_is_refused_at_the_limit() -> None:
    assert parse_proxy_header(b"PROXY " + b"1" * (MAX_V1 - 7)) is None
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(b"PROXY " + b"1" * MAX_V1)


def test_v2_tcp4_tcp6_with_tlvs() -> None:
    header = whole_and_bytewise(tcp4("192.0.2.1", "198.51.100.2", 1234, 443))
    assert header.version == 2 and header.source == ("192.0.2.1", 1234) and not header.tls
    ssl_tlv = bytes([0x20]) + struct.pack("!H", 5) + bytes([0x01]) + b"\0\0\0\0"
    noop = bytes([0x04]) + struct.pack("!H", 3) + b"abc"
    header = whole_and_bytewise(tcp4("192.0.2.1", "198.51.100.2", 1, 2, noop + ssl_tlv))
    assert header.tls
    header = whole_and_bytewise(tcp6("2001:db8::1", "2001:db8::2", 5, 6))
    assert header.source == ("2001:db8::1", 5)


def test_v2_local_and_unspec() -> None:
    header = whole_and_bytewise(v2(0, 0x00, b""))
    assert header.local and header.source is None
    header = whole_and_bytewise(v2(0, 0x11, b"\0" * 12))  # LOCAL ignores addresses
    assert header.local and header.source is None
    header = whole_and_bytewise(v2(1, 0x00, b""))
    assert header.source is None and not header.local
    header = whole_and_bytewise(v2(1, 0x31, b"\0" * 216))  # AF_UNIX: real endpoints
    assert header.source is None


@pytest.mark.parametrize("data", [
    V2_SIGNATURE + bytes([0x11, 0x11]) + b"\0\x0c" + b"\0" * 12,  # version 1 in a v2 header
    V2_SIGNATURE + bytes([0x22, 0x11]) + b"\0\x0c" + b"\0" * 12,  # command 2
    V2_SIGNATURE + bytes([0x21, 0x11]) + b"\0\x04" + b"\0" * 4,  # addresses truncated
    V2_SIGNATURE + bytes([0x21, 0x51]) + b"\0\x00",  # family 5
    V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", MAX_V2),  # oversized
    b"\r\n\r\nGET",  # not the signature
])
def test_v2_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(data)


def test_v2_oversized_is_refused_before_its_bytes_arrive() -> None:
    head = V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", 65535)
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(head)
