"""Who the client is when a trusted proxy says so; must not import forkhttpd or I/O modules.

X-Forwarded-For/-Proto/-Host/-Port and RFC 7239 `Forwarded` are resolved against
--forwarded-allow-ips as a pure function of the peer's address and the request's fields.

The rules, so that a client can never speak for itself:

- Only a trusted peer's fields count; from anyone else they are plain fields.
- The client address is the right-most untrusted hop: each proxy appends the address it got the
  request from, so hops are read right to left, past our own (trusted) proxies, and the first
  one we do not trust is the client. Everything left of it was written by someone we do not
  trust and is never read. If every hop is trusted, the left-most one is the client.
- X-Forwarded-* come first: nginx, HAProxy and the cloud balancers set them, and a proxy that
  sets them but passes the client's own `Forwarded` through must not let that one win. A field
  the X-Forwarded-* headers do not carry is taken from `Forwarded`.
- A malformed value is ignored (as if absent), never an error: the request is served as sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TypeVar

_T = TypeVar("_T")

__all__ = ["Forwarded", "Trust", "resolve_forwarded"]

_MAX_HOPS = 32  # hops read from the right at most (a field is already bounded by the limits)
_SCHEMES = {"http": "http", "https": "https"}
# RFC 9110 7.2: Host = uri-host [ ":" port ]; uri-host is a reg-name, IPv4 or [IPv6]
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::([0-9]{1,5}))?")
# RFC 7239 4: forwarded-pair = token "=" value; value = token / quoted-string
_PAIR = re.compile(r"[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(?:([!#$%&'*+.^_`|~0-9A-Za-z-]+)"
                   r"|\"((?:[^\"\\]|\\.)*)\")[ \t]*")
_NAMES = frozenset(("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                    "x-forwarded-port", "forwarded"))


class Trust:
    """The peers that may speak for their clients: addresses and networks (CIDR), `*` for
    everyone, `unix` for connections over a Unix socket."""

    __slots__ = ("everyone", "unix", "exact", "networks")

    def __init__(self, items: Iterable[str]) -> None:
        self.everyone = False
        self.unix = False
        self.exact: set[str] = set()  # the common case, one set lookup
        self.networks: list[IPv4Network | IPv6Network] = []
        for item in items:
            item = item.strip()
            if item == "*":
                self.everyone = self.unix = True
            elif item == "unix":
                self.unix = True
            elif "/" in item:
                self.networks.append(ip_network(item, strict=False))  # ValueError if bad
            else:
                self.exact.add(str(ip_address(item)))

    @property
    def nobody(self) -> bool:
        return not (self.everyone or self.unix or self.exact or self.networks)

    def address(self, text: str) -> bool:
        """Is this (normalised) IP address trusted?"""
        if self.everyone or text in self.exact:
            return True
        if not self.networks:
            return False
        try:
            address = ip_address(text)
        except ValueError:
            return False
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        return any(address in network for network in self.networks)

    def peer(self, peer: object) -> bool:
        """Is this connection's peer trusted? A TCP peer is (host, port, ...); anything else
        is a Unix socket (its peer address is a path or empty)."""
        if isinstance(peer, tuple):
            host = peer[0] if peer else ""
            if host.startswith("::ffff:") and "." in host:
                host = host[7:]
            return self.address(host)
        return self.unix


class Forwarded:
    """What trusted proxies said about the request; None fields were not said (or not
    well-formed). `client` is an IP address, or None when the client hop is `unknown` or an
    obfuscated identifier (RFC 7239 6.2, 6.3): then the peer address stays."""

    __slots__ = ("client", "client_port", "scheme", "host", "port")

    def __init__(self, client: str | None = None, client_port: int | None = None,
                 scheme: str | None = None, host: str | None = None,
                 port: int | None = None) -> None:
        self.client = client
        self.client_port = client_port
        self.scheme = scheme
        self.host = host  # as in a Host field: name or address, with an optional ":port"
        self.port = port  # the port the client connected to

    def server_port(self, scheme: str, local_port: str) -> str:
        """The port the client connected to, as SERVER_PORT wants it: said outright, or the
        forwarded Host's, or the scheme's default when a proxy changed scheme or host."""
        if self.port is not None:
            return str(self.port)
        if self.host is not None:
            match = _HOST.fullmatch(self.host)
            if match is not None and match.group(1):
                return match.group(1)
        if self.scheme is not None or self.host is not None:
            return "443" if scheme == "https" else "80"
        return local_port

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Forwarded) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__
                          if getattr(self, name) is not None)
        return f"Forwarded({inner})"


def _node(text: str) -> tuple[str, int | None] | None:
    """An X-Forwarded-For hop or a Forwarded `for` node -> (address, port or None); None if
    it is no IP address. Forms: 192.0.2.1, 192.0.2.1:80, 2001:db8::1, [2001:db8::1]:80
    (RFC 7239 6: IPv6 in brackets, a port after a colon)."""
    text = text.strip()
    port: int | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        rest = text[end + 1:]
        text = text[1:end]
        if rest and (rest[0] != ":" or not (port := _port(rest[1:]))):
            return None
    elif text.count(":") == 1:
        text, _, digits = text.partition(":")
        if not (port := _port(digits)):
            return None
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped), port
    return str(address), port


def _port(text: str) -> int | None:
    if not (0 < len(text) <= 5 and text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 0 < number <= 65535 else None


def _items(values: list[str]) -> list[str]:
    """The comma-separated items of a field's lines, in order (RFC 9110 5.3: several lines
    of a list field are one list)."""
    return [item.strip() for value in values for item in value.split(",")]


def _last_valid(values: list[str], check: Callable[[str], _T | None]) -> _T | None:
    """The right-most item that passes `check` (it returns None for a bad one): the proxy
    closest to us wrote it."""
    for item in reversed(_items(values)[-_MAX_HOPS:]):
        result = check(item)
        if result is not None:
            return result
    return None


def _scheme(text: str) -> str | None:
    return _SCHEMES.get(text.lower())


def _host(text: str) -> str | None:
    if not text or len(text) > 255 or _HOST.fullmatch(text) is None:
        return None
    match = _HOST.fullmatch(text)
    if match is not None and match.group(1) and not _port(match.group(1)):
        return None
    return text


def _client_hop(values: list[str], trust: Trust) -> tuple[str, int | None] | None:
    """X-Forwarded-For: the right-most hop we do not trust; None when malformed."""
    hops = _items(values)
    chosen: tuple[str, int | None] | None = None
    for hop in reversed(hops[-_MAX_HOPS:]):
        node = _node(hop)
        if node is None:
            return None  # a hop that is no address: nothing right of it can be believed
        chosen = node
        if not trust.address(node[0]):
            break
    return chosen


def _forwarded_elements(values: list[str]) -> list[dict[str, str]] | None:
    """RFC 7239 4: Forwarded = 1#forwarded-element; forwarded-element = [ forwarded-pair ]
    *( ";" [ forwarded-pair ] ). Parameter names are case-insensitive (RFC 7239 4). None if
    any part is malformed: a half-understood Forwarded field is not believed."""
    elements: list[dict[str, str]] = []
    for value in values:
        position, end = 0, len(value)
        element: dict[str, str] = {}
        while position < end:
            if value[position] in " \t":
                position += 1
                continue
            if value[position] == ",":
                if element:
                    elements.append(element)
                element = {}
                position += 1
                continue
            if value[position] == ";":
                position += 1
                continue
            match = _PAIR.match(value, position)
            if match is None:
                return None
            name = match.group(1).lower()
            if name in element:
                return None  # RFC 7239 4: each parameter at most once per element
            token, quoted = match.group(2), match.group(3)
            element[name] = token if token is not None else re.sub(r"\\(.)", r"\1", quoted)
            position = match.end()
            if position < end and value[position] not in ",;":
                return None
        if element:
            elements.append(element)
    return elements


def _from_forwarded(values: list[str], trust: Trust) -> Forwarded | None:
    """The element of the right-most untrusted `for` (or the left-most element when every
    one is trusted): its for, proto and host describe the request as the client sent it."""
    elements = _forwarded_elements(values)
    if not elements:
        return None
    chosen: dict[str, str] | None = None
    node: tuple[str, int | None] | None = None
    for element in reversed(elements[-_MAX_HOPS:]):
        chosen = element
        node = _node(element.get("for", ""))
        # an `unknown` or obfuscated node (RFC 7239 6.2, 6.3), or none: not an address we
        # trust, so this is where the client is; its address stays unknown
        if node is None or not trust.address(node[0]):
            break
    assert chosen is not None
    proto = chosen.get("proto")
    host = chosen.get("host")
    return Forwarded(node[0] if node else None, node[1] if node else None,
                     _scheme(proto) if proto else None, _host(host) if host else None)


def resolve_forwarded(peer: object, headers: Iterable[tuple[str, str]],
                      trust: Trust) -> Forwarded | None:
    """What the proxies in front of us said about this request, or None when nothing
    applies: the peer is not trusted, or it sent no well-formed forwarding field. `headers`
    are (lower-case name, value) pairs in the order received."""
    if not trust.peer(peer):
        return None
    found: dict[str, list[str]] | None = None
    for name, value in headers:
        if name in _NAMES:
            if found is None:
                found = {}
            found.setdefault(name, []).append(value)
    if found is None:
        return None
    standard = _from_forwarded(found["forwarded"], trust) if "forwarded" in found else None
    result = Forwarded()
    if "x-forwarded-for" in found:
        node = _client_hop(found["x-forwarded-for"], trust)
        if node is not None:
            result.client, result.client_port = node
    elif standard is not None:
        result.client, result.client_port = standard.client, standard.client_port
    if "x-forwarded-proto" in found:
        result.scheme = _last_valid(found["x-forwarded-proto"], _scheme)
    if result.scheme is None and standard is not None:
        result.scheme = standard.scheme
    if "x-forwarded-host" in found:
        result.host = _last_valid(found["x-forwarded-host"], _host)
    if result.host is None and standard is not None:
        result.host = standard.host
    if "x-forwarded-port" in found:
        result.port = _last_valid(found["x-forwarded-port"], _port)
    if (result.client is None and result.scheme is None and result.host is None
            and result.port is None):
        return None
    return result
