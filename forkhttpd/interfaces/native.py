"""The native interface: picohttp's handler(request, response, *args), plus VSHS's returned
values and HTTPError; must not import serve, worker or arbiter."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..exchange import Exchange
from ..request import HttpRequest
from ..response import HTTPError, HttpResponse, error_parts, finalize

__all__ = ["native_adapter"]


def native_adapter(handler: Callable[..., Any], args: tuple[Any, ...] = ()) -> Callable[
        [Exchange], None]:
    """Wrap a picohttp-style handler so that it answers Exchanges."""

    def handle(exchange: Exchange) -> None:
        wire = exchange.request
        has_body = wire.chunked or bool(wire.content_length)
        request = HttpRequest(wire.method, wire.path, wire.query, "HTTP/" + wire.version,
                              wire.headers, exchange.read_body if has_body else None,
                              target=wire.target, peer=exchange.peer)  # type: ignore[arg-type]
        response = HttpResponse()
        try:
            returned = handler(request, response, *args)
            if inspect.iscoroutine(returned):
                import asyncio  # only for async handlers: it costs every process ~6 MiB

                returned = asyncio.run(returned)  # VSHS's async handlers, run to completion
            parts = finalize(response, returned)
        except HTTPError as error:
            parts = error_parts(error.status, error.message or str(error.status))
        exchange.respond(parts)

    return handle
