"""Locust scenario against loadtests/app.py: a realistic mix of keep-alive and
connection-per-request users, with a gate that fails the run on any failure or a slow p95.

Users:

- KeepAliveUser: one persistent connection (locust's FastHttpUser): hello world, JSON echo
  POST, a small static page and, now and then, the 1 MiB static file; every answer is checked.
- ClosingUser: a new TCP connection for every request ("Connection: close"), as old clients
  and health checkers do; hello world, JSON echo and the small page.

The gate (on locust's quitting event): the exit code is 1 when failures exceed
--max-failures (default 0) or when the aggregated p95 exceeds --p95-budget-ms (default 500,
or the LOCUST_P95_BUDGET_MS environment variable). It prints one line starting with "GATE",
and writes the judged totals as JSON to $LOADTESTS_SUMMARY_JSON when that is set.

Run it through loadtests/run_locust.py, which also starts and stops the server. Never import
this module from pytest: locust patches the process with gevent.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from typing import Any
from urllib.parse import urlsplit

from locust import FastHttpUser, User, between, events, task

HELLO = b"Hello, world!"
BIG_PATH = "/static/big-1mib.bin"
BIG_SIZE = 1 << 20
SMALL_PATH = "/static/page.html"


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    parser.add_argument("--p95-budget-ms", type=float, env_var="LOCUST_P95_BUDGET_MS",
                        default=500.0, help="Fail the run when the aggregated p95 exceeds this")
    parser.add_argument("--max-failures", type=int, env_var="LOCUST_MAX_FAILURES", default=0,
                        help="Fail the run when more requests than this failed")


@events.quitting.add_listener
def _gate(environment: Any, **_kwargs: Any) -> None:
    total = environment.stats.total
    options = environment.parsed_options
    budget = float(getattr(options, "p95_budget_ms", 500.0))
    allowed = int(getattr(options, "max_failures", 0))
    p95 = total.get_response_time_percentile(0.95) if total.num_requests else 0.0
    reasons = []
    if total.num_requests == 0:
        reasons.append("no request was made")
    if total.num_failures > allowed:
        reasons.append(f"{total.num_failures} failures (allowed: {allowed})")
    if p95 > budget:
        reasons.append(f"p95 {p95:.0f} ms over the {budget:.0f} ms budget")
    verdict = "FAIL: " + "; ".join(reasons) if reasons else "PASS"
    print(f"GATE {verdict} (requests={total.num_requests} failures={total.num_failures} "
          f"p95_ms={p95:.0f} budget_ms={budget:.0f})", flush=True)
    if reasons:
        environment.process_exit_code = 1
    summary_path = os.environ.get("LOADTESTS_SUMMARY_JSON")
    if summary_path:  # run_locust.py reads the very numbers the gate judged
        with open(summary_path, "w") as handle:
            json.dump({"requests": total.num_requests, "failures": total.num_failures,
                       "p95_ms": p95, "median_ms": total.median_response_time,
                       "rps": total.total_rps, "gate": verdict}, handle)


def _echo_document(user_id: int, counter: int) -> dict[str, Any]:
    return {"user": user_id, "n": counter, "tags": ["load", "test"], "ok": True,
            "text": "caf\u00e9 \u2603"}


class KeepAliveUser(FastHttpUser):
    """A browser-like client: one kept-alive connection, short think times."""

    weight = 3
    wait_time = between(0.02, 0.1)

    def on_start(self) -> None:
        self.counter = 0

    @task(6)
    def hello(self) -> None:
        with self.client.get("/", name="/ (keep-alive)", catch_response=True) as response:
            if response.status_code != 200 or response.content != HELLO:
                response.failure(f"unexpected answer {response.status_code}")

    @task(3)
    def echo(self) -> None:
        self.counter += 1
        document = _echo_document(id(self), self.counter)
        with self.client.post("/echo", name="/echo (keep-alive)", json=document,
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif json.loads(response.content) != {"echo": document}:
                response.failure("the echo differs from what was sent")

    @task(2)
    def small_static(self) -> None:
        with self.client.get(SMALL_PATH, name="page.html (keep-alive)",
                             catch_response=True) as response:
            if response.status_code != 200 or b"<ul>" not in (response.content or b""):
                response.failure(f"unexpected answer {response.status_code}")

    @task(1)
    def big_static(self) -> None:
        with self.client.get(BIG_PATH, name="1 MiB file (keep-alive)",
                             catch_response=True) as response:
            size = len(response.content or b"")
            if response.status_code != 200 or size != BIG_SIZE:
                response.failure(f"status {response.status_code}, {size} bytes")


class ClosingClient:
    """A client that opens a new TCP connection per request and reports to locust."""

    def __init__(self, base_url: str, environment: Any) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.environment = environment

    def request(self, method: str, path: str, name: str, body: bytes | None = None,
                headers: dict[str, str] | None = None,
                expect: Any = None) -> tuple[int, bytes]:
        """Send one request on a fresh connection; `expect(status, body)` returns an error
        message or None. Failures are reported, never raised."""
        start = time.perf_counter()
        status, data, error = 0, b"", None
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request(method, path, body=body,
                               headers={"Connection": "close", **(headers or {})})
            response = connection.getresponse()
            status, data = response.status, response.read()
            elapsed = time.perf_counter() - start
            if expect is not None:
                error = expect(status, data)
            sock = connection.sock  # None once the server announced "Connection: close"
            if error is None and sock is not None:
                # RFC 9112 9.6: the server must close after answering a "close" request.
                sock.settimeout(2.0)
                if sock.recv(1) != b"":
                    error = "the server kept the connection open after Connection: close"
        except (OSError, http.client.HTTPException) as exc:
            elapsed = time.perf_counter() - start
            error = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
        self.environment.events.request.fire(
            request_type=method, name=name, response_time=elapsed * 1000,
            response_length=len(data), response=None, context={},
            exception=None if error is None else RuntimeError(error))
        return status, data


class ClosingUser(User):
    """A connection-per-request client (old HTTP/1.0-minded tools, health checkers)."""

    weight = 1
    wait_time = between(0.05, 0.2)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.client = ClosingClient(self.host or "http://127.0.0.1:8000", environment)
        self.counter = 0

    @task(4)
    def hello(self) -> None:
        self.client.request("GET", "/", "/ (new connection)", expect=lambda s, b: (
            None if s == 200 and b == HELLO else f"unexpected answer {s}"))

    @task(2)
    def echo(self) -> None:
        self.counter += 1
        document = _echo_document(id(self), self.counter)

        def check(status: int, body: bytes) -> str | None:
            if status != 200:
                return f"status {status}"
            return None if json.loads(body) == {"echo": document} else "echo differs"

        self.client.request("POST", "/echo", "/echo (new connection)",
                            body=json.dumps(document).encode(),
                            headers={"Content-Type": "application/json"}, expect=check)

    @task(1)
    def small_static(self) -> None:
        self.client.request("GET", SMALL_PATH, "page.html (new connection)",
                            expect=lambda s, b: None if s == 200 and b"<ul>" in b
                            else f"unexpected answer {s}")

