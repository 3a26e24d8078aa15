"""The handler-facing objects: picohttp's attributes and VSHS's returned values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from forkhttpd.interfaces.request import Headers, HttpRequest, split_path
from forkhttpd.interfaces.response import HTTPError, HttpResponse, finalize
from forkhttpd.worker.parts import ResponseParts, error_parts


def make(path: str = "/", query: str = "", fields: list[tuple[str, str]] | None = None,
         body: bytes | None = None) -> HttpRequest:
    reader = (lambda: body) if body is not None else None
    return HttpRequest("GET", path, query, "HTTP/1.1", fields or [], reader)


@pytest.mark.parametrize(("raw", "segments"), [
    ("/", [""]),
    ("/hello", ["hello"]),
    ("/a/b/", ["a", "b", ""]),
    ("/a%20b/c", ["a b", "c"]),
    ("/a%2Fb", ["a/b"]),  # an encoded slash stays inside its segment
    ("/caf%C3%A9", ["café"]),
    ("/%FF", ["\udcff"]),  # undecodable bytes survive (surrogateescape)
])
def test_path_is_a_list_of_decoded_segments(raw: str, segments: list[str]) -> None:
    assert split_path(raw) == segments
    assert make(raw).path == segments


def test_query_is_a_dict_and_headers_are_case_insensitive() -> None:
    request = make("/x", "a=1&b=two%20words&empty=", [("content-type", "text/plain"),
                                                       ("x-multi", "1"), ("x-multi", "2"),
                                                       ("cookie", "a=1"), ("cookie", "b=2")])
    assert request.query == {"a": "1", "b": "two words", "empty": ""}
    assert request.headers["Content-Type"] == "text/plain"
    assert request.headers.get("CONTENT-TYPE") == "text/plain"
    assert "content-TYPE" in request.headers
    assert request.headers["x-multi"] == "1, 2"
    assert request.headers.get_all("X-Multi") == ["1", "2"]
    assert request.headers["cookie"] == "a=1; b=2"
    assert request.headers.get("missing") is None


def test_body_bytes_and_data_text_lose_nothing() -> None:
    raw = "héllo".encode() + b"\xff\xfe"
    request = make(body=raw)
    assert request.body == raw
    assert request.data.encode("utf-8", "surrogateescape") == raw
    assert make().data == "" and make().body == b""


def test_body_is_read_once_and_only_when_asked() -> None:
    calls = []

    def reader() -> bytes:
        calls.append(1)
        return b"abc"

    request = HttpRequest("POST", "/", "", "HTTP/1.1", [], reader)
    assert calls == []
    assert request.data == "abc" and request.body == b"abc"
    assert calls == [1]


def fields(parts: ResponseParts) -> dict[str, str]:
    return {name.lower(): value for name, value in parts.headers}


def test_finalize_data_str_bytes_and_defaults() -> None:
    response = HttpResponse()
    assert response.status == 200 and response.headers == {} and response.data == ""
    response.data = "héllo"
    parts = finalize(response)
    assert parts.body == "héllo".encode()
    assert parts.trusted.startswith(b"Server: forkhttpd\r\nDate: ")
    assert parts.trusted.endswith(b" GMT\r\n")
    response.data = b"\x00raw"
    assert finalize(response).body == b"\x00raw"


@pytest.mark.parametrize(("value", "body", "content_type"), [
    ("text", b"text", "text/plain; charset=utf-8"),
    (b"\x01", b"\x01", "application/octet-stream"),
    ({"a": 1}, b'{"a": 1}', "application/json"),
    ([1, 2], b"[1, 2]", "application/json"),
])
def test_returned_values_are_typed_as_vshs_does(value: Any, body: bytes, content_type: str) -> None:
    parts = finalize(HttpResponse(), value)
    assert parts.body == body
    assert fields(parts)["content-type"] == content_type


def test_handler_headers_win_and_framing_fields_are_ours() -> None:
    response = HttpResponse()
    response.headers.update({"Content-Type": "text/html", "Server": "mine", "Date": "x",
                             "Content-Length": "999", "Connection": "close"})
    parts = finalize(response, "<b>hi</b>")
    got = fields(parts)
    assert got["content-type"] == "text/html" and got["server"] == "mine"
    assert got["date"] == "x" and parts.trusted == b""
    assert "content-length" not in got and "connection" not in got
    assert parts.close is True


def test_http_error_and_error_parts() -> None:
    error = HTTPError(403, "Forbidden Access")
    assert error.status == 403 and error.message == "Forbidden Access"
    parts = error_parts(500, "Internal Server Error")
    assert parts.status == 500 and parts.body == b"Internal Server Error\n"
    assert json.dumps(fields(parts))  # plain strings only


def test_headers_mapping_protocol() -> None:
    headers = Headers([("a", "1"), ("b", "2")])
    assert len(headers) == 2 and sorted(headers) == ["a", "b"] and dict(headers) == {
        "a": "1", "b": "2"}
