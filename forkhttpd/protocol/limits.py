"""Parsing limits (Limits); must not import anything (a plain class: dataclasses would bring
inspect, ast and dis into every worker, ~1 MiB each).

Every limit exists so that a slow or hostile peer cannot make one worker buffer
an unbounded amount of memory or burn unbounded CPU before being rejected.
"""

from __future__ import annotations

_FIELDS = ("max_request_line", "max_header_fields", "max_header_field_size", "max_body_size",
           "require_host")


class Limits:
    """Per-connection parsing limits (all sizes in bytes); immutable, compared by value."""

    # max_head_size is derived, and stored rather than a property: every connection reads it
    __slots__ = (*_FIELDS, "max_head_size")

    #: longest request line (without CRLF); longer -> 414 (RFC 9112 3, RFC 9110 15.5.15)
    max_request_line: int
    #: most header fields in a head (and trailer fields in a trailer section); more -> 431
    max_header_fields: int
    #: longest single field line (without CRLF); longer -> 431 (RFC 6585 5)
    max_header_field_size: int
    #: largest request body; 0 = unlimited. Content-Length above -> 413 at the head,
    #: chunked total above -> 413 as soon as a chunk size proves it (RFC 9110 15.5.14)
    max_body_size: int
    #: HTTP/1.1 without Host -> 400 (RFC 9112 3.2). False relaxes only the missing-Host rule.
    require_host: bool
    #: upper bound of a whole head implied by the line and field limits (incl. CRLFs)
    max_head_size: int

    def __init__(self, max_request_line: int = 8190, max_header_fields: int = 100,
                 max_header_field_size: int = 8190, max_body_size: int = 1 << 30,
                 require_host: bool = True) -> None:
        for name, value in (("max_request_line", max_request_line),
                            ("max_header_fields", max_header_fields),
                            ("max_header_field_size", max_header_field_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")
        if not isinstance(max_body_size, int) or max_body_size < 0:
            raise ValueError(f"Limits.max_body_size must be >= 0, got {max_body_size!r}")
        setter = object.__setattr__
        setter(self, "max_request_line", max_request_line)
        setter(self, "max_header_fields", max_header_fields)
        setter(self, "max_header_field_size", max_header_field_size)
        setter(self, "max_body_size", max_body_size)
        setter(self, "require_host", require_host)
        setter(self, "max_head_size", max_request_line + 2
               + max_header_fields * (max_header_field_size + 2) + 2)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Limits is immutable (use replace()): cannot set {name}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Limits:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"Limits({inner})"

    def replace(self, **changes: object) -> Limits:
        """A copy with some limits changed (validated like a new one)."""
        values = {name: getattr(self, name) for name in _FIELDS}
        values.update(changes)
        return Limits(**values)


DEFAULT_LIMITS = Limits()
