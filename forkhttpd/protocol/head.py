"""Parse a complete request head into a Request; must not import I/O modules or forkhttpd code.

("forkhttpd code" = anything outside forkhttpd.protocol.) Two paths share one
set of rules:

* the fast path validates a whole head with two regexes (request line, then all
  field lines in one re.split) and builds the Request in one go;
* on any mismatch, `diagnose_lines` walks the lines in wire order with the same
  per-line checks the incremental scanner (readers.py) uses, so a head gets the
  same verdict and status whether it arrived in one piece or byte by byte.

The outcome of a field section that passed is remembered (_FIELDS_CACHE): the next request
with the same field lines skips the field parse, most of a small head's cost.
"""

from __future__ import annotations

from typing import NoReturn

from .errors import ProtocolError
from .events import Headers, Request
from .grammar import (
    ABSOLUTE_FORM_RE,
    AUTHORITY_FORM_RE,
    CONTENT_LENGTH_RE,
    FIELD_LINE_RE,
    FIELD_LINES_RE,
    HOST_RE,
    HTTP_VERSION_RE,
    MAX_CONTENT_LENGTH_DIGITS,
    REQUEST_LINE_RE,
    TARGET_RE,
    TOKEN_RE,
)
from .limits import Limits

# Header fields whose semantics the protocol layer owns (framing, routing, persistence).
_SPECIAL = frozenset(("host", "content-length", "transfer-encoding", "connection", "expect"))
_OWS = " \t"
# A worker sees the same few Host values over and over; remembering the ones that
# passed HOST_RE saves a regex per request. Bounded, and holds only valid values.
_VALID_HOSTS: set[str] = set()
# Many clients send the same field lines with every request and change only the request
# line (API clients, health checks, benchmarks). parse_head() is a pure function of (head,
# limits), so the outcome of a field section that passed is kept, keyed by the section with
# the request's minor version digit in front (the version decides keep-alive,
# Transfer-Encoding and Host rules), for origin-form targets only (an absolute-form target
# supplies the host itself). An entry remembers the Limits it was computed under and counts
# only for that same object. Bounded: sections up to _FIELDS_CACHE_MAX_CHARS, cleared when
# the table is full.
_FIELDS_CACHE: dict[str, tuple[Limits, tuple[tuple[str, str], ...], str | None, int | None,
                               bool, bool, bool]] = {}
_FIELDS_CACHE_MAX_ENTRIES = 128
_FIELDS_CACHE_MAX_CHARS = 1024


def reset_caches() -> None:
    """Forget the remembered Host values and field sections (tests; a new Limits needs no
    reset: an entry counts only for the Limits it was computed under)."""
    _VALID_HOSTS.clear()
    _FIELDS_CACHE.clear()


# --------------------------------------------------------------------------- request line

def parse_request_line(line: str) -> tuple[str, str, str, str, str, str | None]:
    """Validate a request line -> (method, target, version, path, query, target_host)."""
    m = REQUEST_LINE_RE.fullmatch(line)
    if m is None:
        _diagnose_request_line(line)
    method, target, minor = m.groups()
    # RFC 9110 2.5 / 6.2: a recipient processes a higher minor version (HTTP/1.2+)
    # as the highest minor it implements, i.e. as HTTP/1.1.
    version = "1.0" if minor == "0" else "1.1"
    path, query, host = parse_target(method, target)
    return method, target, version, path, query, host


def _diagnose_request_line(line: str) -> NoReturn:
    parts = line.split(" ")
    if len(parts) == 2 and TOKEN_RE.fullmatch(parts[0]) and parts[1]:
        # RFC 9112 2.3 / Appendix C.1: an HTTP/0.9 "simple request" has no version;
        # answering it with a bare body would be garbage to everyone else -> 400.
        raise ProtocolError(400, "HTTP/0.9 requests are not supported")
    if len(parts) != 3:
        # RFC 9112 3: exactly one SP between the three parts
        raise ProtocolError(400, "invalid request line")
    method, target, version = parts
    if not TOKEN_RE.fullmatch(method):
        raise ProtocolError(400, "invalid method")  # RFC 9110 9.1: method = token
    if not TARGET_RE.fullmatch(target):
        raise ProtocolError(400, "invalid request-target")
    m = HTTP_VERSION_RE.fullmatch(version)
    if m is not None and m.group(1) != "1":
        # RFC 9110 15.6.6: 505 for a major version we do not support
        raise ProtocolError(505, "HTTP version not supported")
    raise ProtocolError(400, "invalid HTTP version")  # RFC 9112 2.3: case-sensitive HTTP/x.y


