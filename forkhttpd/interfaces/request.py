"""The handler-facing request object (picohttp's HttpRequest); imports no I/O and no settings.

Everything derived from the wire (path segments, query dict, header mapping, body text) is
computed on first use, so a handler that reads only `request.path` pays for nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

__all__ = ["Headers", "HttpRequest"]

_UNSET: object = object()


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive view of request header fields.

    Repeated fields are combined with ", " as RFC 9110 5.3 allows (Cookie with "; ", as
    RFC 6265 5.4 requires); `get_all` returns them one by one.
    """

    __slots__ = ("_fields", "_joined")

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields  # names already lower-case (the protocol guarantees it)
        self._joined: dict[str, str] | None = None

    def _table(self) -> dict[str, str]:
        joined = self._joined
        if joined is None:
            joined = {}
            for name, value in self._fields:
                if name in joined:
                    separator = "; " if name == "cookie" else ", "
                    joined[name] = joined[name] + separator + value
                else:
                    joined[name] = value
            self._joined = joined
        return joined

    def __getitem__(self, name: str) -> str:
        return self._table()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._table()

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def get_all(self, name: str) -> list[str]:
        """Every value of the field `name`, in the order received."""
        wanted = name.lower()
        return [value for field, value in self._fields if field == wanted]

    def items_raw(self) -> list[tuple[str, str]]:
        """The fields as received (lower-case names), repeats kept."""
        return list(self._fields)

    def __repr__(self) -> str:
        return f"Headers({self._table()!r})"


def split_path(raw_path: str) -> list[str]:
    """picohttp's path list: "/" -> [""], "/a/b/" -> ["a", "b", ""], each segment decoded.

    Segments are split before percent-decoding so that an encoded "/" (%2F) stays inside its
    segment instead of creating a new one (RFC 3986 2.2: reserved characters keep their
    meaning only when not encoded).
    """
    segments = raw_path.split("/")
    if segments[0] == "":
        del segments[0]
        if not segments:
            return [""]
    if "%" not in raw_path:
        return segments  # nothing to decode: the usual case, without a loop
    from urllib.parse import unquote  # not at import: it costs every worker ~0.5 MiB

    return [unquote(s, errors="surrogateescape") if "%" in s else s for s in segments]


class HttpRequest:
    """One parsed request as the handler sees it: picohttp's attributes plus `body` bytes."""

    __slots__ = (
        "method", "protocol", "raw_path", "raw_query", "target", "peer", "_fields",
        "_path", "_query", "_headers", "_body", "_read_body",
    )

    def __init__(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        protocol: str,
        fields: list[tuple[str, str]],
        read_body: Callable[[], bytes] | None = None,
        target: str = "",
        peer: tuple[str, int] | str | None = None,
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        self.raw_query = raw_query
        self.protocol = protocol  # "HTTP/1.1", as picohttp hands it
        self.target = target or (raw_path + ("?" + raw_query if raw_query else ""))
        self.peer = peer
        self._fields = fields
        self._path: list[str] | None = None
        self._query: dict[str, str] | None = None
        self._headers: Headers | None = None
        self._body: bytes | None = None if read_body is not None else b""
        self._read_body = read_body

    @property
    def path(self) -> list[str]:
        if self._path is None:
            self._path = split_path(self.raw_path)
        return self._path

    @path.setter
    def path(self, value: list[str]) -> None:
        self._path = value

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            from urllib.parse import parse_qsl

            self._query = dict(parse_qsl(self.raw_query, keep_blank_values=True,
                                         errors="surrogateescape"))
        return self._query

    @query.setter
    def query(self, value: dict[str, str]) -> None:
        self._query = value

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._fields)
        return self._headers

    @property
    def body(self) -> bytes:
        """The whole request body as bytes (read on first access: 100-continue is sent then)."""
        if self._body is None:
            assert self._read_body is not None
            self._body = self._read_body()
            self._read_body = None
        return self._body

    @property
    def data(self) -> str:
        """The body as str, as picohttp hands it: UTF-8 with surrogateescape, so no byte is lost."""
        return self.body.decode("utf-8", "surrogateescape")

    def __repr__(self) -> str:
        return f"<HttpRequest {self.method} {self.target} {self.protocol}>"
