"""Forwarding fields (X-Forwarded-*, RFC 7239 Forwarded) resolved against --forwarded-allow-ips:
trusted peers only, the right-most untrusted hop, malformed values ignored."""

from __future__ import annotations

import pytest

from forkhttpd.protocol.forwarded import Forwarded, Trust, resolve_forwarded

LOCAL = Trust(["127.0.0.1", "::1"])
PROXY = ("127.0.0.1", 50000)
STRANGER = ("192.0.2.9", 50000)


def resolve(headers: list[tuple[str, str]], peer: object = PROXY,
            trust: Trust = LOCAL) -> Forwarded | None:
    return resolve_forwarded(peer, headers, trust)


def test_trust_items() -> None:
    trust = Trust(["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"])
    assert trust.address("10.1.2.3") and trust.address("192.0.2.1")
    assert trust.address("2001:db8::5") and not trust.address("192.0.2.2")
    assert trust.peer(("::ffff:10.0.0.1", 1, 0, 0))  # a v4-mapped peer on a v6 listener
    assert not trust.peer("/run/app.sock") and Trust(["unix"]).peer("")
    everyone = Trust(["*"])
    assert everyone.address("203.0.113.7") and everyone.peer("")
    assert Trust([]).nobody
    for bad in ("10.0.0.0/33", "not-an-ip", "300.1.1.1"):
        with pytest.raises(ValueError):
            Trust([bad])


def test_nothing_from_an_untrusted_peer() -> None:
    headers = [("x-forwarded-for", "203.0.113.5"), ("x-forwarded-proto", "https"),
               ("forwarded", "for=203.0.113.6;proto=https")]
    assert resolve(headers, peer=STRANGER) is None
    assert resolve(headers, peer="") is None  # a Unix peer, not trusted by default


def test_nothing_without_forwarding_fields() -> None:
    assert resolve([("host", "example.com"), ("accept", "*/*")]) is None


def test_x_forwarded_for_right_most_untrusted_hop() -> None:
    # the client claims 6.6.6.6; the trusted proxy appended the address it saw
    got = resolve([("x-forwarded-for", "6.6.6.6, 203.0.113.5")])
    assert got is not None and got.client == "203.0.113.5" and got.client_port is None
    # two trusted proxies in a row are skipped
    chain = Trust(["127.0.0.1", "10.0.0.0/8"])
    got = resolve([("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.0.0.2")], trust=chain)
    assert got is not None and got.client == "203.0.113.5"
    # several field lines are one list
    got = resolve([("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.4")])
    assert got is not None and got.client == "198.51.100.4"
    # everyone trusted: the left-most hop
    got = resolve([("x-forwarded-for", "198.51.100.1, 198.51.100.2")], trust=Trust(["*"]))
    assert got is not None and got.client == "198.51.100.1"


@pytest.mark.parametrize("hop, client, port", [
    ("2001:db8::1", "2001:db8::1", None),
    ("[2001:db8::1]", "2001:db8::1", None),
    ("[2001:db8::1]:4711", "2001:db8::1", 4711),
    ("192.0.2.60:8080", "192.0.2.60", 8080),
    ("::ffff:192.0.2.60", "192.0.2.60", None),
])
def test_x_forwarded_for_forms(hop: str, client: str, port: int | None) -> None:
    got = resolve([("x-forwarded-for", hop)])
    assert got is not None and (got.client, got.client_port) == (client, port)


@pytest.mark.parametrize("value", ["", "unknown", "1.2.3.4, garbage", "1.2.3.4,,",
                                   "[2001:db8::1", "1.2.3.4:0", "1.2.3.4:99999",
                                   "1.2.3.4:abc", "1.2.3.4 5.6.7.8", "\u0661.2.3.4"])
def test_malformed_x_forwarded_for_is_ignored(value: str) -> None:
    assert resolve([("x-forwarded-for", value)]) is None


def test_proto_host_port() -> None:
    got = resolve([("x-forwarded-proto", "HTTPS"), ("x-forwarded-host", "example.com:8443"),
                   ("x-forwarded-port", "8443")])
    assert got == Forwarded(scheme="https", host="example.com:8443", port=8443)
    assert got is not None and got.server_port("https", "8000") == "8443"
    # the right-most valid value: the proxy closest to us wrote it
    got = resolve([("x-forwarded-proto", "https, http")])
    assert got is not None and got.scheme == "http"
    got = resolve([("x-forwarded-proto", "https, gopher")])
    assert got is not None and got.scheme == "https"


def test_server_port_defaults() -> None:
    assert Forwarded(scheme="https").server_port("https", "8000") == "443"
    assert Forwarded(host="example.com").server_port("http", "8000") == "80"
    assert Forwarded(host="example.com:81").server_port("http", "8000") == "81"
    assert Forwarded(client="192.0.2.1").server_port("http", "8000") == "8000"


@pytest.mark.parametrize("name, value", [
    ("x-forwarded-proto", "ftp"), ("x-forwarded-proto", ""),
    ("x-forwarded-host", "bad host"), ("x-forwarded-host", "a/b"),
    ("x-forwarded-host", "example.com:99999"), ("x-forwarded-host", "x" * 300),
    ("x-forwarded-port", "0"), ("x-forwarded-port", "65536"), ("x-forwarded-port", "80a"),
    ("forwarded", "for"), ("forwarded", "for=\"unterminated"), ("forwarded", "for=1.2.3.4 x"),
    ("forwarded", "for=1.2.3.4;for=5.6.7.8"), ("forwarded", "=x"),
])
def test_malformed_values_change_nothing(name: str, value: str) -> None:
    assert resolve([(name, value)]) is None


def test_rfc7239_forwarded() -> None:
    # RFC 7239 section 4's examples
    got = resolve([("forwarded", 'for="_gazonk"')])
    assert got is None  # an obfuscated client says nothing we can use
    got = resolve([("forwarded", 'For="[2001:db8:cafe::17]:4711"')])
    assert got == Forwarded(client="2001:db8:cafe::17", client_port=4711)
    got = resolve([("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")])
    assert got == Forwarded(client="192.0.2.60", scheme="http")
    got = resolve([("forwarded", "for=192.0.2.43, for=198.51.100.17")])
    assert got is not None and got.client == "198.51.100.17"
    # the element of the right-most untrusted hop carries proto and host
    got = resolve([("forwarded", 'for=6.6.6.6;proto=http, for=198.51.100.17;proto=https;'
                                 'host="example.com"')])
    assert got == Forwarded(client="198.51.100.17", scheme="https", host="example.com")
    # an unknown client: its proto and host still count, the address stays the peer's
    got = resolve([("forwarded", "for=unknown;proto=https")])
    assert got == Forwarded(scheme="https")


def test_x_forwarded_headers_win_over_forwarded() -> None:
    got = resolve([("forwarded", "for=6.6.6.6;proto=http;host=evil.example"),
                   ("x-forwarded-for", "198.51.100.1"), ("x-forwarded-proto", "https")])
    assert got == Forwarded(client="198.51.100.1", scheme="https", host="evil.example")


def test_bounded_work_on_a_long_chain() -> None:
    chain = ", ".join(["127.0.0.1"] * 2000)
    got = resolve([("x-forwarded-for", chain)])
    assert got is not None and got.client == "127.0.0.1"
