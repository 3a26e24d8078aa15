"""Hostile clients and the measuring client, against any HTTP/1.1 server on loopback; must not
import forkhttpd (loadtests/adversarial.py runs the same attacks against gunicorn).

Every attack is bounded in connections, bytes and seconds, talks only to 127.0.0.1, and
returns what the attacker saw. `Probe` is the measuring client: an ordinary request on a
fresh connection every `interval` seconds, recording which were answered and how long the
longest one waited.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"  # the only address any of this ever connects to


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=timeout)


def status_of(raw: bytes) -> int | None:
    """The status code of the first response in `raw`, or None if it holds none."""
    if raw.startswith(b"HTTP/1.") and len(raw) >= 12 and raw[9:12].isdigit():
        return int(raw[9:12])
    return None


def read_until_close(sock: socket.socket, limit: float, cap: int = 1 << 20) -> bytes:
    """Read until EOF, `limit` seconds or `cap` bytes, whichever comes first."""
    deadline = time.monotonic() + limit
    chunks: list[bytes] = []
    size = 0
    while size < cap:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def one_request(port: int, path: str = "/p", timeout: float = 10.0) -> tuple[int | None, float]:
    """GET `path` on a fresh connection that asks to be closed; (status or None, seconds)."""
    started = time.monotonic()
    try:
        with connect(port, timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
                         .encode("ascii"))
            raw = read_until_close(sock, timeout - (time.monotonic() - started))
    except OSError:
        return None, time.monotonic() - started
    return status_of(raw), time.monotonic() - started


@dataclass
class ProbeReport:
    """What the measuring client saw over one period."""

    sent: int = 0
    ok: int = 0
    worst: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        return self.sent > 0 and self.ok == self.sent

    def summary(self) -> str:
        return f"{self.ok}/{self.sent} answered, slowest {self.worst:.2f}s"


class Probe:
    """The measuring client: GET `path` every `interval` s on a new connection, in a thread."""

    def __init__(self, port: int, path: str = "/p", interval: float = 0.2,
                 timeout: float = 10.0) -> None:
        self.port, self.path, self.interval, self.timeout = port, path, interval, timeout
        self.report = ProbeReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status, took = one_request(self.port, self.path, self.timeout)
            report = self.report
            report.sent += 1
            report.worst = max(report.worst, took)
            if status == 200:
                report.ok += 1
            else:
                report.failures.append(f"{status} after {took:.2f}s")
            self._stop.wait(self.interval)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)


def probe_after(port: int, count: int = 5, timeout: float = 10.0) -> ProbeReport:
    """`count` measuring requests in a row, once an attack is over."""
    report = ProbeReport()
    for _ in range(count):
        status, took = one_request(port, "/p", timeout)
        report.sent += 1
        report.worst = max(report.worst, took)
        if status == 200:
            report.ok += 1
        else:
            report.failures.append(f"{status} after {took:.2f}s")
    return report


@contextlib.contextmanager
def held(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()


# --------------------------------------------------------------------------- the attacks

def pipeline_flood(port: int, connections: int = 2, batches: int = 40, per_batch: int = 50,
                   close_at: int | None = None, seconds: float = 6.0) -> dict[str, Any]:
    """On each connection, `batches` bursts of `per_batch` pipelined GETs while reading the
    answers; `close_at`: that request (counted from 0) asks for Connection: close."""
    def flood(results: list[int]) -> None:
        plain = b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n"
        closing = b"GET /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        answers = 0
        with connect(port) as sock:
            def send() -> None:
                number = 0
                try:
                    for _ in range(batches):
                        burst = []
                        for _ in range(per_batch):
                            burst.append(closing if number == close_at else plain)
                            number += 1
                        sock.sendall(b"".join(burst))
                except OSError:
                    pass  # the server closed: the rest is not sent
            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            data = read_until_close(sock, seconds, cap=1 << 24)
            answers = data.count(b"HTTP/1.1 200 ")
            sender.join(2)
        results.append(answers)

    results: list[int] = []
    threads = [threading.Thread(target=flood, args=(results,), daemon=True)
               for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 5)
    return {"answers per connection": sorted(results)}


def slowloris_heads(port: int, connections: int = 100, seconds: float = 4.0,
                    interval: float = 0.5) -> dict[str, Any]:
    """Heads that never end: one more field line every `interval` s for `seconds`."""
    return _trickle(port, connections, seconds, interval,
                    b"GET /p HTTP/1.1\r\nHost: h\r\n", b"X-Slow: 1\r\n")


def slowloris_bodies(port: int, connections: int = 4, seconds: float = 4.0,
                     interval: float = 0.5) -> dict[str, Any]:
    """Bodies that never end: one byte of a 1 MB body every `interval` s for `seconds`."""
    return _trickle(port, connections, seconds, interval,
                    b"POST /body HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n", b"x")


def _trickle(port: int, connections: int, seconds: float, interval: float, head: bytes,
             piece: bytes) -> dict[str, Any]:
    cut: Counter[str] = Counter()
    with held([]) as socks:
        for _ in range(connections):
            sock = connect(port)
            sock.sendall(head)
            socks.append(sock)
        alive = list(socks)
        deadline = time.monotonic() + seconds
        while alive and time.monotonic() < deadline:
            time.sleep(interval)
            for sock in list(alive):
                try:
                    sock.sendall(piece)
                    continue
                except OSError:
                    pass
                alive.remove(sock)
                raw = read_until_close(sock, 0.5)
                status = status_of(raw)
                cut[str(status) if status else "closed"] += 1
        for sock in list(alive):  # the server may have answered before the last send
            sock.settimeout(0.05)
            with contextlib.suppress(OSError):
                raw = sock.recv(65536)
                status = status_of(raw)
                cut[str(status) if status else "closed"] += 1
                alive.remove(sock)
        return {"cut by the server": dict(cut), "still open at the end": len(alive)}


def never_read(port: int, connections: int = 2, seconds: float = 3.0,
               path: str = "/big?n=512") -> dict[str, Any]:
    """Ask for a large body and never read it, with a small receive buffer."""
    with held([]) as socks:
        for _ in range(connections):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(5)
            sock.connect((HOST, port))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode("ascii"))
            socks.append(sock)
        time.sleep(seconds)
    return {"held for s": seconds}


def held_connections(port: int, connections: int = 300, seconds: float = 3.0) -> dict[str, Any]:
    """Open many connections, send nothing, hold them for up to `seconds` (less once the
    server has closed every one); count those the server closed."""
    closed: set[int] = set()
    with held([]) as socks:
        for _ in range(connections):
            try:
                socks.append(connect(port, 2.0))
            except OSError:
                break
        deadline = time.monotonic() + seconds
        while len(closed) < len(socks) and time.monotonic() < deadline:
            time.sleep(0.25)
            for index, sock in enumerate(socks):
                if index in closed:
                    continue
                sock.settimeout(0.001)
                try:
                    if sock.recv(65536) == b"":
                        closed.add(index)
                except TimeoutError:
                    pass
                except OSError:
                    closed.add(index)
        return {"opened": len(socks), "closed by the server": len(closed)}


HUGE = b"9" * 5000

#: request heads with numbers or fields no honest client sends; each on its own connection
HOSTILE_HEADS: dict[str, bytes] = {
    "5,000-digit Content-Length":
        b"POST /body HTTP/1.1\r\nHost: h\r\nContent-Length: " + HUGE + b"\r\n\r\n",
    "5,000-digit chunk size":
        b"POST /body HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"f" * 5000 + b"\r\n",
    "5,000-digit minor version": b"GET /p HTTP/1." + HUGE + b"\r\nHost: h\r\n\r\n",
    "5,000-digit Host port": b"GET /p HTTP/1.1\r\nHost: h:" + HUGE + b"\r\n\r\n",
    "5,000-digit Expect": b"POST /body HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nExpect: "
                          + HUGE + b"\r\n\r\nx",
    "5,000-digit If-Modified-Since": b"GET /p HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: "
                                     + HUGE + b"\r\n\r\n",
    "20 KB field line": b"GET /p HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    "500 field lines": b"GET /p HTTP/1.1\r\nHost: h\r\n" + b"X-F: 1\r\n" * 500 + b"\r\n",
    "20 KB request line": b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    "TE twice": b"POST /body HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}

#: a static file's Range with 5,000-digit positions (only where the server serves files)
RANGE_HEADS: dict[str, bytes] = {
    "5,000-digit Range start": b"GET /static/f.txt HTTP/1.1\r\nHost: h\r\nRange: bytes="
                               + HUGE + b"-\r\n\r\n",
    "5,000-digit Range suffix": b"GET /static/f.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=-"
                                + HUGE + b"\r\n\r\n",
}


def hostile_heads(port: int, heads: dict[str, bytes], rounds: int = 1,
                  timeout: float = 5.0) -> dict[str, Counter[str]]:
    """Send each head `rounds` times, each on a fresh connection; the statuses per head."""
    seen: dict[str, Counter[str]] = {name: Counter() for name in heads}
    for _ in range(rounds):
        for name, head in heads.items():
            with connect(port, timeout) as sock:
                try:
                    sock.sendall(head)
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                raw = read_until_close(sock, timeout)
            status = status_of(raw)
            seen[name][str(status) if status else "closed"] += 1
    return seen


def forking_handler(port: int, hold: float = 5.0) -> dict[str, Any]:
    """HTTP/1.0 GET of a handler that forks a child holding the socket for `hold` s: how
    long the client waits for the end of the response (the connection's close)."""
    started = time.monotonic()
    with connect(port, hold + 5) as sock:
        sock.sendall(f"GET /fork?hold={hold} HTTP/1.0\r\n\r\n".encode("ascii"))
        raw = read_until_close(sock, hold + 3)
    return {"status": status_of(raw), "end of response after s": time.monotonic() - started,
            "body complete": raw.endswith(b"forked\ndone\n")}


def hanging_handler(port: int, connections: int = 2, seconds: float = 8.0) -> dict[str, Any]:
    """Requests to a handler that never returns, one per connection, read for `seconds`."""
    results: list[str] = []

    def one() -> None:
        started = time.monotonic()
        try:
            with connect(port, seconds + 2) as sock:
                sock.sendall(b"GET /hang HTTP/1.1\r\nHost: h\r\n\r\n")
                raw = read_until_close(sock, seconds)
        except OSError:
            raw = b""
        status = status_of(raw)
        results.append(f"{status or 'no answer'} after {time.monotonic() - started:.1f}s")

    threads = [threading.Thread(target=one, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 5)
    return {"answers": sorted(results)}


def leaking_handler(port: int, requests: int = 6, mib: int = 20) -> dict[str, Any]:
    """Requests that each keep `mib` MiB in the worker for good."""
    statuses: Counter[str] = Counter()
    for _ in range(requests):
        status, _ = one_request(port, f"/leak?mib={mib}")
        statuses[str(status)] += 1
    return {"statuses": dict(statuses)}


def during(port: int, attack: Callable[[], dict[str, Any]], interval: float = 0.2,
           timeout: float = 10.0) -> tuple[dict[str, Any], ProbeReport, ProbeReport]:
    """Run `attack` with the measuring client alongside, then measure once more after it."""
    with Probe(port, interval=interval, timeout=timeout) as probe:
        seen = attack()
    return seen, probe.report, probe_after(port, timeout=timeout)
