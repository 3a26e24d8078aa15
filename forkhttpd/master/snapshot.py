"""The status snapshot: the master's records, the scoreboard, the last psutil samples and the
master's own process figures read into one plain value (JSON-ready dicts and lists), plus the
counts the master keeps itself (Tally); reads memory and /proc only, never blocks: must not
import arbiter, supervise, worker or psutil (it reads the arbiter's records by duck typing).

Every rendering (the status table, /status, /metrics, systemd's STATUS=) starts from this
value, so they never disagree.
"""

from __future__ import annotations

import os
import resource
import socket
import struct
import sys
import time
from collections import deque
from typing import Any

from .. import __version__
from ..runtime.scoreboard import (
    BUCKET0,
    BUCKETS,
    BYTES,
    CLASS0,
    CONNECTIONS,
    COUNTERS,
    DURATION_SUM,
    REQUESTS,
)
from .listeners import describe

__all__ = ["STATUS_CLASSES", "Tally", "collect", "listen_queue", "master_process", "totals"]

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_MIB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")


class Tally:
    """What the master counts itself; survives its workers (counters stay monotonic)."""

    def __init__(self) -> None:
        self.exits: dict[str, int] = {}
        self.reloads = {"ok": 0, "failed": 0}
        self.retired = [0] * COUNTERS  # the counters of workers that have exited
        self.retired_codes: dict[int, int] = {}  # their responses by status code
        self.recent: deque[dict[str, Any]] = deque(maxlen=10)

    def worker_exited(self, number: int, pid: int, generation: int, reason: str, how: str,
                      counters: tuple[int, ...], wall: float,
                      codes: dict[int, int] | None = None) -> None:
        self.exits[reason] = self.exits.get(reason, 0) + 1
        retired = self.retired
        for index, value in enumerate(counters):
            if index != CONNECTIONS:
                retired[index] += value
        for code, count in (codes or {}).items():
            self.retired_codes[code] = self.retired_codes.get(code, 0) + count
        self.recent.append({"time": wall, "worker": number, "pid": pid,
                            "generation": generation, "reason": reason, "how": how,
                            "requests": counters[REQUESTS]})

    def reloaded(self, ok: bool) -> None:
        self.reloads["ok" if ok else "failed"] += 1


def totals(counters: list[int], codes: dict[int, int] | None = None) -> dict[str, Any]:
    """The "requests" part of a snapshot, from summed counter blocks and code counts (JSON
    keys are strings: "404"; "other" counts the codes a worker's table had no place for)."""
    buckets = counters[BUCKET0:]
    by_code = {("other" if code < 100 else str(code)): count
               for code, count in sorted((codes or {}).items()) if count}
    return {
        "total": counters[REQUESTS],
        "bytes_sent": counters[BYTES],
        "by_class": {name: counters[CLASS0 + i] for i, name in enumerate(STATUS_CLASSES)},
        "by_code": by_code,
        "duration": {"sum_us": counters[DURATION_SUM],
                     "buckets_us": [[bound, count] for bound, count in
                                    zip((*BUCKETS, None), buckets, strict=True)]},
    }


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


def master_process() -> dict[str, Any]:
    """The master's own CPU time, memory and descriptors (Prometheus' process_* metrics),
    from os.times() and /proc/self; a figure the OS does not give is None."""
    times = os.times()
    figures: dict[str, Any] = {"cpu_seconds": round(times.user + times.system, 3),
                               "rss_bytes": None, "virtual_bytes": None, "open_fds": None,
                               "max_fds": None}
    try:
        with open("/proc/self/statm", "rb") as handle:
            size, resident = handle.read().split()[:2]
        figures["virtual_bytes"] = int(size) * _PAGE
        figures["rss_bytes"] = int(resident) * _PAGE
    except (OSError, ValueError):
        pass
    try:
        figures["open_fds"] = len(os.listdir("/proc/self/fd"))
    except OSError:
        pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    figures["max_fds"] = soft if soft != resource.RLIM_INFINITY else None
    return figures


def collect(arbiter: Any, tally: Tally, rps: float = 0.0,
            status_address: str | None = None) -> dict[str, Any]:
    """Everything `status` and /metrics show, from memory only: the arbiter's records, the
    scoreboard and the last psutil samples (taken by the master's supervision pass)."""
    now, wall = time.monotonic(), time.time()
    counters = list(tally.retired)
    codes = dict(tally.retired_codes)
    states: dict[str, int] = {}
    workers = []
    for record in sorted(arbiter.workers.values(), key=lambda r: r.number):
        view = arbiter.board.read(record.slot)
        if record.pid > 0:
            for index in range(COUNTERS):
                counters[index] += view.counters[index]
            for code, count in view.codes().items():
                codes[code] = codes.get(code, 0) + count
        state = view.state if record.pid > 0 else "starting"
        states[state] = states.get(state, 0) + 1
        handling = state == "handling"
        sample = record.sample
        alive = record.pid > 0 and sample.alive
        workers.append({
            "number": record.number, "pid": record.pid if record.pid > 0 else None,
            "generation": record.generation, "state": state,
            "request": view.request_line if handling else None,
            "client": (view.client or None) if handling else None,
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
            "forkhttpd_version": __version__,
            "python_version": ".".join(map(str, sys.version_info[:3])),
            "process": master_process(),
        },
        "listeners": listeners,
        "requests": totals(counters, codes),
        "requests_per_second": round(rps, 2),
        "states": states,
        "workers": workers,
        "exits": dict(tally.exits),
        "recent_exits": list(tally.recent),
        "reloads": dict(tally.reloads),
    }