def parse_target(method: str, target: str) -> tuple[str, str, str | None]:
    """Classify the request-target (RFC 9112 3.2) -> (path, query, host or None)."""
    if target[0] == "/":
        # RFC 9112 3.2.1 origin-form. A fragment is not part of a request-target;
        # lenient clients send one anyway, so drop it rather than refuse.
        if method == "CONNECT":
            raise ProtocolError(400, "CONNECT requires an authority-form target")
        if "#" in target:
            target = target.split("#", 1)[0]
        path, _, query = target.partition("?")
        return path, query, None
    if target == "*":
        # RFC 9112 3.2.4: asterisk-form is only for a server-wide OPTIONS
        if method != "OPTIONS":
            raise ProtocolError(400, "asterisk-form target is only valid for OPTIONS")
        return "*", "", None
    if method == "CONNECT":
        # RFC 9112 3.2.3: CONNECT uses authority-form (host:port). We are an origin
        # server, not a proxy, so a well-formed CONNECT gets 501 (RFC 9110 9.3.6 / 15.6.2)
        # and the connection is closed before any tunnel bytes can be misread as HTTP.
        if AUTHORITY_FORM_RE.fullmatch(target) and not target.startswith(":"):
            raise ProtocolError(501, "CONNECT is not supported")
        raise ProtocolError(400, "invalid CONNECT target")  # RFC 9112 3.2.3
    m = ABSOLUTE_FORM_RE.fullmatch(target)
    if m is None:
        # RFC 9112 3.2: authority-form for another method, relative references, garbage
        raise ProtocolError(400, "invalid request-target")
    scheme, authority, rest = m.groups()
    # RFC 9112 3.2.2: absolute-form must be accepted by servers; we only serve http(s)
    if scheme.lower() not in ("http", "https"):
        raise ProtocolError(400, "unsupported URI scheme in request-target")
    if "@" in authority:
        # RFC 9110 4.2.4: userinfo is deprecated; a recipient SHOULD treat it as an error
        raise ProtocolError(400, "userinfo in request-target")
    # RFC 9110 4.2.1: an http(s) URI with an empty host MUST be rejected as invalid
    if not HOST_RE.fullmatch(authority) or authority.partition(":")[0] == "":
        raise ProtocolError(400, "invalid authority in request-target")
    if "#" in rest:
        rest = rest.split("#", 1)[0]
    path, _, query = rest.partition("?")
    return path or "/", query, authority


# --------------------------------------------------------------------------- field lines

def check_field_line(line: str) -> None:
    """Raise the precise 400 for a field line that FIELD_LINE_RE does not match."""
    if FIELD_LINE_RE.fullmatch(line):
        return
    if line[:1] in (" ", "\t"):
        # RFC 9112 5.2: obs-fold; a server MUST reject it (or unfold); we reject
        raise ProtocolError(400, "obsolete line folding in header")
    name, colon, value = line.partition(":")
    if not colon:
        raise ProtocolError(400, "header line without colon")  # RFC 9112 5: field-line
    if name[-1:] in (" ", "\t"):
        # RFC 9112 5.1: whitespace between field name and colon MUST get 400
        raise ProtocolError(400, "whitespace before colon in header")
    if not TOKEN_RE.fullmatch(name):
        raise ProtocolError(400, "invalid header name")  # RFC 9110 5.1: field-name = token
    if "\r" in value:
        raise ProtocolError(400, "bare CR in header")  # RFC 9112 2.2
    # RFC 9110 5.5: NUL and other CTLs (except HTAB) are not allowed in a value
    raise ProtocolError(400, "invalid character in header value")


def check_line(line: str, crlf: bool, index: int, limits: Limits, has_request_line: bool) -> None:
    """Check one complete line of a field section (in wire order); raise ProtocolError."""
    if has_request_line and index == 0:
        if len(line) > limits.max_request_line:
            raise ProtocolError(414, "request line too long")  # RFC 9112 3 / RFC 9110 15.5.15
        if not crlf:
            raise ProtocolError(400, "bare LF in request head")  # RFC 9112 2.2, see below
        parse_request_line(line)
        return
    number = index if has_request_line else index + 1
    # RFC 6585 5 (431) / RFC 9112 3 (servers may limit sizes): bound memory per head
    if number > limits.max_header_fields:
        raise ProtocolError(431, "too many header fields")
    if len(line) > limits.max_header_field_size:
        raise ProtocolError(431, "header field too large")
    if not crlf:
        # RFC 9112 2.2 lets a recipient accept a bare LF; we do not: a front end that
        # splits lines differently is exactly how request smuggling starts.
        raise ProtocolError(400, "bare LF in header section")
    check_field_line(line)


