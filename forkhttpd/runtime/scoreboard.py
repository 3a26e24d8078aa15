"""The scoreboard: one fixed-size slot per worker in a shared mmap, written by the worker's own
loop and read by the master; must not import psutil, serve, worker, arbiter or dataclasses.

The master creates it before the first zygote: a memfd mapped MAP_SHARED, whose descriptor an
exec'd zygote inherits and maps again (Scoreboard.attach), so that master, zygotes and the
workers they fork all see the same pages (an anonymous mapping where there is no memfd).
A worker writes only its own slot; the master reads every slot and clears a slot when it
hands it to a new worker. Times are time.monotonic() (one clock for the whole machine),
except `started`, which is wall-clock time for people.

Cost on the hot path (per request): Meter.begin() is one struct.pack_into (heartbeat, state,
start time and request line together: a request that begins is a sign of life, so the
master's --timeout counts from the start of the request being served); Meter.response()
adds to a Python list and writes one state byte. The counters reach the slot in one
pack_into per heartbeat tick (every 0.25 s), never per request, so a request costs no dict,
no syscall and no lock.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from bisect import bisect_left
from typing import Any

__all__ = ["BUCKETS", "COUNTERS", "EXIT_REASONS", "Meter", "STATES", "Scoreboard", "Slot",
           "SlotView"]

# state codes
FREE, STARTING, IDLE, READING, HANDLING, KEEPALIVE, EXITING = range(7)
STATES = ("free", "starting", "idle", "reading", "handling", "keep-alive", "exiting")

# why a worker left on its own (the master knows the reasons it caused itself)
EXIT_REASONS = ("", "max-requests", "lifetime", "shutdown", "master-gone", "app-error", "rss")

#: upper bounds of the request duration histogram, in µs (a last, unbounded bucket follows)
BUCKETS = (1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
           1_000_000, 2_500_000, 5_000_000, 10_000_000)

# the counter block: requests, bytes sent, open connections, responses by status class
# (1xx..5xx), the sum of durations in µs, then one count per histogram bucket (+Inf last)
REQUESTS, BYTES, CONNECTIONS = 0, 1, 2
CLASS0 = 3  # index of 1xx; 5xx is CLASS0 + 4
DURATION_SUM = 8
BUCKET0 = 9
COUNTERS = BUCKET0 + len(BUCKETS) + 1

_LINE = 200
# Layout (offsets): 0 pid, generation, worker number (i) | 12 wants_recycle, exit_reason (B)
# | 16 started, wall clock (d) | 24 the request block: last_beat (d), state (B at 32), line
# length (I at 36), request start (d at 40), request line (200s at 48, truncated by struct)
# | 248 the counter block (Q). A request's start is also a heartbeat: the same pack_into.
_IDENTITY = struct.Struct("<iiiBBxxd")
_REQUEST = struct.Struct(f"<dBxxxId{_LINE}s")
_COUNTS = struct.Struct(f"<{COUNTERS}Q")
_FORMAT = struct.Struct(f"<iiiBBxxddBxxxId{_LINE}s{COUNTERS}Q")
SLOT_SIZE = 512
assert _FORMAT.size <= SLOT_SIZE
assert _IDENTITY.size + _REQUEST.size + _COUNTS.size == _FORMAT.size
# The slot's last 4 bytes: how many USR1 log reopens the worker has finished (it flushed its
# buffered access-log lines into the old file first). `forkhttpd reopen` waits for it to move.
_REOPENS = struct.Struct("<I")
_OFF_REOPENS = SLOT_SIZE - _REOPENS.size
assert _FORMAT.size <= _OFF_REOPENS

_OFF_RECYCLE = 12
_OFF_EXIT = 13
_BEAT = struct.Struct("<d")
_OFF_BEAT = 24
_OFF_STATE = 32
_OFF_REQUEST = 24
_OFF_COUNTS = _IDENTITY.size + _REQUEST.size
_OLD_COUNTS = struct.Struct("<QQQ")  # requests, bytes, connections: Slot.counts()
assert (REQUESTS, BYTES, CLASS0, DURATION_SUM, BUCKET0, KEEPALIVE) == (0, 1, 3, 8, 9, 5)
_monotonic = time.monotonic
_bisect = bisect_left


class SlotView:
    """A consistent-enough copy of one slot for the master (fields are written one by one);
    a plain class, so that the worker's side needs no dataclasses (inspect, ast, dis)."""

    __slots__ = ("index", "pid", "generation", "number", "state", "wants_recycle",
                 "exit_reason", "last_beat", "started", "request_start", "requests",
                 "bytes_sent", "connections", "request_line", "counters")

    def __init__(self, index: int, pid: int, generation: int, number: int, state: str,
                 wants_recycle: bool, exit_reason: str, last_beat: float, started: float,
                 request_start: float, requests: int, bytes_sent: int, connections: int,
                 request_line: str, counters: tuple[int, ...] = (0,) * COUNTERS) -> None:
        self.index, self.pid, self.generation, self.number = index, pid, generation, number
        self.state, self.wants_recycle, self.exit_reason = state, wants_recycle, exit_reason
        self.last_beat, self.started, self.request_start = last_beat, started, request_start
        self.requests, self.bytes_sent, self.connections = requests, bytes_sent, connections
        self.request_line, self.counters = request_line, counters

    def __repr__(self) -> str:
        return "SlotView(" + ", ".join(f"{name}={getattr(self, name)!r}"
                                       for name in self.__slots__) + ")"


