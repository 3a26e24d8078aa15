"""The master loop: the one reaper (waitpid) and the keeper of N ready workers. It binds
nothing and imports no application code; it runs one zygote per code generation (which
imports the app once and forks that generation's workers) and keeps N ready workers,
whatever happens.

Workers are forked by their zygote through a short-lived intermediate, and the master is a
child subreaper (PR_SET_CHILD_SUBREAPER), so every worker becomes the master's own child: the
master alone reaps them and learns their true exit status.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from setproctitle import setproctitle

from .. import logs, systemd
from ..heartbeat import Scoreboard
from ..interfaces import Adapter
from ..listeners import BindError, describe
from ..planning import plan_workers
from ..signals import SignalQueue
from ..status import Observer
from ..supervision import Sample, watch
from .children import become_subreaper, describe_status, send
from .supervise import Supervising
from .zygote import zygote_main

__all__ = ["Arbiter", "StartupError"]

log = logs.error_log
_TICK = 0.2


class StartupError(Exception):
    """The first generation could not start; str() is the one-line reason, `details` more."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


@dataclass
class Generation:
    number: int
    zygote_pid: int
    cmd_w: int
    msg_r: int
    state: str = "loading"  # loading -> ready | failed; retired once superseded
    buffer: bytes = b""
    failure: str = ""
    details: str = ""


@dataclass
class WorkerRecord:
    pid: int
    number: int
    generation: int
    slot: int
    spawned: float
    process: Any = None
    ready: bool = False
    replacing: str = ""  # a recycle reason: replaced first, then retired
    retiring: str = ""  # the reason the master asked it to stop
    retire_deadline: float = 0.0
    kill_reason: str = ""
    timeout_stage: int = 0
    stage_since: float = 0.0
    over_rss_since: float | None = None
    sample: Sample = field(default_factory=lambda: Sample(alive=True))


