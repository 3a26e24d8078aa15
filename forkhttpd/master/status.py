"""Per-worker status for people and programs: the master's snapshot (collect), the status
file next to the PID file, the --status-bind HTTP server (/status, /metrics), and
`python -m forkhttpd.master.status --pid FILE [--json]`; must not import arbiter, worker, serve or
supervision (it reads the arbiter's records by duck typing and never blocks the master loop).

`forkhttpd status --pid FILE` reads a JSON file that the master rewrites every second next to
its PID file (FILE without ".pid", plus ".status.json"; write then rename, so a reader never
sees half a file). A file rather than a socket: it needs no listener or protocol in the
master, it answers even while the master is busy or wedged (and then shows its age, which is
itself the diagnosis), and the PID file's directory already has the right owner.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from ..runtime import logs, systemd
from ..runtime.scoreboard import COUNTERS
from .listeners import describe, open_listeners
from .metrics import Tally, render_metrics, render_table, summary, totals

__all__ = ["Observer", "StatusServer", "collect", "main", "read_status", "render_table",
           "status_path"]

log = logs.error_log
_MIB = 1024 * 1024
_PERIOD = 1.0  # seconds between status-file writes and STATUS= updates
EXIT_NOT_RUNNING = 3  # LSB: "program is not running"


# -- the snapshot -----------------------------------------------------------------------------
def listen_queue(sock: socket.socket) -> tuple[int | None, int | None]:
    """(connections waiting to be accepted, backlog) of a TCP listener; (None, None) when the
    OS does not tell (Linux's TCP_INFO reports both for a listening socket)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(socket, "TCP_INFO"):
        return None, None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        queued, backlog = struct.unpack_from("<II", info, 24)  # tcpi_unacked, tcpi_sacked
    except (OSError, struct.error):
        return None, None
    return queued, backlog


def collect(arbiter: Any, tally: Tally, rps: float = 0.0,
            status_address: str | None = None) -> dict[str, Any]:
    """Everything `status` and /metrics show, from memory only: the arbiter's records, the
    scoreboard and the last psutil samples (taken by the master's supervision pass)."""
    now, wall = time.monotonic(), time.time()
    counters = list(tally.retired)
    states: dict[str, int] = {}
    workers = []
    for record in sorted(arbiter.workers.values(), key=lambda r: r.number):
        view = arbiter.board.read(record.slot)
        if record.pid > 0:
            for index in range(COUNTERS):
                counters[index] += view.counters[index]
        state = view.state if record.pid > 0 else "starting"
        states[state] = states.get(state, 0) + 1
        handling = state == "handling"
        sample = record.sample
        alive = record.pid > 0 and sample.alive
        workers.append({
            "number": record.number, "pid": record.pid if record.pid > 0 else None,
            "generation": record.generation, "state": state,
            "request": view.request_line if handling else None,
            "request_seconds": round(now - view.request_start, 3) if handling else None,
            "request_started": (round(wall - (now - view.request_start), 3) if handling
                                else None),
            "requests": view.requests, "bytes_sent": view.bytes_sent,
            "connections": view.connections,
            "last_beat_age": round(now - view.last_beat, 3) if view.last_beat else None,
            "started": view.started or None,
            "rss_bytes": int(sample.rss_mib * _MIB) if alive else None,
            "cpu_seconds": round(sample.cpu_seconds, 3) if alive else None,
            "cpu_percent": sample.cpu_percent if alive else None,
            "retiring": record.retiring or None,
            "replacing": getattr(record, "replacing", "") or None,
        })
    listeners = []
    for sock in arbiter.listeners:
        if sock.fileno() < 0:
            continue  # closed by a stop
        queued, backlog = listen_queue(sock)
        listeners.append({"address": describe(sock), "queued": queued, "backlog": backlog})
    current = arbiter.current
    return {
        "version": 1, "time": round(wall, 3),
        "master": {
            "pid": arbiter.pid, "started": round(wall - (now - arbiter.started), 3),
            "uptime": round(now - arbiter.started, 3),
            "generation": current.number if current is not None else 0,
            "app": arbiter.app_label, "workers_wanted": arbiter.num_workers,
            "stopping": arbiter.stopping or None, "last_reload": arbiter.last_reload,
            "status_address": status_address,
        },
        "listeners": listeners,
        "requests": totals(counters),
        "requests_per_second": round(rps, 2),
        "states": states,
        "workers": workers,
        "exits": dict(tally.exits),
        "recent_exits": list(tally.recent),
        "reloads": dict(tally.reloads),
    }


def status_path(pidfile: str) -> str:
    """The status file that goes with a PID file: run/app.pid -> run/app.status.json."""
    base = pidfile[:-4] if pidfile.endswith(".pid") else pidfile
    return base + ".status.json"


def _write_atomically(path: str, data: bytes) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temporary, path)


# -- the HTTP status server ----------------------------------------------------------------
class _Client:
    __slots__ = ("sock", "inbox", "outbox", "deadline")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.inbox = b""
        self.outbox = b""
        self.deadline = deadline