class Slot:
    """A worker's own slot; the hot-path writes are single struct.pack_into calls."""

    __slots__ = ("board", "index", "base")

    def __init__(self, board: Scoreboard, index: int) -> None:
        self.board = board
        self.index = index
        self.base = index * SLOT_SIZE

    def beat(self, now: float) -> None:
        _BEAT.pack_into(self.board.mem, self.base + _OFF_BEAT, now)

    def set_state(self, state: int) -> None:
        self.board.mem[self.base + _OFF_STATE] = state

    def request_begins(self, line: str, now: float) -> None:
        raw = line[:_LINE].encode("latin-1", "replace")
        _REQUEST.pack_into(self.board.mem, self.base + _OFF_REQUEST, now, HANDLING, len(raw),
                           now, raw)

    def counts(self, requests: int, bytes_sent: int, connections: int) -> None:
        _OLD_COUNTS.pack_into(self.board.mem, self.base + _OFF_COUNTS, requests, bytes_sent,
                              connections)

    def write_counters(self, counters: list[int]) -> None:
        _COUNTS.pack_into(self.board.mem, self.base + _OFF_COUNTS, *counters)

    def want_recycle(self, reason: int) -> None:
        mem = self.board.mem
        mem[self.base + _OFF_EXIT] = reason
        mem[self.base + _OFF_RECYCLE] = 1

    def set_exit_reason(self, reason: int) -> None:
        self.board.mem[self.base + _OFF_EXIT] = reason

    def reopened(self) -> None:
        """Acknowledge a finished log reopen (lines flushed to the old file, files reopened)."""
        at = self.base + _OFF_REOPENS
        (count,) = _REOPENS.unpack_from(self.board.mem, at)
        _REOPENS.pack_into(self.board.mem, at, (count + 1) & 0xFFFFFFFF)


class Meter:
    """A worker's request accounting: cheap per-request calls, flushed to its slot per tick.

    `begin(line, start)` marks the slot "handling" with the request line; `response(exchange)`
    counts a finished response (status class, bytes, duration histogram) and returns its
    duration in µs for the access log; `flush(connections)` writes every counter at once.
    """

    __slots__ = ("slot", "mem", "state_at", "request_at", "counters", "_pack")

    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.mem = slot.board.mem
        self.state_at = slot.base + _OFF_STATE
        self.request_at = slot.base + _OFF_REQUEST
        self.counters = [0] * COUNTERS
        self._pack = _REQUEST.pack_into

    def begin(self, line: str, start: float) -> None:
        try:
            raw = line.encode("latin-1")  # a request line always is (the parser decoded it so)
        except UnicodeEncodeError:
            raw = line.encode("latin-1", "replace")
        self._pack(self.mem, self.request_at, start, HANDLING, len(raw), start, raw)

    def response(self, exchange: Any) -> int:
        """Count one response (an Exchange: status, bytes_sent, start); its duration in µs."""
        duration = int((_monotonic() - exchange.start) * 1_000_000)
        counters = self.counters
        counters[0] += 1  # REQUESTS
        counters[1] += exchange.bytes_sent  # BYTES
        status_class = exchange.status // 100
        if 0 < status_class < 6:
            counters[2 + status_class] += 1  # CLASS0 - 1 + class
        counters[8] += duration  # DURATION_SUM
        # BUCKET0 + bucket; most requests take under a millisecond: no bisect for those
        counters[9 if duration < 1000 else 9 + _bisect(BUCKETS, duration)] += 1
        self.mem[self.state_at] = 5  # KEEPALIVE
        return duration

    def set_state(self, state: int) -> None:
        self.mem[self.state_at] = state

    def flush(self, connections: int) -> None:
        counters = self.counters
        counters[CONNECTIONS] = connections
        _COUNTS.pack_into(self.mem, self.slot.base + _OFF_COUNTS, *counters)


