"""Clients that send requests without pause (bounded in count and time), for the supervision,
reload and signal tests: each request's outcome is recorded, so a test can count failures."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Outcome:
    start: float
    end: float
    status: int  # 0 when the request failed (no response)
    body: str = ""
    error: str = ""
    client: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def latency(self) -> float:
        return self.end - self.start


@dataclass
class Load:
    """`clients` threads asking `path` on 127.0.0.1:`port`, each on one kept-alive connection
    (keep_alive=True: reconnecting only when the server says Connection: close) or on a new
    connection per request. Stops on stop(), after `max_seconds` or `max_requests` each."""

    port: int
    path: str = "/"
    clients: int = 1
    keep_alive: bool = True
    pause: float = 0.0
    timeout: float = 10.0
    max_seconds: float = 30.0
    max_requests: int = 100_000
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(self.clients)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Load:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        return self

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what happened --------------------------------------------------------------------
    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.snapshot() if not o.ok]

    def bodies_since(self, moment: float) -> list[str]:
        return [o.body for o in self.snapshot() if o.ok and o.start >= moment]

    def wait_for_body(self, predicate, timeout: float = 10.0) -> float:  # type: ignore[no-untyped-def]
        """Wait until a response started after now satisfies `predicate`; its end time."""
        since = time.monotonic()
        deadline = since + timeout
        while time.monotonic() < deadline:
            for outcome in self.snapshot():
                if outcome.ok and outcome.start >= since and predicate(outcome.body):
                    return outcome.end
            time.sleep(0.02)
        raise AssertionError(f"no matching response in {timeout}s; last: "
                             f"{[o.body for o in self.snapshot()[-5:]]}")

    # -- the clients ----------------------------------------------------------------------
    def _run(self, number: int) -> None:
        began = time.monotonic()
        conn: http.client.HTTPConnection | None = None
        headers = {} if self.keep_alive else {"Connection": "close"}
        for _ in range(self.max_requests):
            if self._stop.is_set() or time.monotonic() - began > self.max_seconds:
                break
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            start = time.monotonic()
            try:
                conn.request("GET", self.path, headers=headers)
                response = conn.getresponse()
                body = response.read().decode(errors="replace")
                outcome = Outcome(start, time.monotonic(), response.status, body, "", number)
                if response.will_close or not self.keep_alive:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as error:
                outcome = Outcome(start, time.monotonic(), 0, "", repr(error), number)
                conn.close()
                conn = None
            with self._lock:
                self.outcomes.append(outcome)
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()
