"""The master: the only caller of fork, waitpid and kill. It binds nothing and imports no
application code; it runs one zygote per code generation (which imports the app once and
forks that generation's workers) and keeps N ready workers, whatever happens.

Workers are forked by their zygote through a short-lived intermediate, and the master is a
child subreaper (PR_SET_CHILD_SUBREAPER), so every worker becomes the master's own child: the
master alone reaps them and learns their true exit status.
"""

from __future__ import annotations

import ctypes
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

from . import logs, systemd
from .heartbeat import Scoreboard
from .interfaces import Adapter
from .signals import SignalQueue, reset_signals
from .supervision import Sample, judge, observe, watch
from .worker import run_worker

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


def _become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        log.warning("cannot become a child subreaper; worker exit codes may be lost")


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            return f"signal {signal.Signals(signum).name}"
        except ValueError:
            return f"signal {signum}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


class Arbiter:
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

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> int:
        _become_subreaper()
        logs.set_role("master")
        self.signals = SignalQueue()
        self._title()
        try:
            self._start_generation()
            while True:
                readable = [self.signals.read_fd] + [
                    g.msg_r for g in self.generations.values() if g.msg_r >= 0]
                try:
                    ready, _, _ = select.select(readable, [], [], _TICK)
                except InterruptedError:
                    ready = []
                for signum in self.signals.pending():
                    self._on_signal(signum)
                for gen in list(self.generations.values()):
                    if gen.msg_r in ready:
                        self._read_zygote(gen)
                self._reap()
                now = time.monotonic()
                self._supervise(now)
                if self.stopping:
                    if not self.workers or now >= self.stop_deadline:
                        return self._finish(now)
                else:
                    self._manage(now)
                    self._ping_watchdog(now)
        finally:
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
            self._zygote_main(number, cmd_r, msg_w)  # never returns
        os.close(cmd_r)
        os.close(msg_w)
        os.set_blocking(msg_r, False)
        gen = Generation(number, pid, cmd_w, msg_r)
        self.generations[number] = gen
        if self.current is None:
            self.current = gen
        else:
            self.pending = gen
        log.info("generation %d: zygote %d is loading %s", number, pid, self.app_label)

    def _zygote_main(self, number: int, cmd_r: int, msg_w: int) -> None:
        code = 0
        try:
            reset_signals()
            signal.signal(signal.SIGINT, lambda *_: os._exit(0))
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            for ignored in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN,
                            signal.SIGTTOU):
                signal.signal(ignored, signal.SIG_IGN)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for gen in self.generations.values():  # other generations' pipes
                for fd in (gen.cmd_w, gen.msg_r):
                    if fd >= 0:
                        os.close(fd)
            self.signals.close()
            logs.set_role(f"zygote {number}")
            setproctitle(f"forkhttpd: zygote gen {number} [{self.app_label}]")
            try:
                adapter = self.make_adapter(self.settings)
            except Exception as error:  # noqa: BLE001 - reported to the master, whatever it is
                details = getattr(error, "details", "") or ""
                message = str(error) or type(error).__name__
                os.write(msg_w, (json.dumps({"t": "F", "msg": message, "details": details})
                                 + "\n").encode())
                code = 2
                return
            os.write(msg_w, b'{"t": "R"}\n')
            self._zygote_loop(number, cmd_r, msg_w, adapter)
        except BaseException:  # noqa: BLE001
            log.exception("zygote %d failed", number)
            code = 1
        finally:
            os._exit(code)

    def _zygote_loop(self, number: int, cmd_r: int, msg_w: int, adapter: Adapter) -> None:
        while True:
            line = b""
            while not line.endswith(b"\n"):
                chunk = os.read(cmd_r, 64)
                if not chunk:
                    return  # the master is gone
                line += chunk
            for command in line.decode().split():
                slot, worker_number = (int(x) for x in command.split(","))
                middle = os.fork()
                if middle == 0:
                    worker = os.fork()
                    if worker == 0:
                        os.close(cmd_r)
                        os.close(msg_w)
                        run_worker(adapter, self.listeners, self.settings,
                                   self.board.slot(slot), worker_number, number, self.pid,
                                   self.app_label)
                    os.write(msg_w, (json.dumps({"t": "W", "slot": slot, "pid": worker,
                                                 "n": worker_number}) + "\n").encode())
                    os._exit(0)
                os.waitpid(middle, 0)

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
        if pid <= 0:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

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
        how = _describe_status(status)
        reason = record.kill_reason or view.exit_reason or (
            "crash" if status != 0 else "exit")
        if reason == "exit" and status == 0:
            reason = "shutdown" if self.stopping else "exit"
        level = log.info if reason in ("shutdown", "reload", "max-requests", "lifetime",
                                       "ttou", "rss") and not os.WIFSIGNALED(status) else (
            log.warning)
        level("worker %d (pid %d, gen %d) exited: reason=%s, %s, served %d requests",
              record.number, record.pid, record.generation, reason, how, view.requests)

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
            gen.failure = gen.failure or f"the zygote died while loading ({_describe_status(status)})"
            self._generation_failed(gen)
        elif gen is self.current and not self.stopping:
            log.error("zygote of generation %d died (%s); loading the app anew",
                      gen.number, _describe_status(status))
            gen.state = "failed"
            self.current = None
        # drop placeholders this zygote will never fill
        for key in [k for k, w in self.workers.items() if k < 0 and w.generation == gen.number]:
            self.board.release(self.workers.pop(key).slot)

    # -- supervision ------------------------------------------------------------------------
    def _supervise(self, now: float) -> None:
        settings = self.settings
        grace = min(5.0, max(1.0, settings.timeout / 2))
        for record in list(self.workers.values()):
            if record.pid <= 0:
                continue
            view = self.board.read(record.slot)
            if not record.ready and view.state not in ("starting", "free"):
                record.ready = True
            if record.retiring:
                if now >= record.retire_deadline:
                    log.warning("worker %d (pid %d) did not stop within %.0fs; killing it",
                                record.number, record.pid, settings.graceful_timeout)
                    self._kill(record.pid, signal.SIGKILL)
                    record.retire_deadline = now + 5.0
                continue
            if view.wants_recycle and not record.replacing:
                self._ask_replacement(record, view.exit_reason or "max-requests")
            if now - view.last_beat <= settings.timeout or settings.timeout <= 0:
                record.timeout_stage = 0
            record.sample = observe(record.process)
            rss = record.sample.rss_mib
            if settings.max_rss and rss > settings.max_rss:
                record.over_rss_since = record.over_rss_since or now
            else:
                record.over_rss_since = None
            verdict = judge(now=now, last_beat=view.last_beat, sample=record.sample,
                            timeout=settings.timeout, max_rss=settings.max_rss,
                            over_rss_since=record.over_rss_since,
                            timeout_stage=record.timeout_stage,
                            stage_since=record.stage_since, grace=grace)
            self._act(record, verdict.action, verdict.reason, now, view.request_line)

    def _act(self, record: WorkerRecord, action: str, reason: str, now: float,
             line: str) -> None:
        if action == "ok":
            return
        if action == "recycle":
            self._ask_replacement(record, reason)
            return
        if action == "alarm":
            log.error("worker %d (pid %d) silent for more than %.1fs while serving %r; "
                      "interrupting its handler", record.number, record.pid,
                      self.settings.timeout, line)
            sig = signal.SIGALRM
        elif action == "abort":
            log.error("worker %d (pid %d) still silent; SIGABRT (its stack follows in the "
                      "log)", record.number, record.pid)
            sig = signal.SIGABRT
        else:
            log.error("worker %d (pid %d): SIGKILL (reason=%s, rss %.0f MiB)", record.number,
                      record.pid, reason, record.sample.rss_mib)
            sig = signal.SIGKILL
        if action != "alarm":
            record.kill_reason = reason
        record.timeout_stage += 1
        record.stage_since = now
        self._kill(record.pid, sig)

    def _ask_replacement(self, record: WorkerRecord, reason: str) -> None:
        """A recycle: start a successor first; one per generation at a time (staggered)."""
        busy = any(w.replacing and w.generation == record.generation
                   for w in self.workers.values() if w is not record)
        if busy:
            return
        record.replacing = reason
        log.info("worker %d (pid %d) will be replaced (reason=%s)", record.number,
                 record.pid, reason)

    def _manage(self, now: float) -> None:
        from .planning import plan_workers

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
        if self.last_reload.startswith("rolling") and not any(
                w.generation != gen.number for w in self.workers.values()):
            self.last_reload = f"ok: generation {gen.number}"
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
        from .listeners import describe

        return [describe(sock) for sock in self.listeners]

    def _status_line(self) -> str:
        busy = sum(1 for w in self.workers.values() if w.pid > 0)
        gen = self.current.number if self.current else 0
        return f"STATUS={busy} workers, generation {gen}, last reload: {self.last_reload}"

    def _title(self) -> None:
        gen = self.current.number if self.current else 0
        setproctitle(f"forkhttpd: master [{self.app_label}] gen {gen} "
                     f"workers {len([w for w in self.workers.values() if not w.retiring])}")

    def _ping_watchdog(self, now: float) -> None:
        if self.watchdog and now >= self.next_watchdog:
            systemd.notify("WATCHDOG=1")
            self.next_watchdog = now + self.watchdog


# -- running a whole server in a child process (embedded use: HttpServer(block=False)) ------
def start_in_child(run: Callable[[], int]) -> int:
    """Fork; the child runs `run()` and exits with its result. Returns the child's PID."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = run()
        finally:
            os._exit(code)
    return pid


def stop_child(pid: int, graceful: bool = True, timeout: float = 35.0) -> int | None:
    """Signal a child started by start_in_child and wait for it; its exit code, or None."""
    try:
        os.kill(pid, signal.SIGTERM if graceful else signal.SIGINT)
    except ProcessLookupError:
        pass
    return wait_child(pid, timeout)


def wait_child(pid: int, timeout: float | None = None) -> int | None:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, 0 if deadline is None else os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return os.waitstatus_to_exitcode(status)
        if deadline is not None and time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = None
        time.sleep(0.02)
