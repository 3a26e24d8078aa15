"""The errors a worker raises while it serves a request; imports nothing (the adapters and the
loop both catch them, and they sit below both)."""

from __future__ import annotations

__all__ = ["BodyTimeout", "ClientGone", "HandlerTimeout"]


class ClientGone(Exception):
    """The client closed or stopped reading; nothing more can be sent on this connection."""


class BodyTimeout(TimeoutError):
    """The request body stopped arriving at --min-body-rate (answered 408, RFC 9110 15.5.9).
    A TimeoutError, so that an app that guards its body reads with `except TimeoutError`
    keeps working; the loop tells it from an app's own timeouts (a 500) by this type."""


class HandlerTimeout(BaseException):
    """Raised inside a handler that ran past --timeout (a BaseException, so that a handler's
    own `except Exception` cannot swallow it)."""
