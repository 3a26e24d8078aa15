"""The master loop: the one reaper (waitpid) and the keeper of N ready workers; it binds nothing
and never imports application code (zygotes do), and nothing below the master may import it.

One loop, one thread: wait (select) on the signal pipe and the zygotes' pipes -> act on the
signals received (SIGNALS, below) -> hear the zygotes -> reap -> supervise -> manage (plan,
spawn, retire). Signal handlers do nothing; set_wakeup_fd turns each signal into a byte on the
pipe.

The arbiter is composed of two parts with jobs of their own: `Generations` (generations.py:
which code generations exist, their zygotes and pipes) and `Supervisor` (supervise.py: the
workers, their heartbeats and exits). A generation's life is decided by reload.py's state
machine; the arbiter turns what happens into its events and performs the actions it returns.

Workers are forked by their zygote through a short-lived intermediate, and the master is a
child subreaper (PR_SET_CHILD_SUBREAPER), so every worker becomes the master's own child: the
master alone reaps them and learns their true exit status.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..config.settings import reloadable_changes
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
from ..runtime.scoreboard import Scoreboard, SlotView
from ..runtime.signals import SignalQueue
from .autoreload import FileWatcher
from .children import System, become_subreaper, describe_status
from .generations import Generation, Generations, Launch, ZygoteLauncher
from .listeners import BindError, close_listeners, describe
from .planning import plan_workers
from .reload import (
    MESSAGES,
    WORKER_START_FAILURES,
    Action,
    Event,
    IllegalTransition,
    Note,
    Outcome,
    ReloadStatus,
    Role,
    State,
    transition,
)
from .status import Observer
from .supervise import Limits, Supervisor, WorkerRecord

if TYPE_CHECKING:
    from ..interfaces import Adapter

__all__ = ["Arbiter", "SIGNALS", "StartupError"]

log = logs.error_log
_TICK = 0.2  # the loop's pace: heartbeats, RSS samples, readiness
_FAST_TICK = 0.02  # while a worker nears --max-rss

#: what each signal asks of the master: the name of the Arbiter's method
SIGNALS: dict[int, str] = {
    signal.SIGHUP: "reload",  # re-read the config, load the app anew, roll the workers over
    signal.SIGTERM: "stop_gracefully",  # workers finish what they have, then exit
    signal.SIGINT: "stop_fast",  # workers stop at once
    signal.SIGQUIT: "stop_fast",
    signal.SIGTTIN: "add_worker",
    signal.SIGTTOU: "remove_worker",
    signal.SIGUSR1: "reopen_logs",  # after a log rotation
}  # SIGCHLD only wakes the loop: every pass reaps


class StartupError(Exception):
    """The first generation could not start; str() is the one-line reason, `details` more,
    `code` the exit code (2: the configuration or the app; 1: a startup hook failed)."""

    def __init__(self, message: str, details: str = "", code: int = 2) -> None:
        super().__init__(message)
        self.details = details
        self.code = code


class Arbiter:
    """Run the master loop until stopped; `run()` returns the process exit code.

    `make_adapter(settings)` loads the app in a zygote forked from the master; None (the
    command line's case) means the app the settings name, loaded by a zygote that is a
    fresh interpreter (see zygote_entry.py). `system` and `launch` are the seams a unit test
    replaces (children.System, generations.ZygoteLauncher).
    """

    def __init__(self, settings: Any, listeners: list[socket.socket],
                 make_adapter: Callable[[Any], Adapter] | None, app_label: str,
                 reread_settings: Callable[[], Any] | None = None,
                 on_ready: Callable[[], None] | None = None,
                 system: System | None = None, launch: Launch | None = None) -> None:
        self.settings = settings
        self.listeners = listeners
        self.app_label = app_label
        self.reread_settings = reread_settings
        self.on_ready = on_ready
        self.system = system or System()
        self.pid = os.getpid()
        self.num_workers = settings.workers
        self.board = Scoreboard(max(256, settings.workers * 4))
        self.signals: SignalQueue | None = None
        self.crew = Supervisor(self.board, self.system, Limits.of(settings),
                               self.worker_exited)
        self.gens = Generations(
            launch or ZygoteLauncher(listeners, self.board, self.pid, make_adapter,
                                     self._inherited_fds), self.system)
        self.stopping = ""  # "", "graceful" or "fast"
        self.stop_deadline = 0.0
        self.serving = False  # the first generation served: READY=1 was sent
        self.zygote_backoff = 0.0  # between generations that fail to load, when serving
        self.zygote_not_before = 0.0
        self.last_failure = ""  # the last such failure (the same again is logged briefly)
        self.last = Outcome()  # the last reload
        self.last_title = ""
        self.started = self.system.now()
        self.next_watchdog = 0.0
        self.watchdog = systemd.watchdog_interval()
        self.observer = Observer(self)  # observability: counters, status server and file
        self.hooks = Hooks()  # --hooks: the master's own (imported in start())
        self.addresses: tuple[str, ...] = ()  # as the hooks see them (the sockets close)
        self.failed_start: StartupError | None = None  # when_ready raised: stop, then this
        self.watcher = (FileWatcher(settings.reload_extra_file)
                        if getattr(settings, "reload", False) else None)  # --reload

    # -- what the status and metrics read ---------------------------------------------------
    @property
    def workers(self) -> dict[int, WorkerRecord]:
        return self.crew.records

    @property
    def current(self) -> Generation | None:
        return self.gens.current

    @property
    def last_reload(self) -> str:
        """"none", "loading", "rolling", "ok: generation N" or "failed: why"."""
        return str(self.last)

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> int:
        become_subreaper()
        logs.set_role("master")
        self.signals = SignalQueue()
        self.title()
        try:
            self.start()
            while True:
                readable = [self.signals.read_fd, *self.gens.read_fds(),
                            *self.observer.read_fds()]
                if self.watcher is not None and self.watcher.fileno() >= 0:
                    readable.append(self.watcher.fileno())
                try:
                    ready, writable, _ = select.select(
                        readable, self.observer.write_fds(), [],
                        _FAST_TICK if self.crew.watchful else _TICK)
                except InterruptedError:
                    ready, writable = [], []
                code = self.tick(self.signals.pending(), ready, writable)
                if code is not None:
                    return code
        finally:
            if self.watcher is not None:
                self.watcher.close()
            self.observer.close()
            self.signals.close()
            self.board.close_fd()

    def start(self) -> None:
        self.addresses = tuple(describe(sock) for sock in self.listeners)
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
        try:
            self.observer.start()
        except BindError as error:
            raise StartupError(f"--status-bind: {error}") from None
        if self.watcher is not None:
            log.warning("--reload: the app's source files are watched and a change reloads "
                        "it; for development, not for production")
        self.start_generation()

    def _hook_failed(self, error: HookError) -> StartupError:
        """on_starting or when_ready raised: logged with its traceback; the start fails."""
        log.error("%s; the server does not start\n%s", error, error.details.rstrip("\n"))
        return StartupError(str(error), code=1)

    def server_view(self) -> ServerView:
        """What a master hook is told of the server (runtime.hooks.ServerView)."""
        gen = self.gens.current or self.gens.pending
        return ServerView(self.pid, gen.number if gen else 0, self.num_workers,
                          self.app_label, self.addresses, settings_view(self.settings))

    def tick(self, signals: Iterable[int], ready: list[int],
             writable: list[int] | None = None) -> int | None:
        """One pass of the loop; the exit code once the master is done."""
        for signum in signals:
            self.on_signal(signum)
        if self.watcher is not None:
            self.watch(ready)
        for gen in self.gens:
            if gen.msg_r >= 0 and gen.msg_r in ready:
                self.hear(gen)
        now = self.system.now()
        self.reap(now)
        self.crew.supervise(now)
        self.observer.step(ready, writable or [], now)
        if self.stopping:
            if not self.crew.live() or now >= self.stop_deadline:
                return self.finish(now)
        else:
            self.manage(now)
            self.ping_watchdog(now)
        self.title()
        return None

    def watch(self, ready: list[int]) -> None:
        """--reload: a change to the app's files reloads, as SIGHUP does (once serving)."""
        watcher = self.watcher
        assert watcher is not None
        now = self.system.now()
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

    def on_signal(self, signum: int) -> None:
        name = SIGNALS.get(signum)
        if name is not None:
            getattr(self, name)()

    # -- generations: the machine's events in, its actions out ------------------------------
    def role(self, gen: Generation) -> Role:
        if not self.serving:
            return Role.STARTUP
        return Role.RELOAD if gen.number == self.last.generation else Role.RESPAWN

    def advance(self, gen: Generation, event: Event, **facts: Any) -> None:
        """Move `gen` on `event` (reload.transition), log its notes, perform its actions."""
        role = self.role(gen)
        try:
            step = transition(role, gen.state, event)
        except IllegalTransition:
            self.say(Note.ILLEGAL, number=gen.number, state=gen.state.value,
                     event=event.value)
            return
        gen.state = step.state
        if step.reload is not None and role is Role.RELOAD:
            self.last = Outcome(step.reload, gen.number, gen.failure)
        for note in step.notes:
            self.say(note, **self.facts(gen), **facts)
        for action in step.actions:
            self._perform[action](self, gen)

    def start_generation(self) -> Generation:
        gen = self.gens.start(self.settings, self.app_label)
        self.say(Note.STARTING if self.serving and not self.last_failure
                 else Note.STARTING_QUIETLY,
                 number=gen.number, pid=gen.zygote_pid, app=self.app_label)
        return gen

    def hear(self, gen: Generation) -> None:
        """Act on what `gen`'s zygote says: loaded (R), failed (F), forked a worker (W)."""
        for message in self.gens.read(gen):
            kind = message["t"]
            if kind == "W":
                self.crew.forked(gen.number, message["slot"], message["pid"],
                                 self.system.now(), self.stopping)
            elif kind == "R":
                self.advance(gen, Event.LOADED)
            elif kind == "M":  # --reload: the files it imported (or that its failure named)
                if self.watcher is not None:
                    files = [str(path) for path in message.get("files", ())]
                    if message.get("ok"):
                        self.watcher.set_files(files)
                    else:
                        self.watcher.add_files(files)
            elif kind == "F":
                if gen.state is State.LOADING:
                    gen.failure = message.get("msg", "") or "the app could not be loaded"
                    gen.details = message.get("details", "")
                self.advance(gen, Event.LOAD_FAILED)
        if gen.msg_r < 0:
            self.forget_if_done(gen)

    def zygote_exited(self, gen: Generation, status: int) -> None:
        gen.zygote_pid = 0
        self.gens.close_commands(gen)
        if gen.msg_r >= 0:
            self.hear(gen)  # its last words, if already written (EOF may follow)
        how = describe_status(status)
        if gen.state is State.LOADING:
            gen.failure = f"the zygote died while loading the app ({how})"
        elif gen.state is State.STARTING:
            gen.failure = f"its zygote died before any of its workers started ({how})"
        self.advance(gen, Event.ZYGOTE_EXITED, how=how)
        self.forget_if_done(gen)

    def worker_exited(self, record: WorkerRecord, view: SlotView, reason: str, how: str,
                      at_start: bool) -> None:
        """Count the exit, tell child_exit; a generation whose workers keep dying as they
        start fails."""
        self.observer.worker_exited(record, view, reason, how)
        if self.hooks.has("child_exit"):
            self.hooks.call("child_exit", self.server_view(), WorkerView(
                record.pid, record.number, record.generation, self.pid, self.app_label,
                settings_view(self.settings), reason, how, view.requests))
        gen = self.gens.all.get(record.generation)
        if gen is None or gen.state is not State.STARTING:
            return
        if not at_start:
            gen.start_failures = 0
            return
        gen.start_failures += 1
        if gen.start_failures >= WORKER_START_FAILURES:
            gen.failure = (f"its workers exit as they start ({how}, {gen.start_failures} in "
                           "a row)")
            self.advance(gen, Event.WORKERS_FAIL)

    def forget_if_done(self, gen: Generation) -> None:
        """A generation whose zygote is gone and whose pipe is drained: drop it, and the
        placeholders it will never fill."""
        if self.gens.done(gen):
            self.crew.forget_generation(gen.number)
            self.gens.forget(gen)

    def facts(self, gen: Generation) -> dict[str, Any]:
        """What the life cycle's messages may name."""
        current = self.gens.current
        if current is gen and self.gens.previous is not None:
            current = self.gens.previous  # it stands by: if `gen` fails, it serves on
        return {"number": gen.number, "took": self.system.now() - gen.started,
                "failure": gen.failure,
                "traceback": ("\nthe app's traceback:\n" + gen.details.rstrip("\n"))
                if gen.details else "",
                "current": current.number if current else 0,
                "addresses": ", ".join(describe(sock) for sock in self.listeners),
                "workers": self.num_workers, "backoff": self.zygote_backoff}

    def say(self, note: Note, **facts: Any) -> None:
        level, template = MESSAGES[note]
        log.log(level, template.format(**facts))

    # -- the actions (reload.Action) --------------------------------------------------------
    def _take_over(self, gen: Generation) -> None:
        gens = self.gens
        old, gens.current = gens.current, gen
        if gens.pending is gen:
            gens.pending = None
        if old is None or old is gen:
            return
        if old.state in (State.ROLLING, State.SERVING):  # it served: it stands by
            old, gens.previous = gens.previous, old
        if old is not None:
            self.advance(old, Event.SUPERSEDED)
            self.forget_if_done(old)

    def _retire_previous(self, gen: Generation) -> None:
        previous, self.gens.previous = self.gens.previous, None
        if previous is not None:
            self.advance(previous, Event.SUPERSEDED)
            self.forget_if_done(previous)

    def _fall_back(self, gen: Generation) -> None:
        previous = self.gens.previous
        if previous is not None and self.gens.current is gen:
            self.gens.current, self.gens.previous = previous, None
            self.crew.reset_backoff()  # its workers start: they did before
            self.forget_if_done(gen)

    def _reset_backoff(self, gen: Generation) -> None:
        self.zygote_backoff = 0.0
        self.last_failure = ""
        self.crew.reset_backoff()

    def _close_zygote(self, gen: Generation) -> None:
        self.gens.close_commands(gen)

    def _kill_zygote(self, gen: Generation) -> None:
        self.system.signal(gen.zygote_pid, signal.SIGKILL)
        self.forget_if_done(gen)

    def _term_zygote(self, gen: Generation) -> None:
        self.system.signal(gen.zygote_pid, signal.SIGTERM)

    def _drop_pending(self, gen: Generation) -> None:
        if self.gens.pending is gen:
            self.gens.pending = None

    def _announce_serving(self, gen: Generation) -> None:
        try:
            self.hooks.call_or_raise("when_ready", self.server_view())
        except HookError as error:
            # The workers run: stop them (fast), then run() ends with this StartupError.
            self.failed_start = self._hook_failed(error)
            self.stop(graceful=False)
            return
        self.serving = True
        self.observer.refresh()
        self.system.notify("READY=1", f"MAINPID={self.pid}", self.status_line())
        if self.on_ready is not None:
            self.on_ready()

    def _report_reloaded(self, gen: Generation) -> None:
        self.observer.reloaded(True)
        self.observer.refresh()
        self.system.notify("READY=1", self.status_line())

    def _report_reload_failed(self, gen: Generation) -> None:
        self.observer.reloaded(False)
        self.system.notify("READY=1", f"STATUS=reload failed: {gen.failure}"[:200])

    def _abort_startup(self, gen: Generation) -> None:
        raise StartupError(gen.failure, gen.details)

    def _retry_later(self, gen: Generation) -> None:
        self.zygote_backoff = min(5.0, max(0.5, self.zygote_backoff * 2))
        self.zygote_not_before = self.system.now() + self.zygote_backoff
        facts = self.facts(gen)
        if gen.failure == self.last_failure:
            self.say(Note.RESPAWN_FAILED_AGAIN, **facts)
        else:
            self.say(Note.RESPAWN_FAILED, **facts)
            self.say(Note.RESPAWN_KEEPS_SERVING, **facts)
        self.last_failure = gen.failure
        self.system.notify(f"STATUS=cannot load the app: {gen.failure}"[:200])

    def _replace(self, gen: Generation) -> None:
        self.zygote_not_before = 0.0  # its code loaded before: no reason to wait

    _perform: dict[Action, Callable[[Arbiter, Generation], None]] = {
        Action.TAKE_OVER: _take_over,
        Action.RETIRE_PREVIOUS: _retire_previous,
        Action.FALL_BACK: _fall_back,
        Action.RESET_BACKOFF: _reset_backoff,
        Action.CLOSE_ZYGOTE: _close_zygote,
        Action.KILL_ZYGOTE: _kill_zygote,
        Action.TERM_ZYGOTE: _term_zygote,
        Action.DROP_PENDING: _drop_pending,
        Action.ANNOUNCE_SERVING: _announce_serving,
        Action.REPORT_RELOADED: _report_reloaded,
        Action.REPORT_RELOAD_FAILED: _report_reload_failed,
        Action.ABORT_STARTUP: _abort_startup,
        Action.RETRY_LATER: _retry_later,
        Action.REPLACE: _replace,
    }

    # -- reaping ----------------------------------------------------------------------------
    def reap(self, now: float) -> None:
        """The one waitpid(-1) of forkhttpd: workers, zygotes, and orphans of the app's."""
        while (child := self.system.reap()) is not None:
            pid, status = child
            if self.crew.reaped(pid, status, now, self.stopping):
                continue
            gen = self.gens.by_zygote(pid)
            if gen is not None:
                self.zygote_exited(gen, status)
            else:
                self.crew.stray(pid, status)

    # -- keeping N workers ------------------------------------------------------------------
    def manage(self, now: float) -> None:
        gen = self.gens.current
        if gen is None or gen.state in (State.FAILED, State.RETIRED):  # its zygote is gone
            if self.gens.pending is None and now >= self.zygote_not_before:
                self.gens.current = None
                if gen is not None:
                    self.forget_if_done(gen)
                new = self.start_generation()
                if gen is not None and self.last.status is ReloadStatus.ROLLING and (
                        self.last.generation == gen.number):
                    # the reload's zygote died as it rolled over: its replacement carries on
                    self.last = Outcome(ReloadStatus.ROLLING, new.number)
            return
        if gen.state not in (State.STARTING, State.ROLLING, State.SERVING):
            return
        plan = plan_workers(list(self.crew), gen.number, self.num_workers)
        for pid, reason in plan.retire:
            record = self.crew.records.get(pid)
            if record is not None:
                self.crew.retire(record, reason, now)
        if plan.spawn and now >= self.crew.spawn_not_before:
            for _ in range(plan.spawn):
                self.spawn(gen, now)
        if gen.state is State.STARTING and any(
                w.ready and w.generation == gen.number for w in self.crew):
            self.advance(gen, Event.PROVEN)
        if gen.state is State.ROLLING and not self.crew.others_than(gen.number) and (
                self.crew.ready() >= self.num_workers):
            self.advance(gen, Event.ROLLED)

    def spawn(self, gen: Generation, now: float) -> None:
        """Ask `gen`'s zygote for a worker; its record waits for the PID."""
        record = self.crew.claim(gen.number, now)
        if not self.gens.command(gen, record.slot, record.number):
            self.crew.forget(record)

    # -- the signals' verbs -----------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the config, then load the app in a new zygote; roll over once it loaded."""
        if self.stopping:
            return
        if not self.serving:
            self.say(Note.SIGHUP_TOO_EARLY)
            return
        self.say(Note.SIGHUP)
        self.system.notify("RELOADING=1", f"MONOTONIC_USEC={systemd.monotonic_usec()}")
        if self.reread_settings is not None:
            try:
                new = self.reread_settings()
            except Exception as error:  # noqa: BLE001 - a bad config never stops the server
                self.say(Note.CONFIG_REJECTED, failure=error)
                self.last = Outcome(ReloadStatus.FAILED, 0, str(error))
                self.observer.reloaded(False)
                self.system.notify("READY=1", f"STATUS=reload failed: {error}"[:200])
                return
            self.apply_settings(new)
        self.reload_hooks()
        self.hooks.call("on_reload", self.server_view())
        if self.gens.pending is not None:
            self.advance(self.gens.pending, Event.ABANDON)
        self.last = Outcome(ReloadStatus.LOADING, self.gens.next_generation)
        self.start_generation()

    def reload_hooks(self) -> None:
        """The hooks module, imported again (edits take effect with the reload, as they do
        in the new generation's zygote); one that fails now leaves the master's hooks as
        they were (the new generation will fail on it too, and the old one serves on)."""
        spec = getattr(self.settings, "hooks", None)
        if not spec and not self.hooks:
            return
        try:
            self.hooks = load_hooks(spec, MASTER_HOOKS)
        except HookError as error:
            log.error("reload: %s; the master keeps its hooks%s", error,
                      "\n" + error.details.rstrip("\n") if error.details else "")

    def apply_settings(self, new: Any) -> None:
        old = self.settings
        changed, need_restart = reloadable_changes(old, new)
        if need_restart:
            log.warning("reload: %s changed; a restart is needed for that, the running "
                        "values stay", ", ".join(need_restart))
            new = dataclasses.replace(new, **{name: getattr(old, name) for name in need_restart})
        if changed:
            log.info("reload: new values for %s", ", ".join(changed))
        if {"error_logfile", "log_level", "log_config"} & set(changed):
            try:
                logs.configure_logging(new)
            except ValueError as error:  # the file changed since the settings were read
                log.error("reload: %s; the logging setup stays as it was", error)
        if "workers" in changed:
            self.num_workers = min(new.workers, self.board.capacity // 2)
        if "app" in changed and new.app:
            self.app_label = str(new.app)
        self.settings = new
        self.crew.limits = Limits.of(new)

    def stop_gracefully(self) -> None:
        self.stop(graceful=True)

    def stop_fast(self) -> None:
        self.stop(graceful=False)

    def stop(self, graceful: bool) -> None:
        """TERM: graceful (workers drain the backlog and finish); INT, QUIT: fast."""
        if self.stopping == "fast" or (self.stopping and graceful):
            return
        self.stopping = "graceful" if graceful else "fast"
        self.system.notify("STOPPING=1")
        now = self.system.now()
        self.stop_deadline = now + (self.settings.graceful_timeout if graceful else 1.0)
        log.info("%s stop: %d workers", self.stopping, self.crew.live())
        # New connections are refused from the moment the workers have taken what is queued
        # (each closes its copy then), instead of waiting in a backlog nobody will take until
        # the last process exits and they are reset. A socket systemd holds stays open.
        close_listeners(self.listeners)
        for gen in self.gens:
            self.advance(gen, Event.STOP)
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        for record in self.crew:
            if record.retiring and graceful:
                continue  # already finishing its requests
            record.retiring = ""
            self.crew.retire(record, "shutdown", now, sig)

    def finish(self, now: float) -> int:
        """The stop's end: murder the workers still alive, then the zygotes."""
        self.crew.murder()
        deadline = now + 2.0
        while self.crew.live() and self.system.now() < deadline:
            self.reap(self.system.now())
            self.system.sleep(0.02)
        for gen in self.gens:
            self.system.signal(gen.zygote_pid, signal.SIGKILL)
        self.gens.close_all()
        self.reap(self.system.now())
        log.info("stopped")
        if self.failed_start is not None:
            raise self.failed_start
        return 0

    def add_worker(self) -> None:
        if self.stopping:
            return
        if self.num_workers >= self.board.capacity // 2:  # room for a rolling reload
            log.warning("TTIN: already %d workers, the most there can be", self.num_workers)
            return
        self.num_workers += 1
        log.info("TTIN: %d workers wanted", self.num_workers)

    def remove_worker(self) -> None:
        if self.stopping:
            return
        self.num_workers = max(1, self.num_workers - 1)
        log.info("TTOU: %d workers wanted", self.num_workers)

    def reopen_logs(self) -> None:
        logs.reopen_logs()
        log.info("USR1: log files reopened; telling the zygotes and workers")
        for gen in self.gens:
            self.system.signal(gen.zygote_pid, signal.SIGUSR1)
        for record in self.crew:
            self.system.signal(record.pid, signal.SIGUSR1)

    # -- small things ---------------------------------------------------------------------
    def status_line(self) -> str:
        return "STATUS=" + self.observer.summary()

    def title(self) -> None:
        gen = self.gens.current.number if self.gens.current else 0
        if self.stopping:
            state = "stopping"
        elif not self.serving:
            state = "starting"
        elif self.gens.pending is not None or self.last.status in (ReloadStatus.LOADING,
                                                                   ReloadStatus.ROLLING):
            state = "reloading"
        else:
            state = "serving"
        title = (f"forkhttpd: master [{self.app_label}] gen {gen} {state} workers "
                 f"{self.crew.staying()}")
        if title != self.last_title:
            self.system.title(title)
            self.last_title = title

    def ping_watchdog(self, now: float) -> None:
        if self.watchdog and now >= self.next_watchdog:
            self.system.notify("WATCHDOG=1")
            self.next_watchdog = now + self.watchdog

    def _inherited_fds(self) -> list[int]:
        """The master's descriptors a forked zygote must not keep: the other generations'
        pipes and the signal pipe."""
        fds = [fd for gen in self.gens for fd in (gen.cmd_w, gen.msg_r) if fd >= 0]
        if self.signals is not None:
            fds += [self.signals.read_fd, self.signals.write_fd]
        return fds
