"""The server-owned response fields (worker/parts.ServerFields) as native handlers, WSGI apps
and CGI programs meet them: framing left to the protocol, Date and Server added unless the
application sent its own, and never twice (a CGI program's own Date used to be doubled)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from forkhttpd.interfaces.cgi import CGI_FIELDS, CGIDirectory
from forkhttpd.interfaces.response import NATIVE_FIELDS, HttpResponse, finalize
from forkhttpd.interfaces.wsgi import WSGI_FIELDS
from forkhttpd.worker.parts import ServerFields, trusted_fields

OWN_DATE = "Mon, 01 Jan 2024 00:00:00 GMT"


def _names(headers: list[tuple[str, str]]) -> list[str]:
    return [name.lower() for name, _ in headers]


def test_framing_fields_are_the_servers() -> None:
    fields = [("Content-Type", "text/plain"), ("Content-Length", "3"),
              ("Transfer-Encoding", "chunked"), ("Connection", "close"), ("X-A", 1)]
    for policy in (NATIVE_FIELDS, WSGI_FIELDS, CGI_FIELDS):
        own = policy.split(fields)
        assert own.headers == [("Content-Type", "text/plain"), ("X-A", "1")]
        assert own.length == "3" and own.has_type
        assert own.trusted == trusted_fields()
    assert NATIVE_FIELDS.split(fields).close and WSGI_FIELDS.split(fields).close
    assert not CGI_FIELDS.split(fields).close  # a CGI program cannot close the connection


def test_hop_by_hop_sets_differ_by_interface() -> None:
    fields = [("Keep-Alive", "timeout=5"), ("Upgrade", "h2c"), ("TE", "trailers"),
              ("Status", "200 OK")]
    assert _names(NATIVE_FIELDS.split(fields).headers) == ["keep-alive", "upgrade", "te",
                                                           "status"]
    assert WSGI_FIELDS.split(fields).headers == [("Status", "200 OK")]
    assert _names(CGI_FIELDS.split(fields).headers) == ["te"]


def test_own_date_or_server_replaces_the_servers() -> None:
    policy = ServerFields(frozenset())
    own = policy.split([("date", OWN_DATE)])
    assert own.headers == [("date", OWN_DATE)] and own.trusted == trusted_fields(True, False)
    own = policy.split([("SERVER", "mine")])
    assert own.trusted == trusted_fields(False, True) and not own.trusted.startswith(b"Server")
    own = policy.split([("Server", "mine"), ("Date", OWN_DATE)])
    assert own.trusted == b""


def test_the_first_invalid_content_length_is_kept_for_the_caller_to_refuse() -> None:
    policy = ServerFields(frozenset())
    assert policy.split([("Content-Length", "1"), ("Content-Length", "2")]).length == "2"
    assert policy.split([("Content-Length", "x"), ("Content-Length", "2")]).length == "x"
    assert policy.split([("Content-Length", "1"), ("Content-Length", "y")]).length == "y"


def test_the_name_memo_is_bounded() -> None:
    policy = ServerFields(frozenset())
    for number in range(2000):
        policy.split([(f"X-{number}", "v")])
    assert len(policy._kinds) <= 512
    policy.reset()
    assert not policy._kinds


def test_native_finalize_uses_the_same_rules() -> None:
    response = HttpResponse()
    response.headers = {"Date": OWN_DATE, "Content-Length": "9", "X-N": 5,  # type: ignore[dict-item]
                        "connection": "Close"}
    parts = finalize(response, "hi")
    assert parts.headers == [("Date", OWN_DATE), ("X-N", "5"),
                             ("Content-Type", "text/plain; charset=utf-8")]
    assert parts.close and parts.trusted == trusted_fields(True, False)


def _cgi_response(output: bytes, method: str = "GET") -> Any:
    cgi = CGIDirectory("/cgi-bin", ".")
    exchange = SimpleNamespace(request=SimpleNamespace(method=method))
    return cgi.response(exchange, (0, output), "script")  # type: ignore[arg-type]


def test_a_cgi_program_that_sends_date_and_server_gets_each_once() -> None:
    parts = _cgi_response(b"Content-Type: text/plain\r\nDate: " + OWN_DATE.encode()
                          + b"\r\nServer: cgi-app/1\r\nConnection: close\r\n\r\nbody")
    assert parts.headers == [("Content-Type", "text/plain"), ("Date", OWN_DATE),
                             ("Server", "cgi-app/1")]
    assert parts.trusted == b""  # neither Date nor Server from the server as well
    assert not parts.close
    parts = _cgi_response(b"Content-Type: text/plain\r\nServer: cgi-app/1\r\n\r\nbody")
    assert parts.trusted == trusted_fields(False, True)
    assert parts.trusted.startswith(b"Date: ")
    parts = _cgi_response(b"Status: 201 Made\r\nContent-Type: text/plain\r\n\r\nx")
    assert parts.status == 201 and parts.headers == [("Content-Type", "text/plain")]
    assert parts.trusted == trusted_fields()
