#!/usr/bin/env python3
"""Micro-benchmark of forkhttpd.protocol's hot path: parsing requests and simple_response().

Usage: python loadtests/parser_bench.py [--seconds N]

Prints requests (or responses) per second and microseconds per operation for:
a typical ~450-byte browser GET (parse only, also with field lines the parser has not seen
before, and a whole keep-alive cycle), a small POST with a Content-Length body, and
simple_response() of a hello world.
When h11 is installed, the same GET parsed by h11 is shown for comparison.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from forkhttpd.protocol import EndOfMessage, Request, ServerConnection  # noqa: E402
from forkhttpd.protocol import head as head_parser  # noqa: E402

BROWSER_GET = (
    b"GET /articles/2024/http-parsing?page=2&sort=recent HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: sessionid=3f9a1c2b7d6e; csrftoken=Xy7Pq2Lm9N\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"\r\n"
)
SMALL_POST = (
    b"POST /api/items HTTP/1.1\r\n"
    b"Host: api.example.com\r\n"
    b"User-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 27\r\n"
    b"\r\n"
    b'{"name": "widget", "n": 42}'
)
HELLO_HEADERS = [("Content-Type", "text/plain; charset=utf-8"),
                 ("Date", "Sat, 21 Nov 2026 01:38:00 GMT"), ("Server", "forkhttpd")]
HELLO = b"Hello, world!\n"


def run(seconds: float, step: Callable[[], None], batch: int = 1000) -> tuple[int, float]:
    """Call step() in batches until `seconds` have passed -> (calls, elapsed)."""
    for _ in range(batch):  # warm up
        step()
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            step()
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n, now - start


def report(name: str, n: int, elapsed: float) -> None:
    print(f"{name:<46} {n / elapsed:>12,.0f} /s {elapsed / n * 1e6:>9.2f} µs")


def parse_get() -> None:
    conn = ServerConnection()
    conn.receive_data(BROWSER_GET)
    request = conn.next_event()
    end = conn.next_event()
    assert request.__class__ is Request and end.__class__ is EndOfMessage


def parse_get_unseen() -> None:
    """The same GET as if its field lines had never been seen (the parser's memo emptied)."""
    head_parser._FIELDS_CACHE.clear()
    parse_get()


def parse_post() -> None:
    conn = ServerConnection()
    conn.receive_data(SMALL_POST)
    conn.next_event()  # Request
    conn.next_event()  # Data
    end = conn.next_event()
    assert end.__class__ is EndOfMessage


def make_cycle() -> Callable[[], None]:
    conn = ServerConnection()

    def cycle() -> None:
        conn.receive_data(BROWSER_GET)
        conn.next_event()
        conn.next_event()
        conn.simple_response(200, HELLO_HEADERS, HELLO)
        conn.start_next_cycle()
    return cycle


def time_simple_response(seconds: float) -> tuple[int, float]:
    """Time simple_response() alone, inside keep-alive cycles (timer overhead removed)."""
    conn = ServerConnection()
    clock = time.perf_counter_ns
    overhead = min(-(clock() - clock()) for _ in range(10_000))
    total = 0
    n = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            conn.receive_data(BROWSER_GET)
            conn.next_event()
            conn.next_event()
            t0 = clock()
            conn.simple_response(200, HELLO_HEADERS, HELLO)
            total += clock() - t0 - overhead
            conn.start_next_cycle()
        n += 1000
    return n, total / 1e9


def h11_parse_get() -> Callable[[], None] | None:
    try:
        import h11
    except ImportError:
        return None

    def step() -> None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(BROWSER_GET)
        conn.next_event()
        conn.next_event()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="per benchmark (default 2)")
    opts = ap.parse_args()
    print(f"Python {platform.python_version()} ({platform.python_implementation()}) "
          f"on {platform.machine()}; GET is {len(BROWSER_GET)} bytes, "
          f"POST {len(SMALL_POST)} bytes")
    report("GET parse (new ServerConnection each)", *run(opts.seconds, parse_get))
    report("GET parse, field lines not seen before", *run(opts.seconds, parse_get_unseen))
    report("GET keep-alive cycle (parse+simple_response)", *run(opts.seconds, make_cycle()))
    report("POST parse, 27-byte Content-Length body", *run(opts.seconds, parse_post))
    report("simple_response() hello world", *time_simple_response(opts.seconds))
    h11_step = h11_parse_get()
    if h11_step is not None:
        report("h11 GET parse, for comparison", *run(opts.seconds, h11_step, batch=200))


if __name__ == "__main__":
    main()
