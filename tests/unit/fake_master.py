"""Fakes that let a test drive the real Arbiter in-process: a fake kernel (children.System: a
fake clock, signals recorded, exits queued for the reaper, pipes as byte buffers) and fake
zygotes and workers that answer the way real ones do. No fork, no signal, no sleep.

Fake PIDs start above Linux's largest pid_max (2**22), so that the psutil handle the
supervisor makes for a worker can never find a real process.
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from forkhttpd.config.settings import load_settings
from forkhttpd.master.arbiter import Arbiter
from forkhttpd.master.children import System
from forkhttpd.runtime import logs
from forkhttpd.runtime.scoreboard import IDLE

FAKE_PID = 5_000_000
_FD = 10_000  # fake descriptors: never passed to the real os


def exited(code: int = 0) -> int:
    """A wait status for an exit with `code`."""
    return code << 8


def killed(signum: int) -> int:
    """A wait status for a death by `signum`."""
    return signum


class FakeSystem(System):
    def __init__(self) -> None:
        self.clock = 1000.0
        self.sent: list[tuple[int, int]] = []  # (pid, signal), in order
        self.exits: list[tuple[int, int]] = []  # (pid, status) waiting for the reaper
        self.inbox: dict[int, bytearray] = {}  # a pipe's read end -> bytes in it
        self.eof: set[int] = set()  # read ends whose writer is gone
        self.written: dict[int, bytearray] = {}  # a pipe's write end -> bytes written
        self.closed: set[int] = set()
        self.notified: list[tuple[str, ...]] = []
        self.titles: list[str] = []

    def now(self) -> float:
        return self.clock

    def signal(self, pid: int, sig: int) -> None:
        if pid > 0:
            self.sent.append((pid, sig))

    def reap(self) -> tuple[int, int] | None:
        return self.exits.pop(0) if self.exits else None

    def read(self, fd: int) -> bytes | None:
        data = self.inbox.get(fd)
        if data:
            out = bytes(data)
            data.clear()
            return out
        return b"" if fd in self.eof else None

    def write(self, fd: int, data: bytes) -> bool:
        if fd in self.closed:
            return False
        self.written.setdefault(fd, bytearray()).extend(data)
        return True

    def close(self, fd: int) -> None:
        self.closed.add(fd)

    def sleep(self, seconds: float) -> None:
        self.clock += seconds

    def title(self, text: str) -> None:
        self.titles.append(text)

    def notify(self, *lines: str) -> None:
        self.notified.append(lines)

    def readable(self) -> list[int]:
        return [fd for fd, data in self.inbox.items() if data] + sorted(self.eof)

    def signals_to(self, pid: int) -> list[int]:
        return [sig for target, sig in self.sent if target == pid]


@dataclass
class FakeWorker:
    pid: int
    generation: int
    slot: int
    healthy: bool = True  # becomes ready at the next step; False: dies as it starts
    alive: bool = True
    beating: bool = True  # False: stuck in a handler, its heartbeat stops


@dataclass
class FakeZygote:
    """A zygote as the master sees it: says R or F when told to, forks what it is asked."""

    number: int
    pid: int
    cmd_w: int
    msg_r: int
    loaded: bool = False
    alive: bool = True
    answered: int = 0  # command bytes already answered
    workers_healthy: bool = True
    forked: list[FakeWorker] = field(default_factory=list)


class Rig:
    """The real Arbiter with fake zygotes and workers; `step()` is one loop pass."""

    def __init__(self, workers: int = 2, reread: Any = None, argv: list[str] | None = None
                 ) -> None:
        self.system = FakeSystem()
        self.zygotes: dict[int, FakeZygote] = {}
        self.workers: dict[int, FakeWorker] = {}
        self.next_pid = FAKE_PID
        self.next_fd = _FD
        settings = load_settings(["--workers", str(workers), *(argv or [])], {})
        self.arbiter = Arbiter(settings, [], None, "app:app", reread_settings=reread,
                               system=self.system, launch=self._launch)
        self.ready_history: list[int] = []  # ready workers after each step, once serving

    # -- the fake zygote launcher -------------------------------------------------------
    def _launch(self, number: int, settings: Any, app_label: str) -> tuple[int, int, int]:
        pid, cmd_w, msg_r = self._pid(), self._fd(), self._fd()
        self.zygotes[number] = FakeZygote(number, pid, cmd_w, msg_r)
        return pid, cmd_w, msg_r

    def _pid(self) -> int:
        self.next_pid += 1
        return self.next_pid

    def _fd(self) -> int:
        self.next_fd += 1
        return self.next_fd

    def _say(self, zygote: FakeZygote, message: dict[str, Any]) -> None:
        self.system.inbox.setdefault(zygote.msg_r, bytearray()).extend(
            json.dumps(message).encode() + b"\n")

    # -- what happens to zygotes ------------------------------------------------------------
    def load(self, number: int) -> None:
        """The zygote of generation `number` imported the app."""
        zygote = self.zygotes[number]
        zygote.loaded = True
        self._say(zygote, {"t": "R"})

    def fail(self, number: int, msg: str = "ImportError: broken",
             details: str = "Traceback...\nImportError: broken\n") -> None:
        """The zygote could not import the app: it says so and exits (code 2)."""
        zygote = self.zygotes[number]
        self._say(zygote, {"t": "F", "msg": msg, "details": details})
        self.zygote_exits(number, exited(2))

    def zygote_exits(self, number: int, status: int) -> None:
        zygote = self.zygotes[number]
        if zygote.alive:
            zygote.alive = False
            self.system.eof.add(zygote.msg_r)
            self.system.exits.append((zygote.pid, status))

    def worker_exits(self, pid: int, status: int = 0) -> None:
        worker = self.workers[pid]
        if worker.alive:
            worker.alive = False
            self.system.exits.append((pid, status))

    # -- one pass ---------------------------------------------------------------------------
    def step(self, *signals: int, seconds: float = 0.2) -> int | None:
        """What the processes do since the last pass, then one pass of the master's loop."""
        self.system.clock += seconds
        self._processes_act()
        code = self.arbiter.tick(list(signals), self.system.readable())
        if self.arbiter.serving and not self.arbiter.stopping:
            self.ready_history.append(self.arbiter.crew.ready())
        return code

    def run(self, steps: int = 30) -> None:
        """Steps until nothing is left to do (bounded)."""
        for _ in range(steps):
            self.step()

    def _processes_act(self) -> None:
        board = self.arbiter.board
        for worker in self.workers.values():  # signals received, heartbeats
            if not worker.alive:
                continue
            got = self.system.signals_to(worker.pid)
            if any(sig in (signal.SIGTERM, signal.SIGQUIT) for sig in got):
                self.worker_exits(worker.pid, exited(0))
            elif signal.SIGKILL in got:
                self.worker_exits(worker.pid, killed(signal.SIGKILL))
            elif not worker.healthy:
                self.worker_exits(worker.pid, exited(1))
            elif worker.beating:
                board.slot(worker.slot).set_state(IDLE)
                board.slot(worker.slot).beat(self.system.clock)
        for zygote in self.zygotes.values():
            if not zygote.alive:
                continue
            got = self.system.signals_to(zygote.pid)
            if signal.SIGKILL in got:
                self.zygote_exits(zygote.number, killed(signal.SIGKILL))
                continue
            if signal.SIGTERM in got:
                self.zygote_exits(zygote.number, exited(0))
                continue
            if zygote.loaded:
                self._fork_asked(zygote)
            if zygote.cmd_w in self.system.closed and zygote.loaded:
                self.zygote_exits(zygote.number, exited(0))  # EOF: forks done, it exits

    def _fork_asked(self, zygote: FakeZygote) -> None:
        commands = bytes(self.system.written.get(zygote.cmd_w, b""))
        for line in commands[zygote.answered:].splitlines():
            slot, _number = (int(x) for x in line.decode().split(","))
            worker = FakeWorker(self._pid(), zygote.number, slot,
                                healthy=zygote.workers_healthy)
            self.workers[worker.pid] = worker
            zygote.forked.append(worker)
            self._say(zygote, {"t": "W", "slot": slot, "pid": worker.pid, "n": _number})
        zygote.answered = len(commands)

    def close(self) -> None:
        self.arbiter.board.close_fd()

    # -- looking -------------------------------------------------------------------------
    def serve(self) -> None:
        """Start: generation 1 loads, its workers come up, the master serves."""
        self.arbiter.start()
        self.load(1)
        self.run(5)
        assert self.arbiter.serving

    def live_workers(self) -> list[FakeWorker]:
        return [w for w in self.workers.values() if w.alive]

    def generations_serving(self) -> set[int]:
        return {w.generation for w in self.live_workers()}

    def state(self, number: int) -> str:
        gen = self.arbiter.gens.all.get(number)
        return gen.state.value if gen is not None else "forgotten"

    def notified(self, prefix: str) -> list[str]:
        return [line for lines in self.system.notified for line in lines
                if line.startswith(prefix)]


class Captured(logging.Handler):
    """The error log's lines, as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __contains__(self, text: object) -> bool:
        return any(str(text) in line for line in self.lines)

    def count(self, text: str) -> int:
        return sum(1 for line in self.lines if text in line)


def capture_log() -> Iterator[Captured]:
    """A generator for a pytest fixture: the master's log lines while a test runs."""
    handler = Captured()
    level = logs.error_log.level
    logs.error_log.addHandler(handler)
    logs.error_log.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logs.error_log.removeHandler(handler)
        logs.error_log.setLevel(level)


__all__ = ["Captured", "FAKE_PID", "FakeSystem", "Rig", "capture_log", "exited", "killed"]
