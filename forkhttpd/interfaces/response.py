"""The handler-facing response object (picohttp's HttpResponse) and the rules that turn a
handler's result into status, header fields and body; imports no I/O and no settings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..worker.parts import ResponseParts, ServerFields, trusted_fields

__all__ = ["NATIVE_FIELDS", "HTTPError", "HttpResponse", "finalize"]

# Fields the connection itself writes (RFC 9112 6: message framing belongs to the server);
# Content-Length and Connection are always the server's (ServerFields).
NATIVE_FIELDS = ServerFields(frozenset({"transfer-encoding"}))


class HTTPError(Exception):
    """Raised by a handler to answer `status` with `message` as a text/plain body (VSHS)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(status, message)
        self.status = int(status)
        self.message = message

    @property
    def error_code(self) -> int:
        """VSHS's name for the status."""
        return self.status

    def __str__(self) -> str:
        return self.message or str(self.status)


class HttpResponse:
    """What the handler fills in: picohttp's protocol, status, headers and data."""

    __slots__ = ("protocol", "status", "headers", "data")

    def __init__(self) -> None:
        self.protocol = "HTTP/1.1"
        self.status = 200
        self.headers: dict[str, str] = {}
        self.data: Any = ""

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status}>"


def _encode_value(value: Any) -> tuple[bytes | Any, str | None]:
    """A returned value -> (body, default content type), by VSHS's table."""
    if value is None:
        return b"", None
    if isinstance(value, str):
        return value.encode("utf-8"), "text/plain; charset=utf-8"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), "application/octet-stream"
    typed = getattr(value, "__forkhttpd_body__", None)
    if typed is not None:  # Blob-like objects and SSE responses describe themselves
        body, content_type = typed()
        return body, content_type
    if isinstance(value, (dict, list, tuple, int, float, bool)):
        import json  # not at import: most workers never send JSON

        return json.dumps(value).encode("utf-8"), "application/json"
    if isinstance(value, Iterable) or hasattr(value, "read"):
        return value, None  # streamed by the connection
    raise TypeError(f"cannot send a {type(value).__name__} as a response body")


def _encode_data(data: Any) -> tuple[Any, str | None]:
    """picohttp's response.data: str as UTF-8, bytes as they are, None as empty (no default
    content type for these); a typed object (Blob, SSEResponse) brings its own."""
    if isinstance(data, str):
        return data.encode("utf-8"), None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), None
    if data is None:
        return b"", None
    body, content_type = _encode_value(data)
    return body, content_type if hasattr(data, "__forkhttpd_body__") else None


def finalize(response: HttpResponse, returned: Any = None) -> ResponseParts:
    """Combine the filled-in response and the handler's return value into ResponseParts.

    A returned value (other than None) wins over response.data, and brings its content type
    unless the handler set Content-Type itself. Date and Server are added unless set.
    """
    content_type: str | None
    if returned.__class__ is str:  # the most common handler result, without a call
        body: Any = returned.encode("utf-8")
        content_type = "text/plain; charset=utf-8"
    elif returned is None:
        body, content_type = _encode_data(response.data)
    else:
        body, content_type = _encode_value(returned)
    close = response.protocol == "HTTP/1.0"
    if not response.headers:  # nothing set by the handler: no loop
        fields = [] if content_type is None else [("Content-Type", content_type)]
        return ResponseParts(int(response.status), fields, body, close, trusted_fields())
    own = NATIVE_FIELDS.split(response.headers.items())
    headers = own.headers
    if content_type is not None and not own.has_type:
        headers.append(("Content-Type", content_type))
    return ResponseParts(int(response.status), headers, body, close or own.close, own.trusted)