class Arbiter(Supervising):
    """Run the master loop until stopped; `run()` returns the process exit code."""

    def __init__(self, settings: Any, listeners: list[socket.socket],
                 make_adapter: Callable[[Any], Adapter], app_label: str,
                 reread_settings: Callable[[], Any] | None = None,
                 on_ready: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.listeners = listeners
        self.make_adapter = make_adapter
        self.app_label = app_label
        self.reread_settings = reread_settings
        self.on_ready = on_ready
        self.pid = os.getpid()
        self.num_workers = settings.workers
        self.board = Scoreboard(max(256, settings.workers * 4))
        self.workers: dict[int, WorkerRecord] = {}
        self.generations: dict[int, Generation] = {}
        self.current: Generation | None = None
        self.pending: Generation | None = None
        self.next_number = 1
        self.stopping = ""  # "", "graceful" or "fast"
        self.stop_deadline = 0.0
        self.serving = False
        self.zygote_backoff = 0.0
        self.zygote_not_before = 0.0
        self.last_reload = "none"
        self.started = time.monotonic()
        self.next_watchdog = 0.0
        self.watchdog = systemd.watchdog_interval()
        self.observer = Observer(self)  # observability: counters, status server and file

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> int:
        become_subreaper()
        logs.set_role("master")
        self.signals = SignalQueue()
        self._title()
        try:
            try:
                self.observer.start()
            except BindError as error:
                raise StartupError(f"--status-bind: {error}") from None
            self._start_generation()
            while True:
                readable = [self.signals.read_fd] + [
                    g.msg_r for g in self.generations.values() if g.msg_r >= 0]
                try:
                    ready, writable, _ = select.select(
                        readable + self.observer.read_fds(), self.observer.write_fds(), [],
                        _TICK)
                except InterruptedError:
                    ready, writable = [], []
                for signum in self.signals.pending():
                    self._on_signal(signum)
                for gen in list(self.generations.values()):
                    if gen.msg_r in ready:
                        self._read_zygote(gen)
                self._reap()
                now = time.monotonic()
                self._supervise(now)
                self.observer.step(ready, writable, now)
                if self.stopping:
                    if not self.workers or now >= self.stop_deadline:
                        return self._finish(now)
                else:
                    self._manage(now)
                    self._ping_watchdog(now)
        finally:
            self.observer.close()
            self.signals.close()

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.reload()
        elif signum == signal.SIGTERM:
            self.stop(graceful=True)
        elif signum in (signal.SIGINT, signal.SIGQUIT):
            self.stop(graceful=False)
        elif signum == signal.SIGTTIN:
            self.num_workers += 1
            log.info("TTIN: %d workers wanted", self.num_workers)
        elif signum == signal.SIGTTOU:
            self.num_workers = max(1, self.num_workers - 1)
            log.info("TTOU: %d workers wanted", self.num_workers)
        elif signum == signal.SIGUSR1:
            logs.reopen_logs()
            for record in self.workers.values():
                self._kill(record.pid, signal.SIGUSR1)

    # -- generations and zygotes ------------------------------------------------------------
    def _start_generation(self) -> None:
        number = max(self.generations, default=0) + 1
        cmd_r, cmd_w = os.pipe()
        msg_r, msg_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(cmd_w)
            os.close(msg_r)
            zygote_main(self, number, cmd_r, msg_w)  # never returns
        os.close(cmd_r)
        os.close(msg_w)
        os.set_blocking(msg_r, False)
        gen = Generation(number, pid, cmd_w, msg_r)
        self.generations[number] = gen
        if self.current is None:
            self.current = gen
        else:
            self.pending = gen
        (log.info if self.serving else log.debug)(
            "generation %d: zygote %d is loading %s", number, pid, self.app_label)

    def _read_zygote(self, gen: Generation) -> None:
        try:
            data = os.read(gen.msg_r, 65536)
        except BlockingIOError:
            return
        if not data:
            os.close(gen.msg_r)
            gen.msg_r = -1
            data = b"\n"
        gen.buffer += data
        *lines, gen.buffer = gen.buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._zygote_message(gen, json.loads(line))

    def _zygote_message(self, gen: Generation, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "R":
            gen.state = "ready"
            self.zygote_backoff = 0.0
            if gen is self.pending:
                previous, self.current, self.pending = self.current, gen, None
                log.info("reload: generation %d loaded; rolling workers over", gen.number)
                if previous is not None:
                    self._retire_zygote(previous)
        elif kind == "F":
            gen.state = "failed"
            gen.failure = message.get("msg", "")
            gen.details = message.get("details", "")
            self._generation_failed(gen)
        elif kind == "W":
            record = WorkerRecord(message["pid"], message["n"], gen.number, message["slot"],
                                  time.monotonic())
            record.process = watch(record.pid)
            self.board.set_pid(record.slot, record.pid)
            self.workers[record.pid] = record
            placeholder = self.workers.pop(-record.slot, None)
            if placeholder is not None:
                record.spawned = placeholder.spawned
            if self.stopping:
                self._retire(record, "shutdown")

    def _generation_failed(self, gen: Generation) -> None:
        if not self.serving and gen is self.current:
            raise StartupError(gen.failure, gen.details)
        log.error("generation %d cannot load the app: %s%s", gen.number, gen.failure,
                  ("\nthe app's traceback:\n" + gen.details) if gen.details else "")
        if gen is self.pending:
            self.pending = None
            self.last_reload = f"failed: {gen.failure}"
            self.observer.reloaded(False)
            log.error("reload failed; generation %d keeps serving",
                      self.current.number if self.current else 0)
            systemd.notify("READY=1", f"STATUS=reload failed: {gen.failure}"[:200])
        elif gen is self.current:
            self.zygote_backoff = min(5.0, max(0.5, self.zygote_backoff * 2))
            self.zygote_not_before = time.monotonic() + self.zygote_backoff
            log.error("will try to load the app again in %.1fs", self.zygote_backoff)

    def _retire_zygote(self, gen: Generation) -> None:
        gen.state = "retired"
        if gen.cmd_w >= 0:
            os.close(gen.cmd_w)  # EOF: the zygote exits
            gen.cmd_w = -1

    # -- spawning, retiring ---------------------------------------------------------------
    def _spawn(self, gen: Generation, now: float) -> None:
        taken = {w.slot for w in self.workers.values()}
        slot = self.board.free_index(taken)
        number = self.next_number
        self.next_number += 1
        self.board.claim(slot, 0, gen.number, number, now, time.time())
        placeholder = WorkerRecord(-slot, number, gen.number, slot, now)
        self.workers[-slot] = placeholder  # until the zygote tells us the PID
        try:
            os.write(gen.cmd_w, f"{slot},{number}\n".encode())
        except OSError:
            del self.workers[-slot]
            self.board.release(slot)

    def _retire(self, record: WorkerRecord, reason: str, sig: int = signal.SIGTERM) -> None:
        if record.retiring:
            return
        record.retiring = reason
        record.kill_reason = record.kill_reason or reason
        record.retire_deadline = time.monotonic() + self.settings.graceful_timeout
        if record.pid > 0:
            self._kill(record.pid, sig)

    def _kill(self, pid: int, sig: int) -> None:
        send(pid, sig)

    # -- reaping ----------------------------------------------------------------------------
    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            record = self.workers.pop(pid, None)
            if record is not None:
                self._worker_exited(record, status)
                continue
            for gen in self.generations.values():
                if gen.zygote_pid == pid:
                    self._zygote_exited(gen, status)
                    break

    def _worker_exited(self, record: WorkerRecord, status: int) -> None:
        view = self.board.read(record.slot)
        self.board.release(record.slot)
        how = describe_status(status)
        reason = record.kill_reason or view.exit_reason or (
            "crash" if status != 0 else "exit")
        if reason == "exit" and status == 0:
            reason = "shutdown" if self.stopping else "exit"
        level = log.info if reason in ("shutdown", "reload", "max-requests", "lifetime",
                                       "ttou", "rss") and not os.WIFSIGNALED(status) else (
            log.warning)
        level("worker %d (pid %d, gen %d) exited: reason=%s, %s, served %d requests",
              record.number, record.pid, record.generation, reason, how, view.requests)
        self.observer.worker_exited(record, view, reason, how)

    def _zygote_exited(self, gen: Generation, status: int) -> None:
        gen.zygote_pid = 0
        if gen.cmd_w >= 0:
            os.close(gen.cmd_w)
            gen.cmd_w = -1
        if gen.msg_r >= 0:
            self._read_zygote(gen)
            while gen.msg_r >= 0:
                self._read_zygote(gen)
        if gen.state == "loading":
            gen.state = "failed"
            gen.failure = gen.failure or (
                f"the zygote died while loading ({describe_status(status)})")
            self._generation_failed(gen)
        elif gen is self.current and not self.stopping:
            log.error("zygote of generation %d died (%s); loading the app anew",
                      gen.number, describe_status(status))
            gen.state = "failed"
            self.current = None
        # drop placeholders this zygote will never fill
        for key in [k for k, w in self.workers.items() if k < 0 and w.generation == gen.number]:
            self.board.release(self.workers.pop(key).slot)

    def _manage(self, now: float) -> None:
        gen = self.current
        if gen is None:
            if now >= self.zygote_not_before and self.pending is None:
                self._start_generation()
            return
        if gen.state == "failed" and self.pending is None and now >= self.zygote_not_before:
            self.current = None
            self._start_generation()
            return
        if gen.state != "ready":
            return
        plan = plan_workers(list(self.workers.values()), gen.number, self.num_workers)
        for pid, reason in plan.retire:
            record = self.workers.get(pid)
            if record is not None:
                self._retire(record, reason)
        for _ in range(plan.spawn):
            self._spawn(gen, now)
        ready = sum(1 for w in self.workers.values() if w.ready and not w.retiring)
        if not self.serving and ready >= self.num_workers:
            self.serving = True
            log.info("serving on %s with %d workers", ", ".join(self._addresses()),
                     self.num_workers)
            systemd.notify("READY=1", f"MAINPID={self.pid}", self._status_line())
            if self.on_ready is not None:
                self.on_ready()
        # ops: not while the new generation is still loading (pending), or READY=1 would
        # announce the old generation as the reload's result.
        if self.last_reload.startswith("rolling") and self.pending is None and not any(
                w.generation != gen.number for w in self.workers.values()):
            self.last_reload = f"ok: generation {gen.number}"
            self.observer.reloaded(True)
            log.info("reload complete: generation %d serves", gen.number)
            systemd.notify("READY=1", self._status_line())
        self._title()

    # -- reload and stop ------------------------------------------------------------------
    def reload(self) -> None:
        if self.stopping:
            return
        systemd.notify("RELOADING=1", f"MONOTONIC_USEC={systemd.monotonic_usec()}")
        if self.reread_settings is not None:
            try:
                new = self.reread_settings()
            except Exception as error:  # noqa: BLE001 - a bad config never stops the server
                log.error("reload: configuration rejected, keeping the running one: %s", error)
                self.last_reload = f"failed: {error}"
                self.observer.reloaded(False)
                systemd.notify("READY=1", f"STATUS=reload failed: {error}"[:200])
                return
            if new.workers != self.settings.workers:
                self.num_workers = new.workers
            self.settings = new
        if self.pending is not None:
            log.info("reload: abandoning generation %d, still loading", self.pending.number)
            self._kill(self.pending.zygote_pid, signal.SIGKILL)
            self.pending.state = "failed"
            self.pending = None
        self.last_reload = "rolling"
        self._start_generation()

    def stop(self, graceful: bool) -> None:
        if self.stopping == "fast" or (self.stopping and graceful):
            return
        self.stopping = "graceful" if graceful else "fast"
        systemd.notify("STOPPING=1")
        timeout = self.settings.graceful_timeout if graceful else 1.0
        self.stop_deadline = time.monotonic() + timeout
        log.info("%s stop: %d workers", self.stopping, len(self.workers))
        for gen in self.generations.values():
            self._retire_zygote(gen)
            self._kill(gen.zygote_pid, signal.SIGTERM)
        for record in list(self.workers.values()):
            record.retiring = ""
            self._retire(record, "shutdown", signal.SIGTERM if graceful else signal.SIGQUIT)

    def _finish(self, now: float) -> int:
        for record in self.workers.values():
            if record.pid > 0:
                log.warning("worker %d (pid %d) outlived the stop; SIGKILL", record.number,
                            record.pid)
                self._kill(record.pid, signal.SIGKILL)
        deadline = now + 2.0
        while self.workers and time.monotonic() < deadline:
            self._reap()
            self.workers = {k: v for k, v in self.workers.items() if k > 0}
            time.sleep(0.02)
        for gen in self.generations.values():
            self._kill(gen.zygote_pid, signal.SIGKILL)
        self._reap()
        log.info("stopped")
        return 0

    # -- small things ---------------------------------------------------------------------
    def _addresses(self) -> list[str]:
        return [describe(sock) for sock in self.listeners]

    def _status_line(self) -> str:
        return "STATUS=" + self.observer.summary()

    def _title(self) -> None:
        gen = self.current.number if self.current else 0
        setproctitle(f"forkhttpd: master [{self.app_label}] gen {gen} "
                     f"workers {len([w for w in self.workers.values() if not w.retiring])}")

    def _ping_watchdog(self, now: float) -> None:
        if self.watchdog and now >= self.next_watchdog:
            systemd.notify("WATCHDOG=1")
            self.next_watchdog = now + self.watchdog
