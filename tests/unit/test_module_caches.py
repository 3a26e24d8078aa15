"""The module-level caches of the hot path (protocol/head.py, protocol/writers.py,
worker/parts.py, interfaces/wsgi.py): each is owned by one module, bounded however many
distinct values a worker sees, and emptied by that module's reset function."""

from __future__ import annotations

import pytest

from forkhttpd.interfaces import wsgi
from forkhttpd.protocol import head, writers
from forkhttpd.protocol.errors import ProtocolError
from forkhttpd.protocol.limits import Limits
from forkhttpd.worker import parts


def test_field_sections_and_hosts_are_bounded_and_reset() -> None:
    limits = Limits()
    head.reset_caches()
    for n in range(1000):  # a client that varies every request's fields
        head.parse_head(f"GET / HTTP/1.1\r\nHost: h{n}.example\r\nX-N: {n}\r\n", limits)
    assert 0 < len(head._FIELDS_CACHE) <= head._FIELDS_CACHE_MAX_ENTRIES
    assert 0 < len(head._VALID_HOSTS) <= 64
    request = head.parse_head("GET /a HTTP/1.1\r\nHost: h1.example\r\nX-N: 1\r\n", limits)
    assert (request.path, request.host) == ("/a", "h1.example")  # a remembered section
    head.reset_caches()
    assert not head._FIELDS_CACHE and not head._VALID_HOSTS


def test_a_remembered_section_counts_only_under_its_own_limits() -> None:
    head.reset_caches()
    section = "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + "x" * 100 + "\r\n"
    assert head.parse_head(section, Limits()).host == "h"
    with pytest.raises(ProtocolError) as refused:
        head.parse_head(section, Limits(max_header_field_size=50))
    assert refused.value.status == 431


def test_encoded_field_lists_are_bounded_and_reset() -> None:
    writers.reset_caches()
    for n in range(2000):
        assert writers.encode_fields([("X-N", str(n))]) == f"X-N: {n}\r\n".encode()
    assert 0 < len(writers._ENCODED) <= writers._ENCODED_MAX_ENTRIES
    big = [("X-Big", "v" * 1000)]
    writers.encode_fields(big)
    assert tuple(big) not in writers._ENCODED  # too large to be worth remembering
    writers.reset_caches()
    assert not writers._ENCODED


def test_the_date_cache_holds_one_second_and_resets() -> None:
    first = parts.trusted_fields()
    assert first.startswith(b"Server: ") and b"\r\nDate: " in first
    assert parts._date_cache[0] != -1
    parts.reset_date_cache()
    assert parts._date_cache[0] == -1
    assert parts.trusted_fields()[:8] == b"Server: "


def test_wsgi_memos_are_bounded_and_reset() -> None:
    wsgi.reset_memos()
    for n in range(2000):
        assert wsgi._status(f"{200 + n % 300} Reason {n}") == 200 + n % 300
        wsgi._environ_key(f"x-field-{n}")
    assert 0 < len(wsgi._STATUS_MEMO) <= wsgi._MEMO_LIMIT
    assert 0 < len(wsgi._ENVIRON_KEYS) <= wsgi._MEMO_LIMIT
    wsgi.reset_memos()
    assert not wsgi._STATUS_MEMO and not wsgi._ENVIRON_KEYS and not wsgi._FIELDS_MEMO
    assert wsgi._addresses == [None, None]