def _memfd(size: int) -> int:
    """A memory file of `size` bytes (close-on-exec), or -1 where there is none."""
    try:
        fd = os.memfd_create("forkhttpd-scoreboard", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        return -1
    try:
        os.ftruncate(fd, size)
    except OSError:
        os.close(fd)
        return -1
    return fd


class Scoreboard:
    """`capacity` slots in one shared mapping; `fd` is its memfd (-1: anonymous, no exec)."""

    def __init__(self, capacity: int = 256, fd: int | None = None) -> None:
        self.capacity = capacity
        size = capacity * SLOT_SIZE
        if fd is None:
            fd = _memfd(size)
        self.fd = fd
        self.mem = mmap.mmap(fd, size)  # MAP_SHARED, read and write

    @classmethod
    def inspect(cls, path: str) -> Scoreboard:
        """A read-only look at a running master's scoreboard, from the path of its memfd
        (/proc/PID/fd/N), for `forkhttpd reopen`. Raises OSError."""
        board = cls.__new__(cls)
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            board.mem = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ)
        board.capacity, board.fd = size // SLOT_SIZE, -1
        return board

    def reopens(self, index: int) -> int:
        """How many log reopens the worker in slot `index` has acknowledged."""
        return int(_REOPENS.unpack_from(self.mem, index * SLOT_SIZE + _OFF_REOPENS)[0])

    @classmethod
    def attach(cls, fd: int, capacity: int) -> Scoreboard:
        """The master's scoreboard, in a process exec'd with its memfd `fd` inherited."""
        return cls(capacity, fd)

    def close_fd(self) -> None:
        """Let go of the memfd (the mapping stays): no more exec'd zygotes can attach."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def slot(self, index: int) -> Slot:
        return Slot(self, index)

    def claim(self, index: int, pid: int, generation: int, number: int, now: float,
              wall: float) -> None:
        """The master hands slot `index` to a new worker (pid may be 0 until known)."""
        self.release(index)
        _IDENTITY.pack_into(self.mem, index * SLOT_SIZE, pid, generation, number, 0, 0, wall)
        _BEAT.pack_into(self.mem, index * SLOT_SIZE + _OFF_BEAT, now)
        self.mem[index * SLOT_SIZE + _OFF_STATE] = STARTING

    def set_pid(self, index: int, pid: int) -> None:
        struct.pack_into("<i", self.mem, index * SLOT_SIZE, pid)

    def release(self, index: int) -> None:
        self.mem[index * SLOT_SIZE:(index + 1) * SLOT_SIZE] = bytes(SLOT_SIZE)

    def free_index(self, taken: set[int]) -> int:
        for index in range(self.capacity):
            if index not in taken:
                return index
        raise RuntimeError("scoreboard full: too many workers")

    def read(self, index: int) -> SlotView:
        fields = _FORMAT.unpack_from(self.mem, index * SLOT_SIZE)
        (pid, generation, number, recycle, reason, started, beat, state, length,
         request_start, line) = fields[:11]
        counters = fields[11:]
        return SlotView(index, pid, generation, number,
                        STATES[state] if state < len(STATES) else "unknown", bool(recycle),
                        EXIT_REASONS[reason] if reason < len(EXIT_REASONS) else "unknown",
                        beat, started, request_start, counters[REQUESTS], counters[BYTES],
                        counters[CONNECTIONS], line[:min(length, _LINE)].decode("latin-1"),
                        counters)
