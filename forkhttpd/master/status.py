"""The master's observability, driven from its loop: the counts it keeps (snapshot.Tally), the
status file rewritten every second, systemd's STATUS= line and the --status-bind endpoint;
must not import arbiter, supervise, worker or psutil (it reads the arbiter's records by duck
typing, and nothing here may block the master's loop).

The jobs live in their own modules: snapshot (reading everything into one value),
status_file (writing and reading the file), status_http (the endpoint), metrics (the
Prometheus text) and status_cli (`forkhttpd status`). This one only wires them to the master.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..runtime import logs, systemd
from .listeners import describe, open_listeners
from .metrics import render_metrics
from .snapshot import Tally, collect
from .status_file import status_path, write_status
from .status_http import StatusServer

__all__ = ["Observer", "summary"]

log = logs.error_log
_PERIOD = 1.0  # seconds between status-file writes and STATUS= updates


def summary(snapshot: dict[str, Any]) -> str:
    """One line for systemd's STATUS= (and the master's log): busy/idle, req/s, generation."""
    states = snapshot["states"]
    busy = states.get("handling", 0) + states.get("reading", 0)
    idle = states.get("idle", 0) + states.get("keep-alive", 0)
    master = snapshot["master"]
    total = sum(count for state, count in states.items() if state != "exiting")
    line = (f"{total} workers ({busy} busy, {idle} idle); "
            f"{snapshot['requests_per_second']:.1f} req/s; generation {master['generation']}")
    if master["last_reload"] not in ("", "none"):
        line += f"; last reload: {master['last_reload']}"
    return line[:200]


class Observer:
    """Everything observability asks of the master: counters, the status server, the status
    file and systemd's STATUS=, driven from the master loop (read_fds/write_fds, step)."""

    def __init__(self, arbiter: Any) -> None:
        self.arbiter = arbiter
        self.tally = Tally()
        self.server: StatusServer | None = None
        self.address: str | None = None
        pidfile = getattr(arbiter.settings, "pid", None)
        self.path = status_path(os.path.abspath(pidfile)) if pidfile else None
        self.owner = os.getpid()
        self.next_period = 0.0
        self.mark: tuple[float, int] | None = None
        self.rps = 0.0

    def start(self) -> None:
        """Open --status-bind (raises listeners.BindError); children never keep it."""
        bind = getattr(self.arbiter.settings, "status_bind", None)
        if bind is None:
            return
        [sock] = open_listeners([bind], backlog=64)
        self.server = StatusServer(sock, self.answer)
        self.address = describe(sock)
        os.register_at_fork(after_in_child=self._forget_in_child)
        log.info("status server on http://%s/ (/status, /metrics)", self.address)

    def _forget_in_child(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        self.path = None

    def read_fds(self) -> list[int]:
        return self.server.read_fds() if self.server is not None else []

    def write_fds(self) -> list[int]:
        return self.server.write_fds() if self.server is not None else []

    def step(self, readable: list[int], writable: list[int], now: float) -> None:
        if now >= self.next_period:
            self.next_period = now + _PERIOD
            self._periodic(now)
        if self.server is not None and (readable or writable):
            self.server.step(set(readable), set(writable), now)

    def refresh(self) -> None:
        """Write the snapshot at the next step, not a second later: the workers just became
        ready (or a reload finished), which is what a `forkhttpd status` right now wants."""
        self.next_period = 0.0

    def _periodic(self, now: float) -> None:
        snapshot = self.snapshot()
        total = snapshot["requests"]["total"]
        if self.mark is not None and now > self.mark[0]:
            self.rps = max(0, total - self.mark[1]) / (now - self.mark[0])
            snapshot["requests_per_second"] = round(self.rps, 2)
        self.mark = (now, total)
        if self.path is not None:
            try:
                write_status(self.path, snapshot)
            except OSError as error:
                log.warning("cannot write the status file %s: %s", self.path, error)
                self.path = None
        if systemd.notify_enabled():
            systemd.notify("STATUS=" + summary(snapshot))

    def snapshot(self) -> dict[str, Any]:
        return collect(self.arbiter, self.tally, self.rps, self.address)

    def answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/status":
            return 200, "application/json", json.dumps(self.snapshot(), indent=1).encode()
        if path == "/metrics":
            return (200, "text/plain; version=0.0.4; charset=utf-8",
                    render_metrics(self.snapshot()).encode())
        if path == "/":
            return 200, "text/plain", b"forkhttpd status: /status (JSON), /metrics\n"
        return 404, "text/plain", b"not found: try /status or /metrics\n"

    def summary(self) -> str:
        return summary(self.snapshot())

    def worker_exited(self, record: Any, view: Any, reason: str, how: str) -> None:
        self.tally.worker_exited(record.number, record.pid, record.generation, reason, how,
                                 view.counters, time.time(), view.codes())

    def reloaded(self, ok: bool) -> None:
        self.tally.reloaded(ok)

    def close(self) -> None:
        if os.getpid() != self.owner:
            return
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
