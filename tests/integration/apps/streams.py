"""Native handlers that stream: generators, open files, Server-Sent Events (integration tests).

`?mark=PATH` names a file the producer writes "closed" to from its `finally`, so a test can
see that a stream was closed when its client went away.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import forkhttpd

if TYPE_CHECKING:
    from forkhttpd import HttpRequest, HttpResponse

HERE = os.path.dirname(os.path.abspath(__file__))


def _mark(request: HttpRequest) -> None:
    path = request.query.get("mark")
    if path:
        with open(path, "w") as handle:
            handle.write("closed")


def handler(request: HttpRequest, response: HttpResponse) -> object:
    first = request.path[0]
    if first == "hello":
        return "hello"
    if first == "gen":
        def pieces() -> Iterator[str]:
            for i in range(int(request.query.get("n", "3"))):
                yield f"piece {i}\n"
        response.headers["Content-Type"] = "text/plain"
        response.data = pieces()
        return None
    if first == "file":
        response.headers["Content-Type"] = "text/html"
        response.data = open(os.path.join(HERE, "site", "index.html"), "rb")  # noqa: SIM115
        return None
    if first == "sync-events":
        def events() -> Iterator[object]:
            try:
                yield {"hello": "world"}
                yield forkhttpd.SSEEvent("two\nlines", event="multi", id=7, retry=1500)
                for i in range(1000):
                    time.sleep(0.05)
                    yield i if i % 10 == 0 else None
            finally:
                _mark(request)
        return forkhttpd.SSEResponse(events(), keepalive=0.2)
    if first == "async-events":
        async def run(sse: Any) -> None:
            try:
                await sse.send({"count": 0}, event="tick")
                await asyncio.sleep(30)  # the client leaves long before
            finally:
                _mark(request)
        return forkhttpd.SSEResponse(run, keepalive=0.2)
    if first == "vshs-events":
        async def run(sse: Any) -> None:
            for i in range(3):
                await sse.send(data={"count": i}, event="event_name")
        return forkhttpd.SSEResponse(run, retry=2000)
    if first == "sync-func":
        def sync_run(sse: Any) -> None:
            sse.send("first", event="greeting")
            sse.comment("between")
            sse.send(forkhttpd.SSEEvent({"n": 2}, id="b"))
        return forkhttpd.SSEResponse(sync_run)
    if first == "async-gen":
        async def numbers() -> AsyncIterator[object]:
            for i in range(3):
                await asyncio.sleep(0.01)
                yield forkhttpd.SSEEvent(i, id=i)
        return forkhttpd.SSEResponse(numbers())
    if first == "finite":
        response.data = forkhttpd.SSEResponse(iter(["a", "b", {"c": 1}]))
        return None
    response.status = 404
    return "no such stream"
