"""Precompiled regexes of the HTTP/1.1 grammar; must not import anything but `re`.

Head regexes work on `str` obtained by latin-1 decoding the raw bytes (a
one-to-one byte<->code point mapping), so a class like [\\x80-\\xff] means exactly
the obs-text bytes. Classes are spelled with explicit ranges, never \\d, \\s or
\\w, because those match non-ASCII digits/spaces in `str` patterns.
"""

from __future__ import annotations

import re

# RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#                 "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
TOKEN = f"[{TCHAR}]+"
TOKEN_RE = re.compile(TOKEN)

# RFC 9110 5.5: field-vchar = VCHAR / obs-text; SP and HTAB may appear *inside* a
# value. Every other CTL (NUL, CR, LF, VT, DEL, ...) is invalid and we reject it.
VCHAR_OBS = r"\x21-\x7e\x80-\xff"
# RFC 9112 5: field-line = field-name ":" OWS field-value OWS. No whitespace is
# allowed between name and colon (RFC 9112 5.1). The value group also captures
# the trailing OWS (a field-value cannot end in SP/HTAB, so rstrip recovers it):
# that keeps the pattern deterministic. Possessive quantifiers and the line-start
# anchor below matter: with plain greedy ones an 8 KB line of spaces or without a
# colon costs re.split quadratic time (~0.5 s per line), a CPU DoS.
FIELD_VALUE_OWS = "[\t\x20-\x7e\x80-\xff]*+"
FIELD_LINE = f"([{TCHAR}]++):[ \t]*+({FIELD_VALUE_OWS})"
#: one field line without its terminator (use fullmatch)
FIELD_LINE_RE = re.compile(FIELD_LINE)
#: a block of CRLF-terminated field lines; re.split() yields [gap, name, value, gap, ...].
#: `^` (MULTILINE) makes every attempt away from a line start fail in O(1).
FIELD_LINES_RE = re.compile(f"(?m)^{FIELD_LINE}\r\n")

# RFC 9112 3: request-line = method SP request-target SP HTTP-version, single SPs.
# The target may hold any visible byte or obs-text: the URI grammar is checked by
# form below, and raw DQUOTE/UTF-8 is common enough in the wild that refusing it
# buys nothing for framing safety.
TARGET_CHARS = f"[{VCHAR_OBS}]+"
TARGET_RE = re.compile(TARGET_CHARS)
#: fast path: well-formed request line of a HTTP/1.x request (minor digit captured)
REQUEST_LINE_RE = re.compile(f"({TOKEN}) ({TARGET_CHARS}) HTTP/1\\.([0-9])")
# RFC 9112 2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT (case-sensitive name)
HTTP_VERSION_RE = re.compile(r"HTTP/([0-9])\.([0-9])")

# RFC 3986 3.2.2 / RFC 9110 4.2.3 host: IP-literal / IPv4address / reg-name;
# reg-name = *( unreserved / pct-encoded / sub-delims ). IPv4 is a subset of reg-name.
_UNRESERVED_SUB = r"A-Za-z0-9\-._~!$&'()*+,;="
_IP_LITERAL = rf"\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[{_UNRESERVED_SUB}:]+)\]"
_REG_NAME = rf"(?:[{_UNRESERVED_SUB}]++|%[0-9A-Fa-f]{{2}})*+"
URI_HOST = f"(?:{_IP_LITERAL}|{_REG_NAME})"
#: RFC 9110 7.2: Host = uri-host [ ":" port ]; port = *DIGIT (may be empty). A TCP port
#: has at most 5 digits: a longer one is no port at all, and would only reach an
#: application's int() (Python refuses strings over 4,300 digits: a 500) -> 400
HOST_RE = re.compile(f"{URI_HOST}(?::[0-9]{{0,5}})?")
#: RFC 9112 3.2.3: authority-form = uri-host ":" port (CONNECT only; port required)
AUTHORITY_FORM_RE = re.compile(f"{URI_HOST}:[0-9]{{1,5}}")
#: RFC 9112 3.2.2 absolute-form: scheme "://" authority path-abempty [ "?" query ]
ABSOLUTE_FORM_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*)://([^/?#]*)(.*)", re.DOTALL)

# RFC 9110 8.6: Content-Length = 1*DIGIT (no sign, no spaces, no underscores:
# Python's int() accepts "+5", " 5" and "0_5", so the string is checked first)
CONTENT_LENGTH_RE = re.compile(r"[0-9]+")
#: more digits than this is absurd (> 999 PB) and would only feed a huge int()
MAX_CONTENT_LENGTH_DIGITS = 18

# RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF ...; chunk-size = 1*HEXDIG
# RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#                 chunk-ext-val = token / quoted-string (RFC 9110 5.6.4)
_QUOTED_STRING = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_BTOKEN = TOKEN.encode("ascii")
_CHUNK_EXT = (rb"(?:[ \t]*+;[ \t]*+" + _BTOKEN
              + rb"(?:[ \t]*+=[ \t]*+(?:" + _BTOKEN + rb"|" + _QUOTED_STRING + rb"))?)*+")
#: at most 16 significant hex digits (2**64-1): bounds int() and any overflow downstream
CHUNK_LINE_RE = re.compile(rb"0*([0-9A-Fa-f]{1,16})" + _CHUNK_EXT)
HEX_RUN_RE = re.compile(rb"[0-9A-Fa-f]+")
#: longest chunk-size line (size + extensions) we buffer before giving up
MAX_CHUNK_LINE = 4096

#: RFC 9112 2.2: empty lines (CRLF) before a request-line are ignored
LEADING_CRLF_RE = re.compile(rb"(?:\r\n)*")
#: RFC 9112 2.2 asks a server to ignore "at least one" empty line before a request-line
#: (old clients sent a CRLF after a POST body); more than this many is no client's
#: mistake, only a way to hold a connection open without ever sending a request -> 400
MAX_LEADING_EMPTY_LINES = 8

# Response side. Names are validated joined by NUL (a byte no valid name or value
# contains) so one fullmatch checks every field; framing/connection fields are
# owned by the writer and refused here (case-insensitive negative lookahead).
def _any_case(name: str) -> str:
    # explicit [Cc] classes: re.IGNORECASE would slow down every other class too
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in name)


_FRAMING_NAMES = "|".join(map(_any_case, ("content-length", "transfer-encoding", "connection")))
RESPONSE_FIELDS_RE = re.compile(
    f"(?:(?!(?:{_FRAMING_NAMES})\0)[{TCHAR}]++\0[^\r\n\0]*+\r\n)*+")
REASON_PHRASE_RE = re.compile(f"[\t {VCHAR_OBS}]*")  # RFC 9112 4: reason-phrase
