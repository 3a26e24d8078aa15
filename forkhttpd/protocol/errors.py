"""Exceptions of the protocol layer; must not import anything (not even other forkhttpd code).

Two directions, two types: `ProtocolError` means the *peer* broke HTTP and the
connection must be answered with `status` and closed; `LocalProtocolError` means
*our* side (a handler, the server loop) tried to do something invalid, which is a
bug to surface loudly rather than something to send to the client.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer sent something that is not valid HTTP/1.x (or that we refuse).

    `status` is the response code to answer with; `reason` is a short text that
    is safe to show to the client (it never echoes request bytes back).
    """

    status: int
    reason: str
    #: the refused request's first line as it arrived (latin-1, at most the line limit),
    #: for the access log only, never for the peer; set when a request head is refused
    request_line: str = ""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"ProtocolError({self.status!r}, {self.reason!r})"


class LocalProtocolError(Exception):
    """We were asked to send or do something that would violate HTTP/1.1."""
