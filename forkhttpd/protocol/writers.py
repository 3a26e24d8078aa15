"""Serialise response heads and frame bodies; must not import I/O modules or forkhttpd code.

Status lines are precomputed, and handler-supplied header fields are validated with
one regex over the whole list (fields joined by NUL/CRLF, bytes no valid field
can contain) instead of a Python loop per character.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import NoReturn

from .errors import LocalProtocolError
from .events import Headers
from .grammar import REASON_PHRASE_RE, RESPONSE_FIELDS_RE, TOKEN_RE

#: fields the writer owns: a handler setting them could desynchronise the framing
FRAMING_FIELDS = frozenset(("content-length", "transfer-encoding", "connection"))


def _status_line(code: int, phrase: str) -> bytes:
    # RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
    # We always answer as HTTP/1.1, also to 1.0 clients (RFC 9110 2.5 / 6.2).
    return f"HTTP/1.1 {code} {phrase}\r\n".encode("latin-1")


#: precomputed status lines for every code http.HTTPStatus knows
STATUS_LINES: dict[int, bytes] = {int(s): _status_line(int(s), s.phrase) for s in HTTPStatus}


def status_line(status: int, reason: str | None) -> bytes:
    """Status line for any status 100-599, with `reason` or the standard phrase."""
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        # RFC 9110 15: status codes are three digits in the range 100-599
        raise LocalProtocolError(f"invalid status code {status!r}")
    if reason is None:
        return STATUS_LINES.get(status) or _status_line(int(status), "Unknown")
    if not isinstance(reason, str) or not REASON_PHRASE_RE.fullmatch(reason):
        # RFC 9112 4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ): no CR/LF/NUL,
        # and only latin-1 code points, so the encode below cannot fail
        raise LocalProtocolError(f"invalid reason phrase {reason!r}")
    return _status_line(int(status), reason)


# Handlers send the same few field lists again and again (a Content-Type, a Cache-Control):
# remembering the validated encoding of each saves the regex pass on the next response. Only
# lists that passed validation get in; small ones only; bounded by clearing when full.
_ENCODED: dict[tuple[tuple[str, str], ...], bytes] = {}
_ENCODED_MAX_ENTRIES = 256
_ENCODED_MAX_BYTES = 512


def reset_caches() -> None:
    """Forget the remembered field encodings (tests)."""
    _ENCODED.clear()


def encode_fields(headers: Headers) -> bytes:
    """Validate handler-supplied header fields and serialise them (CRLF after each)."""
    if not headers:
        return b""
    try:
        key: tuple[tuple[str, str], ...] | None = tuple(headers)
        cached = _ENCODED.get(key)  # type: ignore[arg-type]
    except TypeError:  # an unhashable item (a list pair): not cacheable, validated below
        key = cached = None
    if cached is not None:
        return cached
    encoded = _encode_fields(headers)
    if key is not None and len(encoded) <= _ENCODED_MAX_BYTES:
        if len(_ENCODED) >= _ENCODED_MAX_ENTRIES:
            _ENCODED.clear()
        _ENCODED[key] = encoded
    return encoded


def _encode_fields(headers: Headers) -> bytes:
    try:
        text = "\r\n".join(map("\0".join, headers)) + "\r\n"
    except TypeError:
        _diagnose(headers)
    # One pass checks every name is a token, no value holds CR/LF/NUL (RFC 9110 5.5,
    # response splitting) and no framing field is present; the LF count catches a
    # value smuggling a whole extra "name\0value" line.
    if RESPONSE_FIELDS_RE.fullmatch(text) is None or text.count("\n") != len(headers):
        _diagnose(headers)
    try:
        return text.replace("\0", ": ").encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError("header field is not latin-1 encodable") from None


def _diagnose(headers: Headers) -> NoReturn:
    for item in headers:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise LocalProtocolError(f"header must be a (name, value) pair: {item!r}")
        name, value = item
        if not isinstance(name, str) or not isinstance(value, str):
            raise LocalProtocolError(f"header name and value must be str: {item!r}")
        if not TOKEN_RE.fullmatch(name):
            raise LocalProtocolError(f"invalid header name {name!r}")  # RFC 9110 5.1
        if name.lower() in FRAMING_FIELDS:
            raise LocalProtocolError(f"{name} is managed by the protocol layer")
        if "\r" in value or "\n" in value or "\0" in value:
            raise LocalProtocolError(f"CR, LF or NUL in value of header {name!r}")
    raise LocalProtocolError("invalid response header fields")


def chunk(data: bytes) -> bytes:
    """One chunk (RFC 9112 7.1); never call with empty data (that is the last-chunk)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"  # last-chunk + empty trailer section (RFC 9112 7.1)
CONNECTION_CLOSE = b"Connection: close\r\n"
CONNECTION_KEEP_ALIVE = b"Connection: keep-alive\r\n"
TRANSFER_CHUNKED = b"Transfer-Encoding: chunked\r\n"
ERROR_FIELDS = (b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
                + CONNECTION_CLOSE)
