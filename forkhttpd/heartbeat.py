"""The scoreboard: one fixed-size slot per worker in an anonymous shared mmap, written by the
worker's own loop and read by the master; must not import psutil, serve, worker or arbiter.

The master creates it before the first fork, so zygotes and workers inherit the same pages.
A worker writes only its own slot; the master reads every slot and clears a slot when it
hands it to a new worker. Times are time.monotonic() (one clock for the whole machine).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

__all__ = ["Scoreboard", "Slot", "SlotView", "STATES", "EXIT_REASONS"]

# state codes
FREE, STARTING, IDLE, READING, HANDLING, KEEPALIVE, EXITING = range(7)
STATES = ("free", "starting", "idle", "reading", "handling", "keep-alive", "exiting")

# why a worker left on its own (the master knows the reasons it caused itself)
EXIT_REASONS = ("", "max-requests", "lifetime", "shutdown", "master-gone", "app-error", "rss")

_LINE = 200
# pid, generation, worker number, state, wants_recycle, exit_reason, pad,
# last_beat, started, request_start, requests, bytes_sent, connections, line length, line
_FORMAT = struct.Struct(f"<iiiBBBxdddQQII{_LINE}s")
SLOT_SIZE = 512
assert _FORMAT.size <= SLOT_SIZE

_OFF_STATE = 12
_OFF_RECYCLE = 13
_OFF_EXIT = 14
_BEAT = struct.Struct("<d")
_OFF_BEAT = 16
_OFF_REQ_START = 32
_COUNTS = struct.Struct("<QQI")
_OFF_COUNTS = 40
_LINE_HEAD = struct.Struct("<I")
_OFF_LINE_LEN = 60
_OFF_LINE = 64


@dataclass(frozen=True)
class SlotView:
    """A consistent-enough copy of one slot for the master (fields are written one by one)."""

    index: int
    pid: int
    generation: int
    number: int
    state: str
    wants_recycle: bool
    exit_reason: str
    last_beat: float
    started: float
    request_start: float
    requests: int
    bytes_sent: int
    connections: int
    request_line: str


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
        mem, base = self.board.mem, self.base
        raw = line.encode("latin-1", "replace")[:_LINE]
        _BEAT.pack_into(mem, base + _OFF_REQ_START, now)
        _LINE_HEAD.pack_into(mem, base + _OFF_LINE_LEN, len(raw))
        mem[base + _OFF_LINE:base + _OFF_LINE + len(raw)] = raw
        mem[base + _OFF_STATE] = HANDLING

    def counts(self, requests: int, bytes_sent: int, connections: int) -> None:
        _COUNTS.pack_into(self.board.mem, self.base + _OFF_COUNTS, requests, bytes_sent,
                          connections)

    def want_recycle(self, reason: int) -> None:
        mem = self.board.mem
        mem[self.base + _OFF_EXIT] = reason
        mem[self.base + _OFF_RECYCLE] = 1

    def set_exit_reason(self, reason: int) -> None:
        self.board.mem[self.base + _OFF_EXIT] = reason


class Scoreboard:
    """`capacity` slots in one shared anonymous mapping."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self.mem = mmap.mmap(-1, capacity * SLOT_SIZE)

    def slot(self, index: int) -> Slot:
        return Slot(self, index)

    def claim(self, index: int, pid: int, generation: int, number: int, now: float,
              wall: float) -> None:
        """The master hands slot `index` to a new worker (pid may be 0 until known)."""
        _FORMAT.pack_into(self.mem, index * SLOT_SIZE, pid, generation, number, STARTING, 0, 0,
                          now, wall, 0.0, 0, 0, 0, 0, b"")

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
        (pid, generation, number, state, recycle, reason, beat, started, request_start,
         requests, bytes_sent, connections, length, line) = _FORMAT.unpack_from(
            self.mem, index * SLOT_SIZE)
        return SlotView(index, pid, generation, number,
                        STATES[state] if state < len(STATES) else "unknown", bool(recycle),
                        EXIT_REASONS[reason] if reason < len(EXIT_REASONS) else "unknown",
                        beat, started, request_start, requests, bytes_sent, connections,
                        line[:min(length, _LINE)].decode("latin-1"))
