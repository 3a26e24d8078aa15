"""VSHS's handler-facing values without its dependencies: a small URL object (what yarl.URL
gives VSHS handlers), get_query(), Blob, and the request-body conversion by Content-Type;
imports no I/O and must not import the worker's loop or process, config or
master."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = ["Blob", "BodyError", "Query", "URL", "convert_body", "get_query"]


class Query(Mapping[str, str]):
    """The query string as yarl's MultiDictProxy behaves: `q[key]` is the first value,
    `q.getall(key)` every value, in order."""

    __slots__ = ("_pairs", "_first")

    def __init__(self, query_string: str) -> None:
        self._pairs = parse_qsl(query_string, keep_blank_values=True, errors="replace")
        first: dict[str, str] = {}
        for key, value in self._pairs:
            first.setdefault(key, value)
        self._first = first

    def __getitem__(self, key: str) -> str:
        return self._first[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getall(self, key: str, default: Any = None) -> list[str]:
        values = [v for k, v in self._pairs if k == key]
        if not values and default is not None:
            return list(default)
        if not values:
            raise KeyError(key)
        return values

    def getone(self, key: str) -> str:
        return self._first[key]

    def __repr__(self) -> str:
        return f"<Query {self._pairs!r}>"


class URL:
    """The requested URL with the attributes VSHS handlers use: path (decoded), query,
    query_string, raw_path, scheme, host, port, and str() for the whole URL."""

    __slots__ = ("scheme", "host", "port", "raw_path", "query_string", "_query")

    def __init__(self, raw_path: str, query_string: str = "", host: str = "localhost",
                 port: int | None = None, scheme: str = "http") -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.raw_path = raw_path or "/"
        self.query_string = query_string
        self._query: Query | None = None

    @classmethod
    def parse(cls, text: str) -> URL:
        parts = urlsplit(text)
        return cls(parts.path, parts.query, parts.hostname or "localhost", parts.port,
                   parts.scheme or "http")

    @property
    def path(self) -> str:
        return unquote(self.raw_path, errors="replace")

    @property
    def query(self) -> Query:
        if self._query is None:
            self._query = Query(self.query_string)
        return self._query

    @property
    def path_qs(self) -> str:
        return self.raw_path + ("?" + self.query_string if self.query_string else "")

    def __str__(self) -> str:
        default = {"http": 80, "https": 443}.get(self.scheme)
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host if self.port in (None, default) else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}{quote(self.raw_path, safe='/%:@!$&()*+,;=~')}" + (
            "?" + self.query_string if self.query_string else "")

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other) if isinstance(other, URL) else NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


def get_query(url: Any) -> dict[str, Any]:
    """The query as a dict: one value as a str, a repeated key as the list of its values
    (VSHS's helper; takes our URL, a yarl.URL or a URL string)."""
    if isinstance(url, str):
        url = URL.parse(url)
    query = url.query
    result: dict[str, Any] = {}
    for key in query:
        values = query.getall(key)
        result[key] = values if len(values) > 1 else values[0]
    return result


class Blob:
    """JavaScript's Blob as VSHS mimics it: bytes with a media type."""

    __slots__ = ("content", "type")

    def __init__(self, content: bytes | bytearray | str = b"", type: str = "") -> None:
        self.content = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        self.type = type

    @property
    def size(self) -> int:
        return len(self.content)

    async def text(self) -> str:
        return self.content.decode(_charset(self.type) or "utf-8", "replace")

    async def bytes(self) -> builtins.bytes:
        return self.content

    def __forkhttpd_body__(self) -> tuple[builtins.bytes, str]:
        return self.content, self.type or "application/octet-stream"

    def __repr__(self) -> str:
        return f"<Blob {self.type or 'untyped'} {len(self.content)} bytes>"


class BodyError(ValueError):
    """The request body does not match its Content-Type (answered with 400)."""


def _charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _decode(body: bytes, content_type: str) -> str:
    charset = _charset(content_type) or "utf-8"
    try:
        return body.decode(charset)
    except LookupError:
        raise BodyError(f"unknown charset {charset!r}") from None
    except UnicodeDecodeError:
        raise BodyError(f"the body is not valid {charset}") from None


def _json_or(text: str, fallback: Any) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return fallback


def convert_body(body: bytes, content_type: str | None) -> Any:
    """A request body as VSHS hands it to a route: None when empty; JSON as its value; form
    as a dict; text as a str (or its JSON value); octet-stream (or no type) as bytes; any
    other type as a Blob. Raises BodyError for a body its type cannot describe."""
    if not body:
        return None
    full = content_type or ""
    media = full.split(";")[0].strip().lower()
    if media in ("", "application/octet-stream"):
        return body
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(_decode(body, full))
        except ValueError as error:
            if isinstance(error, BodyError):
                raise
            raise BodyError("the body is not valid JSON") from None
    if media == "text/plain":
        text = _decode(body, full)
        return _json_or(text, text)
    if media == "application/x-www-form-urlencoded":
        text = _decode(body, full)
        parsed = _json_or(text, None)
        if isinstance(parsed, dict):
            return parsed
        return dict(parse_qsl(text, keep_blank_values=True))
    return Blob(body, full)
