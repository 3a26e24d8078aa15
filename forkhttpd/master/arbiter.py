"""The master loop: the one reaper (waitpid) and the keeper of N ready workers. It binds
nothing and imports no application code; it runs one zygote per code generation (which
imports the app once and forks that generation's workers) and keeps N ready workers,
whatever happens.

Workers are forked by their zygote through a short-lived intermediate, and the master is a
child subreaper (PR_SET_CHILD_SUBREAPER), so every worker becomes the master's own child: the
master alone reaps them and learns their true exit status.

One loop, one thread: wait (select) on the signal pipe and the zygotes' pipes -> act on the
signals received -> read the zygotes' messages -> reap -> supervise -> plan and act. Signal
handlers do nothing; set_wakeup_fd turns each signal into a byte on the pipe.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from setproctitle import setproctitle

from ..runtime import logs, systemd
from ..runtime.hooks import (
    MASTER_HOOKS,
    HookError,
    Hooks,
    ServerView,
    WorkerView,
    load_hooks,
    settings_view,
)
from ..runtime.scoreboard import Scoreboard
from ..runtime.signals import SignalQueue
from .autoreload import FileWatcher
from .children import become_subreaper, send
from .generations import Generation, Generations, StartupError
from .listeners import BindError, close_listeners, describe
from .planning import plan_workers
from .status import Observer
from .supervise import WorkerRecord

if TYPE_CHECKING:
    from ..interfaces import Adapter

__all__ = ["Arbiter", "StartupError"]

log = logs.error_log
_TICK = 0.2  # the loop's pace: heartbeats, RSS samples, readiness
_FAST_TICK = 0.02  # while a worker nears --max-rss


class Arbiter(Generations):
    """Run the master loop until stopped; `run()` returns the process exit code.

    `make_adapter(settings)` loads the app in a zygote forked from the master; None (the
    command line's case) means the app the settings name, loaded by a zygote that is a
    fresh interpreter (see zygote_entry.py).
    """

    def __init__(self, settings: Any, listeners: list[socket.socket],
                 make_adapter: Callable[[Any], Adapter] | None, app_label: str,
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
        self.next_generation = 1
        self.next_number = 1
        self.stopping = ""  # "", "graceful" or "fast"
        self.stop_deadline = 0.0
        self.serving = False
        self.zygote_backoff = 0.0
        self.zygote_not_before = 0.0
        self.fast_failures = 0
        self.last_fast_death = 0.0
        self.watchful = False
        self.spawn_not_before = 0.0
        self.early_exits: dict[int, int] = {}
        self.last_reload = "none"
        self.last_failure = ""
        self.last_title = ""
        self.started = time.monotonic()
        self.next_watchdog = 0.0
        self.watchdog = systemd.watchdog_interval()
        self.observer = Observer(self)  # observability: counters, status server and file
        self.hooks = Hooks()  # --hooks: the master's own (imported in run())
        self.addresses: tuple[str, ...] = ()  # as the hooks see them (the sockets close)
        self.failed_start: StartupError | None = None  # when_ready raised: stop, then this
        self.watcher = (FileWatcher(settings.reload_extra_file)
                        if getattr(settings, "reload", False) else None)  # --reload

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> int:
        become_subreaper()
        logs.set_role("master")
        self.signals = SignalQueue()
        self._title()
        try:
            self._start_hooks()
            try:
                self.observer.start()
            except BindError as error:
                raise StartupError(f"--status-bind: {error}") from None
            if self.watcher is not None:
                log.warning("--reload: the app's source files are watched and a change "
                            "reloads it; for development, not for production")
            self._start_generation()
            while True:
                readable = [self.signals.read_fd] + [
                    g.msg_r for g in self.generations.values() if g.msg_r >= 0]
                if self.watcher is not None and self.watcher.fileno() >= 0:
                    readable.append(self.watcher.fileno())
                try:
                    ready, writable, _ = select.select(
                        readable + self.observer.read_fds(), self.observer.write_fds(), [],
                        _FAST_TICK if self.watchful else _TICK)
                except InterruptedError:
                    ready, writable = [], []
                for signum in self.signals.pending():
                    self._on_signal(signum)
                if self.watcher is not None:
                    self._watch(ready)
                for gen in list(self.generations.values()):
                    if gen.msg_r >= 0 and gen.msg_r in ready:
                        self._read_zygote(gen)
                now = time.monotonic()
                self._reap(now)
                self._supervise(now)
                self.observer.step(ready, writable, now)
                if self.stopping:
                    if not any(w.pid > 0 for w in self.workers.values()) or (
                            now >= self.stop_deadline):
                        return self._finish(now)
                else:
                    self._manage(now)
                    self._ping_watchdog(now)
                self._title()
        finally:
            if self.watcher is not None:
                self.watcher.close()
            self.observer.close()
            self.signals.close()
            self.board.close_fd()

    # -- hooks and --reload -----------------------------------------------------------------
    def _start_hooks(self) -> None:
        """Import the hooks module (its master hooks) and run on_starting."""
        self.addresses = tuple(self._addresses())
        try:
            self.hooks = load_hooks(getattr(self.settings, "hooks", None), MASTER_HOOKS)
        except HookError as error:
            if error.details:
                log.error("the hooks module's traceback:\n%s", error.details.rstrip("\n"))
            raise StartupError(str(error)) from None
        try:
            self.hooks.call_or_raise("on_starting", self.server_view())
        except HookError as error:
            raise self._hook_failed(error) from None

    def _hook_failed(self, error: HookError) -> StartupError:
        """on_starting or when_ready raised: logged with its traceback; the start fails."""
        log.error("%s; the server does not start\n%s", error, error.details.rstrip("\n"))
        return StartupError(str(error), code=1)

    def server_view(self) -> ServerView:
        """What a master hook is told of the server (runtime.hooks.ServerView)."""
        gen = self.current or self.pending
        return ServerView(self.pid, gen.number if gen else 0, self.num_workers,
                          self.app_label, self.addresses, settings_view(self.settings))

    def _child_exited(self, record: WorkerRecord, requests: int, reason: str,
                      how: str) -> None:
        if self.hooks.has("child_exit"):
            self.hooks.call("child_exit", self.server_view(), WorkerView(
                record.pid, record.number, record.generation, self.pid, self.app_label,
                settings_view(self.settings), reason, how, requests))

    def _reload_hooks(self) -> None:
        """The hooks module, imported again (edits take effect with the reload, as they do
        in the new generation's zygote); one that fails now leaves the master's hooks as
        they were (the new generation fails on it too, and the old one serves on)."""
        spec = getattr(self.settings, "hooks", None)
        if spec or self.hooks:
            try:
                self.hooks = load_hooks(spec, MASTER_HOOKS)
            except HookError as error:
                log.error("reload: %s; the master keeps its hooks%s", error,
                          "\n" + error.details.rstrip("\n") if error.details else "")
        self.hooks.call("on_reload", self.server_view())

    def _sources(self, message: dict[str, Any]) -> None:
        if self.watcher is not None:
            files = [str(path) for path in message.get("files", ())]
            if message.get("ok"):
                self.watcher.set_files(files)
            else:
                self.watcher.add_files(files)

    def _watch(self, ready: list[int]) -> None:
        """--reload: a change to the app's files reloads, as SIGHUP does (once serving)."""
        watcher = self.watcher
        assert watcher is not None
        now = time.monotonic()
        if watcher.fileno() >= 0 and watcher.fileno() in ready:
            watcher.read(now)
        watcher.poll(now)  # (without inotify) a change seen while loading counts later
        if not self.serving or self.stopping:
            return  # the changes wait: a reload needs a serving generation
        changed = watcher.due(now)
        if changed:
            shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more"
                                              if len(changed) > 3 else "")
            log.info("--reload: %s changed", shown)
            self.reload()

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.reload()
        elif signum == signal.SIGTERM:
            self.stop(graceful=True)
        elif signum in (signal.SIGINT, signal.SIGQUIT):
            self.stop(graceful=False)
        elif signum == signal.SIGTTIN and not self.stopping:
            if self.num_workers >= self.board.capacity // 2:  # room for a rolling reload
                log.warning("TTIN: already %d workers, the most there can be",
                            self.num_workers)
                return
            self.num_workers += 1
            log.info("TTIN: %d workers wanted", self.num_workers)
        elif signum == signal.SIGTTOU and not self.stopping:
            self.num_workers = max(1, self.num_workers - 1)
            log.info("TTOU: %d workers wanted", self.num_workers)
        elif signum == signal.SIGUSR1:
            logs.reopen_logs()
            log.info("USR1: log files reopened; telling the zygotes and workers")
            for gen in self.generations.values():
                send(gen.zygote_pid, signal.SIGUSR1)
            for record in self.workers.values():
                send(record.pid, signal.SIGUSR1)

    # -- reaping ----------------------------------------------------------------------------
    def _reap(self, now: float) -> None:
        """The one waitpid(-1) of forkhttpd: workers, zygotes, and orphans of the app's."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            record = self.workers.pop(pid, None)
            if record is not None:
                self._worker_exited(record, status, now)
                continue
            for gen in list(self.generations.values()):
                if gen.zygote_pid == pid:
                    self._zygote_exited(gen, status)
                    break
            else:
                # A worker whose PID its zygote has not told yet, or an orphan of the app's
                # re-parented to us (we are a subreaper): remember a few, in case.
                self.early_exits[pid] = status
                while len(self.early_exits) > 64:
                    del self.early_exits[next(iter(self.early_exits))]

    # -- keeping N workers ------------------------------------------------------------------
    def _manage(self, now: float) -> None:
        gen = self.current
        if gen is None or gen.state == "failed":
            if self.pending is None and now >= self.zygote_not_before:
                self.current = None
                if gen is not None:
                    self._forget_if_done(gen)
                self._start_generation()
            return
        if gen.state != "ready":
            return
        plan = plan_workers(list(self.workers.values()), gen.number, self.num_workers)
        for pid, reason in plan.retire:
            record = self.workers.get(pid)
            if record is not None:
                self._retire(record, reason)
        if plan.spawn and now >= self.spawn_not_before:
            for _ in range(plan.spawn):
                self._spawn(gen, now)
        ready = sum(1 for w in self.workers.values() if w.ready and not w.retiring)
        if not self.serving and ready >= self.num_workers and not self.failed_start:
            try:
                self.hooks.call_or_raise("when_ready", self.server_view())
            except HookError as error:
                # The workers run: stop them (fast), then run() ends with this StartupError.
                self.failed_start = self._hook_failed(error)
                self.stop(graceful=False)
                return
            self.serving = True
            self.observer.refresh()
            log.info("serving on %s with %d workers", ", ".join(self._addresses()),
                     self.num_workers)
            systemd.notify("READY=1", f"MAINPID={self.pid}", self._status_line())
            if self.on_ready is not None:
                self.on_ready()
        if self.last_reload == "rolling" and self.pending is None and not any(
                w.generation != gen.number for w in self.workers.values()):
            self.last_reload = f"ok: generation {gen.number}"
            self.observer.reloaded(True)
            self.observer.refresh()
            log.info("reload complete: generation %d serves", gen.number)
            systemd.notify("READY=1", self._status_line())

    def _spawn(self, gen: Generation, now: float) -> None:
        slot = self.board.free_index({w.slot for w in self.workers.values()})
        number = self.next_number
        self.next_number += 1
        self.board.claim(slot, 0, gen.number, number, now, time.time())
        placeholder = WorkerRecord(-(slot + 1), number, gen.number, slot, now)
        self.workers[placeholder.pid] = placeholder  # until the zygote tells the PID
        try:
            os.write(gen.cmd_w, f"{slot},{number}\n".encode())
        except OSError:
            del self.workers[placeholder.pid]
            self.board.release(slot)

    # -- stopping ---------------------------------------------------------------------------
    def stop(self, graceful: bool) -> None:
        """TERM: graceful (workers drain the backlog and finish); INT, QUIT: fast."""
        if self.stopping == "fast" or (self.stopping and graceful):
            return
        self.stopping = "graceful" if graceful else "fast"
        systemd.notify("STOPPING=1")
        timeout = self.settings.graceful_timeout if graceful else 1.0
        self.stop_deadline = time.monotonic() + timeout
        log.info("%s stop: %d workers", self.stopping,
                 sum(1 for w in self.workers.values() if w.pid > 0))
        # New connections are refused from the moment the workers have taken what is queued
        # (each closes its copy then), instead of waiting in a backlog nobody will take until
        # the last process exits and they are reset. A socket systemd holds stays open.
        close_listeners(self.listeners)
        for gen in self.generations.values():
            self._retire_zygote(gen)
            send(gen.zygote_pid, signal.SIGTERM)
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        for record in list(self.workers.values()):
            if record.retiring and graceful:
                continue  # already finishing its requests
            record.retiring = ""
            self._retire(record, "shutdown", sig)

    def _finish(self, now: float) -> int:
        for record in self.workers.values():
            if record.pid > 0:
                log.warning("worker %d (pid %d) outlived the stop; SIGKILL", record.number,
                            record.pid)
                record.kill_reason = "shutdown"
                send(record.pid, signal.SIGKILL)
        deadline = now + 2.0
        while any(w.pid > 0 for w in self.workers.values()) and time.monotonic() < deadline:
            self._reap(time.monotonic())
            time.sleep(0.02)
        for gen in self.generations.values():
            send(gen.zygote_pid, signal.SIGKILL)
            for fd in (gen.cmd_w, gen.msg_r):
                if fd >= 0:
                    os.close(fd)
            gen.cmd_w = gen.msg_r = -1  # the reaper below must not read a closed pipe
        self._reap(time.monotonic())
        log.info("stopped")
        if self.failed_start is not None:
            raise self.failed_start
        return 0

    # -- small things ---------------------------------------------------------------------
    def _addresses(self) -> list[str]:
        return [describe(sock) for sock in self.listeners]

    def _status_line(self) -> str:
        return "STATUS=" + self.observer.summary()

    def _title(self) -> None:
        gen = self.current.number if self.current else 0
        if self.stopping:
            state = "stopping"
        elif not self.serving:
            state = "starting"
        elif self.pending is not None or self.last_reload in ("loading", "rolling"):
            state = "reloading"
        else:
            state = "serving"
        count = sum(1 for w in self.workers.values() if not w.retiring)
        title = f"forkhttpd: master [{self.app_label}] gen {gen} {state} workers {count}"
        if title != self.last_title:
            setproctitle(title)
            self.last_title = title

    def _ping_watchdog(self, now: float) -> None:
        if self.watchdog and now >= self.next_watchdog:
            systemd.notify("WATCHDOG=1")
            self.next_watchdog = now + self.watchdog
