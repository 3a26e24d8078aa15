"""The parse_head memo of field sections (head.py, _FIELDS_CACHE): a repeated section must
give exactly what a fresh parse gives, whatever else differs between the two requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from forkhttpd.protocol import Limits, ProtocolError, Request
from forkhttpd.protocol import head as head_module
from forkhttpd.protocol.head import parse_head

DEFAULT = Limits()
FIELDS = "Host: example.test\r\nContent-Length: 5\r\n"


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    head_module._FIELDS_CACHE.clear()
    yield
    head_module._FIELDS_CACHE.clear()


def fresh(head: str, limits: Limits) -> Request:
    """parse_head with nothing remembered."""
    head_module._FIELDS_CACHE.clear()
    request = parse_head(head, limits)
    head_module._FIELDS_CACHE.clear()
    return request


def test_a_repeated_section_is_served_from_the_cache_and_equals_a_fresh_parse() -> None:
    first = parse_head("GET /a HTTP/1.1\r\n" + FIELDS, DEFAULT)
    assert len(head_module._FIELDS_CACHE) == 1
    second = parse_head("POST /b?x=1 HTTP/1.1\r\n" + FIELDS, DEFAULT)
    assert len(head_module._FIELDS_CACHE) == 1  # a hit: nothing new stored
    assert second == fresh("POST /b?x=1 HTTP/1.1\r\n" + FIELDS, DEFAULT)
    assert (second.method, second.path, second.query) == ("POST", "/b", "x=1")
    assert second.request_line == "POST /b?x=1 HTTP/1.1"
    assert first.headers == second.headers
    assert first.headers is not second.headers  # each request gets its own list


def test_the_version_is_part_of_the_key() -> None:
    # Without a Connection field, 1.1 persists and 1.0 does not (RFC 9112 9.3).
    fields = "Host: example.test\r\n"
    assert parse_head("GET / HTTP/1.1\r\n" + fields, DEFAULT).keep_alive is True
    assert parse_head("GET / HTTP/1.0\r\n" + fields, DEFAULT).keep_alive is False
    # Transfer-Encoding is refused in 1.0 even after 1.1 cached the same section.
    chunked = "Host: example.test\r\nTransfer-Encoding: chunked\r\n"
    assert parse_head("POST / HTTP/1.1\r\n" + chunked, DEFAULT).chunked is True
    with pytest.raises(ProtocolError) as refused:
        parse_head("POST / HTTP/1.0\r\n" + chunked, DEFAULT)
    assert refused.value.status == 400


def test_other_limits_never_see_an_entry_made_under_different_ones() -> None:
    parse_head("POST / HTTP/1.1\r\n" + FIELDS, DEFAULT)
    with pytest.raises(ProtocolError) as too_many:
        parse_head("POST / HTTP/1.1\r\n" + FIELDS, Limits(max_header_fields=1))
    assert too_many.value.status == 431
    with pytest.raises(ProtocolError) as too_big:
        parse_head("POST / HTTP/1.1\r\n" + FIELDS, Limits(max_body_size=4))
    assert too_big.value.status == 413
    # an equal but distinct Limits object is a miss too, and still parses the same
    equal = Limits()
    assert parse_head("POST / HTTP/1.1\r\n" + FIELDS, equal) == fresh(
        "POST / HTTP/1.1\r\n" + FIELDS, equal)


def test_a_missing_host_is_refused_each_time_and_never_cached() -> None:
    head = "GET / HTTP/1.1\r\nAccept: */*\r\n"
    for _ in range(2):
        with pytest.raises(ProtocolError) as refused:
            parse_head(head, DEFAULT)
        assert refused.value.status == 400
    assert not head_module._FIELDS_CACHE
    # the same section under relaxed limits is fine, and does not leak back
    assert parse_head(head, Limits(require_host=False)).host is None
    with pytest.raises(ProtocolError):
        parse_head(head, DEFAULT)


def test_an_absolute_form_target_keeps_its_own_host() -> None:
    parse_head("GET /x HTTP/1.1\r\n" + FIELDS, DEFAULT)
    request = parse_head("GET http://target.test/x HTTP/1.1\r\n" + FIELDS, DEFAULT)
    assert request.host == "target.test"  # RFC 9112 3.2.2: the target's authority wins
    assert request.path == "/x"


def test_the_cache_is_bounded() -> None:
    for number in range(head_module._FIELDS_CACHE_MAX_ENTRIES * 3):
        parse_head(f"GET / HTTP/1.1\r\nHost: example.test\r\nX-N: {number}\r\n", DEFAULT)
        assert len(head_module._FIELDS_CACHE) <= head_module._FIELDS_CACHE_MAX_ENTRIES
    head_module._FIELDS_CACHE.clear()
    long_value = "v" * head_module._FIELDS_CACHE_MAX_CHARS
    request = parse_head(f"GET / HTTP/1.1\r\nHost: example.test\r\nX-Long: {long_value}\r\n",
                         DEFAULT)
    assert request.headers[-1] == ("x-long", long_value)
    assert not head_module._FIELDS_CACHE  # too long to keep