def diagnose_lines(text: str, limits: Limits, has_request_line: bool) -> NoReturn:
    """Find and raise the first error in a complete section `text` (lines end in LF)."""
    lines = text.split("\n")
    for index, raw in enumerate(lines[:-1]):
        crlf = raw.endswith("\r")
        check_line(raw[:-1] if crlf else raw, crlf, index, limits, has_request_line)
    raise ProtocolError(400, "invalid header section")  # unreachable if grammars agree


def parse_fields(block: str, limits: Limits, has_request_line: bool,
                 text: str) -> tuple[Headers, list[str], list[str]]:
    """Parse CRLF-terminated field lines -> (headers, lowered names, values); else diagnose."""
    if not block:
        return [], [], []
    parts = FIELD_LINES_RE.split(block)
    values = parts[2::3]
    # re.split leaves every stretch the regex did not match in parts[::3]: all
    # empty means the block is exactly a sequence of valid field lines.
    if (any(parts[::3]) or len(values) > limits.max_header_fields
            or (len(block) > limits.max_header_field_size
                and max(map(len, block.split("\r\n"))) > limits.max_header_field_size)):
        diagnose_lines(text, limits, has_request_line)
    names = list(map(str.lower, parts[1::3]))  # RFC 9110 5.1: case-insensitive names
    if " \r\n" in block or "\t\r\n" in block:
        values = [v.rstrip(_OWS) for v in values]  # trailing OWS (RFC 9112 5), rare
    # one split made both lists, so their lengths agree; zip(strict=) costs a kwargs parse
    return list(zip(names, values)), names, values  # noqa: B905


def _values(name: str, names: list[str], values: list[str]) -> list[str]:
    """All values of field `name` (lower-case), in order."""
    if names.count(name) == 1:
        return [values[names.index(name)]]
    return [v for n, v in zip(names, values, strict=True) if n == name]


# --------------------------------------------------------------------------- whole head

def parse_head(head: str, limits: Limits) -> Request:
    """Parse `head` = request-line CRLF *( field-line CRLF ), without the final empty line."""
    crlf = head.find("\r\n")
    if crlf > limits.max_request_line:
        diagnose_lines(head, limits, True)
    m = REQUEST_LINE_RE.fullmatch(head, 0, crlf)
    if m is None:
        diagnose_lines(head, limits, True)
    method, target, minor = m.groups()
    line = head[:crlf]
    version = "1.0" if minor == "0" else "1.1"  # RFC 9110 2.5, see parse_request_line
    cache_key: str | None = None
    if target[0] == "/" and "#" not in target and method != "CONNECT":
        path, _, query = target.partition("?")  # origin-form, the common case
        if len(head) - crlf <= _FIELDS_CACHE_MAX_CHARS:  # else not worth hashing
            cache_key = head[crlf - 1:]  # the minor version digit, CRLF, the field lines
            known = _FIELDS_CACHE.get(cache_key)
            if known is not None and known[0] is limits:
                return Request(method, target, path, query, version, list(known[1]),
                               known[2], known[3], known[4], known[5], known[6], line)
        host: str | None = None
    else:
        path, query, host = parse_target(method, target)
    headers, names, values = parse_fields(head[crlf + 2:], limits, True, head)

    content_length: int | None = None
    chunked = False
    keep_alive = version == "1.1"
    expect_continue = False
    has_host = False
    if names and not _SPECIAL.isdisjoint(names):
        # Look the few special fields up by name (C-level list ops) instead of
        # looping over every field in Python.
        if "host" in names:
            if names.count("host") > 1:
                # RFC 9112 3.2: more than one Host field line MUST get 400
                raise ProtocolError(400, "multiple Host headers")
            host_value = values[names.index("host")]
            if host_value not in _VALID_HOSTS:
                if not HOST_RE.fullmatch(host_value):
                    # RFC 9112 3.2: a Host field with an invalid value MUST get 400
                    raise ProtocolError(400, "invalid Host header")
                if len(host_value) <= 300:  # DNS names are <= 253 bytes
                    if len(_VALID_HOSTS) >= 64:
                        _VALID_HOSTS.clear()
                    _VALID_HOSTS.add(host_value)
            has_host = True
            if host is None:
                # RFC 9112 3.2.2: with absolute-form the target's authority wins
                host = host_value
        if "content-length" in names:
            content_length = _content_length(_values("content-length", names, values))
        if "transfer-encoding" in names:
            chunked = _transfer_encoding(_values("transfer-encoding", names, values),
                                         version, content_length)
        if "connection" in names:
            keep_alive = _keep_alive(_values("connection", names, values), version)
        if version == "1.1" and "expect" in names:
            # RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request
            # MUST be ignored, so only 1.1 requests are looked at.
            expect_continue = _expect(_values("expect", names, values))
    if not has_host and version == "1.1" and limits.require_host:
        # RFC 9112 3.2: an HTTP/1.1 request without Host MUST get 400 (also with
        # absolute-form: the client must still send Host)
        raise ProtocolError(400, "missing Host header")
    if (content_length is not None and limits.max_body_size
            and content_length > limits.max_body_size):
        # RFC 9110 15.5.14: refuse at the head, before reading a byte of the body
        raise ProtocolError(413, "request body too large")
    if cache_key is not None:
        if len(_FIELDS_CACHE) >= _FIELDS_CACHE_MAX_ENTRIES:
            _FIELDS_CACHE.clear()
        _FIELDS_CACHE[cache_key] = (limits, tuple(headers), host, content_length, chunked,
                                    keep_alive, expect_continue)
    return Request(method, target, path, query, version, headers, host, content_length,
                   chunked, keep_alive, expect_continue, line)


