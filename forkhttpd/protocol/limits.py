"""Parsing limits (Limits); must not import anything but dataclasses.

Every limit exists so that a slow or hostile peer cannot make one worker buffer
an unbounded amount of memory or burn unbounded CPU before being rejected.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection parsing limits (all sizes in bytes)."""

    #: longest request line (without CRLF); longer -> 414 (RFC 9112 3, RFC 9110 15.5.15)
    max_request_line: int = 8190
    #: most header fields in a head (and trailer fields in a trailer section); more -> 431
    max_header_fields: int = 100
    #: longest single field line (without CRLF); longer -> 431 (RFC 6585 5)
    max_header_field_size: int = 8190
    #: largest request body; 0 = unlimited. Content-Length above -> 413 at the head,
    #: chunked total above -> 413 as soon as a chunk size proves it (RFC 9110 15.5.14)
    max_body_size: int = 1 << 30
    #: HTTP/1.1 without Host -> 400 (RFC 9112 3.2). False relaxes only the missing-Host rule.
    require_host: bool = True

    def __post_init__(self) -> None:
        for name in ("max_request_line", "max_header_fields", "max_header_field_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")
        if not isinstance(self.max_body_size, int) or self.max_body_size < 0:
            raise ValueError(f"Limits.max_body_size must be >= 0, got {self.max_body_size!r}")

    @property
    def max_head_size(self) -> int:
        """Upper bound of a whole head implied by the line and field limits (incl. CRLFs)."""
        return (self.max_request_line + 2
                + self.max_header_fields * (self.max_header_field_size + 2) + 2)


DEFAULT_LIMITS = Limits()