class StatusServer:
    """A tiny non-blocking HTTP/1.x server inside the master's select loop: read what is
    there, answer from memory, close. A client gets `DEADLINE` seconds for everything, and
    at most `MAX_CLIENTS` are open at once, so no client can hold the master up."""

    DEADLINE = 2.0
    MAX_CLIENTS = 16
    MAX_HEAD = 8192

    def __init__(self, sock: socket.socket,
                 answer: Callable[[str], tuple[int, str, bytes]]) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.answer = answer
        self.clients: dict[int, _Client] = {}

    def read_fds(self) -> list[int]:
        return [self.sock.fileno()] + [fd for fd, c in self.clients.items() if not c.outbox]

    def write_fds(self) -> list[int]:
        return [fd for fd, client in self.clients.items() if client.outbox]

    def step(self, readable: set[int], writable: set[int], now: float) -> None:
        if self.sock.fileno() in readable:
            self._accept(now)
        for fd, client in list(self.clients.items()):
            if fd in readable and not client.outbox:
                self._read(client)
            elif fd in writable and client.outbox:
                self._send(client)
            if fd in self.clients and now >= client.deadline:
                self._close(client)

    def _accept(self, now: float) -> None:
        for _ in range(8):
            try:
                sock, _peer = self.sock.accept()
            except OSError:  # BlockingIOError, or a connection gone before accept
                return
            if len(self.clients) >= self.MAX_CLIENTS:
                sock.close()
                continue
            sock.setblocking(False)
            self.clients[sock.fileno()] = _Client(sock, now + self.DEADLINE)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(client)
            return
        client.inbox += data
        end = client.inbox.find(b"\r\n\r\n")
        if end < 0:
            end = client.inbox.find(b"\n\n")
        if end < 0:
            if len(client.inbox) > self.MAX_HEAD:
                self._reply(client, "GET", 431, "text/plain", b"request head too large\n")
            return
        line = client.inbox.split(b"\n", 1)[0].decode("latin-1").strip().split()
        method = line[0] if line else ""
        path = line[1].split("?", 1)[0] if len(line) > 1 else "/"
        if method not in ("GET", "HEAD"):
            self._reply(client, "GET", 405, "text/plain", b"GET or HEAD only\n")
            return
        try:
            status, kind, body = self.answer(path)
        except Exception:  # noqa: BLE001 - a status bug must never take the master down
            log.exception("status server: error answering %s", path)
            status, kind, body = 500, "text/plain", b"internal error\n"
        self._reply(client, method, status, kind, body)

    def _reply(self, client: _Client, method: str, status: int, kind: str,
               body: bytes) -> None:
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
                  431: "Request Header Fields Too Large"}.get(status, "Error")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                "Connection: close\r\n\r\n").encode("ascii")
        client.outbox = head + (body if method != "HEAD" else b"")
        self._send(client)

    def _send(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.outbox)
        except BlockingIOError:
            return
        except OSError:
            self._close(client)
            return
        client.outbox = client.outbox[sent:]
        if not client.outbox:
            self._close(client)

    def _close(self, client: _Client) -> None:
        self.clients.pop(client.sock.fileno(), None)
        client.sock.close()

    def close(self) -> None:
        for client in list(self.clients.values()):
            self._close(client)
        self.sock.close()


# -- the master's side ----------------------------------------------------------------------
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
                _write_atomically(self.path, json.dumps(snapshot).encode())
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
                                 view.counters, time.time())

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


# -- the command ------------------------------------------------------------------------------
class NotRunning(Exception):
    """No live master behind the PID file / status file; str() says why."""


def _pid_in(pidfile: str) -> int | None:
    try:
        with open(pidfile) as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def read_status(pidfile: str) -> dict[str, Any]:
    """The snapshot a master wrote next to `pidfile`, with "age" (seconds) added; raises
    NotRunning when there is none or its master is gone."""
    path = status_path(os.path.abspath(pidfile))
    try:
        with open(path, "rb") as handle:
            snapshot: dict[str, Any] = json.loads(handle.read())
    except FileNotFoundError:
        raise NotRunning(f"no status file {path} (is a master running with --pid "
                         f"{pidfile}?)") from None
    except (OSError, ValueError) as error:
        raise NotRunning(f"cannot read {path}: {error}") from None
    master = snapshot["master"]["pid"]
    pid = _pid_in(pidfile)
    if pid is not None and pid != master:
        raise NotRunning(f"{path} belongs to pid {master}, but {pidfile} names pid {pid}")
    if not os.path.exists(f"/proc/{master}"):
        raise NotRunning(f"master pid {master} is gone (stale {path})")
    snapshot["age"] = round(max(0.0, time.time() - snapshot["time"]), 3)
    return snapshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="forkhttpd status", description="Show a running forkhttpd's master and workers.")
    parser.add_argument("-p", "--pid", metavar="FILE", required=True,
                        help="the master's PID file (its status file lies next to it)")
    parser.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        snapshot = read_status(args.pid)
    except NotRunning as error:
        print(f"forkhttpd is not running: {error}")
        return EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps(snapshot, indent=1))
    else:
        sys.stdout.write(render_table(snapshot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
