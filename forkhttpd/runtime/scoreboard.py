"""The scoreboard: one fixed-size slot per worker in a shared mmap, written by the worker's own
loop and read by the master; must not import psutil, dataclasses,
or a layer above runtime (worker, interfaces, master).

The master creates it before the first zygote: a memfd mapped MAP_SHARED, whose descriptor an
exec'd zygote inherits and maps again (Scoreboard.attach), so that master, zygotes and the
workers they fork all see the same pages (an anonymous mapping where there is no memfd).
A worker writes only its own slot; the master reads every slot and clears a slot when it
hands it to a new worker. Times are time.monotonic() (one clock for the whole machine),
except `started`, which is wall-clock time for people.

Cost on the hot path (per request): Meter.begin() is one struct.pack_into (heartbeat, state,
start time, request line and client together: a request that begins is a sign of life, so
the master's --timeout counts from the start of the request being served); Meter.response()
adds to Python lists (the status code is one index into a list of every code) and writes one
state byte. The counters reach the slot in one pack_into per heartbeat tick (every 0.25 s),
never per request, so a request costs no dict, no syscall and no lock.

Status codes: the worker counts every code in a list indexed by the code; at each flush it
derives the five class counters from it and writes a table of (code, count) pairs, each
code keeping the place where it was first seen (so a reader racing a flush sees at worst an
older count, never a count under another code), the last place counting every code that
found no place of its own ("other").
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from bisect import bisect_left
from typing import Any

__all__ = ["BUCKETS", "CODE_PLACES", "COUNTERS", "EXIT_REASONS", "OTHER_CODE", "Meter", "STATES",
           "Scoreboard", "Slot", "SlotView", "count_refusal"]

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

#: places in a slot's table of status codes; the last one counts the codes without a place
CODE_PLACES = 48
#: the code written in the last place of the table: "every other code"
OTHER_CODE = 1
_CODE_SPACE = 1000  # Meter.codes is indexed by the status code itself (3 digits)

_LINE = 200
_HOST = 46  # an IPv6 address in text fits
# Layout (offsets): 0 pid, generation, worker number (i) | 12 wants_recycle, exit_reason (B)
# | 16 started, wall clock (d) | 24 the request block: last_beat (d), state (B at 32), line
# length (I at 36), request start (d at 40), request line (200s at 48, truncated by struct),
# client host (46s at 248) and port (H at 294) | 296 the counter block (Q) | 480 the code
# table: codes (H), then their counts (Q at 576). A request's start is also a heartbeat: the
# same pack_into.
_IDENTITY = struct.Struct("<iiiBBxxd")
_REQUEST = struct.Struct(f"<dBxxxId{_LINE}s{_HOST}sH")
_COUNTS = struct.Struct(f"<{COUNTERS}Q{CODE_PLACES}H{CODE_PLACES}Q")
_FORMAT = struct.Struct(f"<iiiBBxxddBxxxId{_LINE}s{_HOST}sH{COUNTERS}Q"
                        f"{CODE_PLACES}H{CODE_PLACES}Q")
SLOT_SIZE = 1024
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
assert (REQUESTS, BYTES, CLASS0, DURATION_SUM, BUCKET0, KEEPALIVE) == (0, 1, 3, 8, 9, 5)
_monotonic = time.monotonic
_bisect = bisect_left


class SlotView:
    """A consistent-enough copy of one slot for the master (fields are written one by one);
    a plain class, so that the worker's side needs no dataclasses (inspect, ast, dis)."""

    __slots__ = ("index", "pid", "generation", "number", "state", "wants_recycle",
                 "exit_reason", "last_beat", "started", "request_start", "requests",
                 "bytes_sent", "connections", "request_line", "counters", "client",
                 "code_table")

    def __init__(self, index: int, pid: int, generation: int, number: int, state: str,
                 wants_recycle: bool, exit_reason: str, last_beat: float, started: float,
                 request_start: float, requests: int, bytes_sent: int, connections: int,
                 request_line: str, counters: tuple[int, ...] = (0,) * COUNTERS,
                 client: str = "", code_table: tuple[int, ...] = ()) -> None:
        self.index, self.pid, self.generation, self.number = index, pid, generation, number
        self.state, self.wants_recycle, self.exit_reason = state, wants_recycle, exit_reason
        self.last_beat, self.started, self.request_start = last_beat, started, request_start
        self.requests, self.bytes_sent, self.connections = requests, bytes_sent, connections
        self.request_line, self.counters = request_line, counters
        self.client = client  # of the request in request_line ("" when not over TCP)
        self.code_table = code_table  # CODE_PLACES codes, then their counts: see codes()

    def codes(self) -> dict[int, int]:
        """Responses by status code (OTHER_CODE: codes that found no place in the table)."""
        table = self.code_table
        places = len(table) // 2
        return {code: table[places + i] for i, code in enumerate(table[:places])
                if code and table[places + i]}

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

    `begin(line, start, peer)` marks the slot "handling" with the request line and its client;
    `response(exchange)` counts a finished response (status code, bytes, duration histogram)
    and returns its duration in µs for the access log; `refused(status, size, start)` counts
    a response to a request the protocol refused; `flush(connections)` writes every counter
    at once.
    """

    __slots__ = ("slot", "mem", "state_at", "request_at", "counters", "codes", "places",
                 "counted", "peer", "host", "port", "_pack")

    #: the meter of this process (a worker makes one), for count_refusal()
    current: Meter | None = None

    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.mem = slot.board.mem
        self.state_at = slot.base + _OFF_STATE
        self.request_at = slot.base + _OFF_REQUEST
        self.counters = [0] * COUNTERS
        self.codes = [0] * _CODE_SPACE  # responses by status code, indexed by the code
        self.places: list[int] = []  # codes with a place in the slot's table, in order seen
        self.counted = 0  # requests when the table was last brought up to date
        self.peer: object = None  # the client of the last request, and its host and port
        self.host = b""
        self.port = 0
        self._pack = _REQUEST.pack_into
        Meter.current = self

    def begin(self, line: str, start: float, peer: object = None) -> None:
        try:
            raw = line.encode("latin-1")  # a request line always is (the parser decoded it so)
        except UnicodeEncodeError:
            raw = line.encode("latin-1", "replace")
        if peer is not self.peer:  # a keep-alive connection's requests share one address
            self.peer = peer
            if peer.__class__ is tuple:  # (host, port[, flow, scope]); AF_UNIX has none
                self.host = peer[0].encode("ascii", "replace")
                self.port = peer[1]
            else:
                self.host, self.port = b"", 0
        self._pack(self.mem, self.request_at, start, HANDLING, len(raw), start, raw,
                   self.host, self.port)

    def response(self, exchange: Any) -> int:
        """Count one response (an Exchange: status, bytes_sent, start); its duration in µs."""
        duration = int((_monotonic() - exchange.start) * 1_000_000)
        counters = self.counters
        counters[0] += 1  # REQUESTS
        counters[1] += exchange.bytes_sent  # BYTES
        self.codes[exchange.status] += 1  # the classes are summed from these at flush
        counters[8] += duration  # DURATION_SUM
        # BUCKET0 + bucket; most requests take under a millisecond: no bisect for those
        counters[9 if duration < 1000 else 9 + _bisect(BUCKETS, duration)] += 1
        self.mem[self.state_at] = 5  # KEEPALIVE
        return duration

    def refused(self, status: int, size: int, start: float) -> int:
        """Count the response to a request the protocol refused (400, 408, 413, 414, 431,
        505...): `size` bytes sent, the head begun at `start`; its duration in µs."""
        duration = max(0, int((_monotonic() - start) * 1_000_000))
        counters = self.counters
        counters[REQUESTS] += 1
        counters[BYTES] += size
        if 0 <= status < _CODE_SPACE:
            self.codes[status] += 1
        counters[DURATION_SUM] += duration
        counters[BUCKET0 + _bisect(BUCKETS, duration)] += 1
        return duration

    def set_state(self, state: int) -> None:
        self.mem[self.state_at] = state

    def flush(self, connections: int) -> None:
        counters = self.counters
        counters[CONNECTIONS] = connections
        codes = self.codes
        for index in range(5):
            counters[CLASS0 + index] = sum(codes[100 * index + 100:100 * index + 200])
        places = self.places
        if counters[REQUESTS] != self.counted and len(places) < CODE_PLACES - 1:
            self.counted = counters[REQUESTS]
            for code in range(100, 600):
                if codes[code] and code not in places and len(places) < CODE_PLACES - 1:
                    places.append(code)
        counts = [codes[code] for code in places]
        other = sum(counters[CLASS0:CLASS0 + 5]) - sum(counts)
        padding = CODE_PLACES - 1 - len(places)
        _COUNTS.pack_into(self.mem, self.slot.base + _OFF_COUNTS, *counters, *places,
                          *([0] * padding), OTHER_CODE if other else 0, *counts,
                          *([0] * padding), other)


def count_refusal(status: int, size: int, start: float) -> int:
    """For the worker's loop: count a protocol refusal with this process's meter (see
    Meter.refused); returns its duration in µs (also when there is no meter)."""
    meter = Meter.current
    if meter is None:
        return max(0, int((_monotonic() - start) * 1_000_000))
    return meter.refused(status, size, start)


def _client(host: bytes, port: int) -> str:
    """A slot's client address as people write it: "host:port", "[v6 host]:port" or ""."""
    text = host.rstrip(b"\0").decode("ascii", "replace")
    if not text:
        return ""
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


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
         request_start, line, host, port) = fields[:13]
        counters = fields[13:13 + COUNTERS]
        return SlotView(index, pid, generation, number,
                        STATES[state] if state < len(STATES) else "unknown", bool(recycle),
                        EXIT_REASONS[reason] if reason < len(EXIT_REASONS) else "unknown",
                        beat, started, request_start, counters[REQUESTS], counters[BYTES],
                        counters[CONNECTIONS], line[:min(length, _LINE)].decode("latin-1"),
                        counters, _client(host, port), fields[13 + COUNTERS:])