def _content_length(values: list[str]) -> int:
    if len(values) == 1:
        value = values[0]
        if CONTENT_LENGTH_RE.fullmatch(value) and len(value) <= MAX_CONTENT_LENGTH_DIGITS:
            return int(value)
    # RFC 9110 8.6: a list of identical values ("5, 5", or repeated lines) may be
    # folded into one; anything else is an unrecoverable framing error
    # (RFC 9112 6.3 item 5) -> 400 and the connection is closed.
    seen: set[int] = set()
    for value in values:
        for item in value.split(","):
            item = item.strip(_OWS)
            if not CONTENT_LENGTH_RE.fullmatch(item) or len(item) > MAX_CONTENT_LENGTH_DIGITS:
                raise ProtocolError(400, "invalid Content-Length")  # RFC 9110 8.6: 1*DIGIT
            seen.add(int(item))
    if len(seen) != 1:
        raise ProtocolError(400, "conflicting Content-Length values")  # RFC 9112 6.3 item 5
    return seen.pop()


def _transfer_encoding(values: list[str], version: str, content_length: int | None) -> bool:
    """Validate Transfer-Encoding; return True (chunked) or raise."""
    if version == "1.0":
        # RFC 9112 6.1: Transfer-Encoding in a 1.0 message means the framing is
        # faulty (a 1.0 intermediary may have ignored it): refuse and close.
        raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
    if content_length is not None:
        # RFC 9112 6.1 / 6.3 item 3: both present is the classic smuggling vector;
        # we reject rather than "TE wins", and never reuse the connection.
        raise ProtocolError(400, "both Transfer-Encoding and Content-Length")
    if len(values) > 1:
        # RFC 9110 5.3 would let a recipient join repeated field lines into one list, but
        # a front end that reads only the first or the last line frames the body
        # differently (RFC 9112 11.2, request smuggling): refuse, as h11 and nginx do.
        raise ProtocolError(400, "more than one Transfer-Encoding field line")
    codings = [c.strip(_OWS).lower() for c in values[0].split(",")]
    if "" in codings:
        # RFC 9110 5.6.1 lets a recipient skip empty list elements; an empty value or
        # "chunked," / ", chunked" comes from no honest client, and another parser may
        # skip the element differently or not at all: refuse rather than guess.
        raise ProtocolError(400, "empty element in Transfer-Encoding")
    if codings.count("chunked") > 1:
        # RFC 9112 6.1: a sender MUST NOT apply chunked more than once
        raise ProtocolError(400, "chunked applied more than once")
    if codings[-1] != "chunked":
        # RFC 9112 6.3 item 4: request framing with chunked not last cannot be
        # determined -> 400 and close
        raise ProtocolError(400, "chunked is not the final transfer coding")
    if len(codings) > 1:
        # RFC 9112 6.1: a transfer coding we do not understand -> 501
        raise ProtocolError(501, "unsupported transfer coding")
    return True


def _keep_alive(values: list[str], version: str) -> bool:
    # RFC 9110 7.6.1: Connection = #connection-option, case-insensitive tokens.
    # RFC 9112 9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
    if len(values) == 1:
        option = values[0].lower()
        if option == "keep-alive":  # the common single values, without a set
            return True
        if option == "close":
            return False
    options = {o.strip(_OWS) for v in values for o in v.lower().split(",")}
    if "close" in options:
        return False
    return version == "1.1" or "keep-alive" in options


def _expect(values: list[str]) -> bool:
    # RFC 9110 10.1.1: the only defined expectation is 100-continue (case-insensitive);
    # any other one may be answered with 417, which we do.
    found = False
    for value in values:
        for item in value.split(","):
            item = item.strip(_OWS).lower()
            if item == "100-continue":
                found = True
            elif item:
                raise ProtocolError(417, "unsupported expectation")  # RFC 9110 15.5.18
    return found
