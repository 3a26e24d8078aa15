"""Server-Sent Events as VSHS offers them (SSEResponse), sent over one Exchange; must not
import the worker's loop or process, config or master (it writes through the Exchange it is handed).

Three ways to produce events:

- `SSEResponse(func)`: VSHS's style; `func(sse)` calls `sse.send(data, event=..., id=...,
  retry=...)`. `send` works with and without `await`, so `func` may be sync or async.
- `SSEResponse(generator)`: each item is an event's data, or an `SSEEvent` for the other
  fields; a sync generator may yield None to let a due keep-alive comment out.
- async functions and async generators run in an event loop next to a watcher that sends a
  keep-alive comment every `keepalive` seconds, notices a client that went away within a
  quarter of a second and cancels the producer (its `finally` runs).

A sync producer runs in the worker itself: a client that went away is noticed at its next
event (or `yield None`), and then the generator is closed. Either way an open stream holds
its worker: with N workers, at most N streams (minus other traffic) are served at once.
The stream also ends when the worker is asked to stop, and its connection is not reused.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import time
from collections.abc import Awaitable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..worker.exchange import ClientGone
from ..worker.parts import ResponseParts

if TYPE_CHECKING:
    from ..worker.exchange import Exchange

__all__ = ["SSEEvent", "SSEResponse", "format_event"]

log = logging.getLogger("forkhttpd.error")

_LINES = re.compile(r"\r\n|\r|\n")
_WATCH = 0.25  # seconds between checks for a vanished client (async producers)
KEEPALIVE_COMMENT = b": keep-alive\n\n"


@dataclass(frozen=True)
class SSEEvent:
    """One event with every field the text/event-stream format has."""

    data: Any = None
    event: str | None = None
    id: str | int | None = None
    retry: int | None = None


def _one_line(name: str, value: object) -> str:
    text = str(value)
    if _LINES.search(text) or "\0" in text:
        raise ValueError(f"an SSE {name} must be one line without NUL: {text!r}")
    return text


def format_event(data: Any = None, event: str | None = None, id: str | int | None = None,
                 retry: int | None = None) -> bytes:
    """The wire form of one event; data that is not str is JSON-encoded (bytes as UTF-8)."""
    lines = []
    if event is not None:
        lines.append("event: " + _one_line("event name", event))
    if id is not None:
        lines.append("id: " + _one_line("id", id))
    if retry is not None:
        lines.append(f"retry: {int(retry)}")
    if data is not None:
        if isinstance(data, bytes | bytearray):
            data = bytes(data).decode("utf-8", "replace")
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        lines.extend("data: " + line for line in _LINES.split(text))
    if not lines:
        return KEEPALIVE_COMMENT
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class _Sent:
    """What send() returns: already done, and awaitable so that `await sse.send()` works."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator function


_SENT = _Sent()


class SSEResponse:
    """A text/event-stream response; returned by a handler or set as `response.data`."""

    def __init__(self, source: Any, *, keepalive: float = 15.0, retry: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.source = source
        self.keepalive = keepalive
        self.retry = retry
        self.headers = dict(headers or {})
        self._exchange: Exchange | None = None
        self._last_write = 0.0

    def __forkhttpd_body__(self) -> tuple[Any, str]:
        return self, "text/event-stream; charset=utf-8"

    # -- writing ---------------------------------------------------------------------------
    def send(self, data: Any = None, event: str | None = None, id: str | int | None = None,
             retry: int | None = None) -> _Sent:
        """Send one event now; raises ClientGone once the client has gone away."""
        if isinstance(data, SSEEvent):
            data, event, id, retry = data.data, data.event, data.id, data.retry
        self._write(format_event(data, event, id, retry))
        return _SENT

    def comment(self, text: str = "keep-alive") -> _Sent:
        """Send a comment line (ignored by clients; keeps proxies from timing out)."""
        self._write(f": {_one_line('comment', text)}\n\n".encode())
        return _SENT

    def _write(self, data: bytes) -> None:
        exchange = self._exchange
        if exchange is None:
            raise RuntimeError("SSEResponse.send() called before the stream started")
        if exchange.client_closed():
            raise ClientGone("the client closed the event stream")
        exchange.write(data)
        self._last_write = time.monotonic()

    def _keepalive_due(self) -> bool:
        return self.keepalive > 0 and time.monotonic() - self._last_write >= self.keepalive

    # -- driving the stream ---------------------------------------------------------------
    def __forkhttpd_push__(self, exchange: Exchange, parts: ResponseParts, close: bool) -> None:
        headers = [(k, v) for k, v in parts.headers if k.lower() != "cache-control"]
        headers.append(("Cache-Control", "no-cache"))
        headers.append(("X-Accel-Buffering", "no"))  # proxies: pass each event on at once
        headers.extend(self.headers.items())
        opening = format_event(retry=self.retry) if self.retry is not None else b""
        self._exchange = exchange
        exchange.begin(parts.status, headers, None, close=True, first=opening,
                       trusted=parts.trusted)
        self._last_write = time.monotonic()
        if parts.status != 200 or exchange.request.method == "HEAD":
            exchange.finish()
            return
        try:
            self._run(exchange)
        except ClientGone:
            exchange.close = True
            return  # nobody left to finish the stream for
        exchange.finish()

    def _run(self, exchange: Exchange) -> None:
        import asyncio  # only for streams: it costs every process ~6 MiB

        source = self.source
        if inspect.isasyncgen(source) or inspect.iscoroutinefunction(source):
            asyncio.run(self._watched(exchange))
        elif callable(source):
            returned = source(self)
            if inspect.isawaitable(returned):
                asyncio.run(self._watched(exchange, returned))
            elif returned is not None and hasattr(returned, "__iter__"):
                self._iterate(exchange, returned)
        else:
            self._iterate(exchange, source)

    def _iterate(self, exchange: Exchange, items: Any) -> None:
        """A sync generator or iterable: events as they come, checks between them."""
        iterator = iter(items)
        try:
            for item in iterator:
                if exchange.client_closed() or exchange.stopping:
                    return
                if item is None:
                    if self._keepalive_due():
                        self._write(KEEPALIVE_COMMENT)
                    exchange.beat()
                    continue
                self.send(item)
        finally:
            closer = getattr(iterator, "close", None)
            if closer is not None:
                closer()  # runs the generator's finally

    async def _produce(self, started: Awaitable[Any] | None) -> None:
        source = self.source
        if started is not None:
            await started
        elif inspect.isasyncgen(source):
            try:
                async for item in source:
                    if item is not None:
                        self.send(item)
            finally:
                await source.aclose()
        else:
            await source(self)

    async def _watched(self, exchange: Exchange, started: Awaitable[Any] | None = None) -> None:
        import asyncio

        producer = asyncio.ensure_future(self._produce(started))
        try:
            while not producer.done():
                await asyncio.wait({producer}, timeout=_WATCH)
                if producer.done():
                    break
                if exchange.client_closed() or exchange.stopping:
                    break
                if self._keepalive_due():
                    self._write(KEEPALIVE_COMMENT)
                exchange.beat()
        finally:
            if not producer.done():
                producer.cancel()  # CancelledError inside the producer: its finally runs
            try:
                await producer
            except (asyncio.CancelledError, ClientGone):
                pass
            except Exception:
                log.exception("an SSE producer failed; the stream ends")
