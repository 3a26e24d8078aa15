"""The native interface: picohttp's handler(request, response, *args), plus VSHS's returned
values and HTTPError; must not import the worker's loop or process, config or master."""

from __future__ import annotations

from collections.abc import Callable
from types import CoroutineType
from typing import Any

from ..worker.exchange import Exchange
from ..worker.parts import error_parts
from .request import HttpRequest
from .response import HTTPError, HttpResponse, finalize

__all__ = ["native_adapter"]

_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}  # picohttp's request.protocol


def native_adapter(handler: Callable[..., Any], args: tuple[Any, ...] = ()) -> Callable[
        [Exchange], None]:
    """Wrap a picohttp-style handler so that it answers Exchanges."""

    def handle(exchange: Exchange) -> None:
        wire = exchange.request
        request = HttpRequest(wire.method, wire.path, wire.query, _PROTOCOLS[wire.version],
                              wire.headers,
                              exchange.read_body if wire.chunked or wire.content_length
                              else None,
                              wire.target, exchange.client)  # type: ignore[arg-type]
        response = HttpResponse()
        try:
            returned = handler(request, response, *args)
            if returned.__class__ is CoroutineType:
                import asyncio  # only for async handlers: it costs every process ~6 MiB

                returned = asyncio.run(returned)  # VSHS's async handlers, run to completion
            parts = finalize(response, returned)
        except HTTPError as error:
            parts = error_parts(error.status, error.message or str(error.status))
        exchange.respond(parts)

    return handle
