"""Code generations, as the master sees them: starting a generation's zygote, reading its
messages (loaded, failed, worker forked), noticing its death, and the transactional SIGHUP
reload; a mixin of the Arbiter, part of the arbiter package (the only forker); it never
imports application code itself (the zygote does, in its own process).

A generation is validated before it touches a healthy worker: only once its zygote says "R"
(the app imported) does it become current, and planning then rolls the workers over. Until
then, and for ever if it fails, the current generation's zygote keeps forking the respawns,
so they run the last code that loaded, never what now lies on disk.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..config.settings import reloadable_changes
from ..runtime import logs, systemd
from ..runtime.scoreboard import Scoreboard
from .children import describe_status, send
from .health import watch
from .supervise import Supervising, WorkerRecord
from .zygote_entry import bootstrap, exec_zygote, zygote_command

__all__ = ["Generation", "Generations", "StartupError"]

log = logs.error_log


class StartupError(Exception):
    """The first generation could not start; str() is the one-line reason, `details` more,
    `code` the exit code (2: the configuration or the app; 1: a startup hook failed)."""

    def __init__(self, message: str, details: str = "", code: int = 2) -> None:
        super().__init__(message)
        self.details = details
        self.code = code


@dataclass
class Generation:
    number: int
    zygote_pid: int  # 0 once reaped
    cmd_w: int  # the master's commands ("slot,number\n"); -1 once closed
    msg_r: int  # the zygote's JSON lines; -1 after EOF
    started: float
    state: str = "loading"  # loading -> ready | failed | abandoned; retired once superseded
    buffer: bytes = b""
    failure: str = ""
    details: str = ""


class Generations(Supervising):
    """The Arbiter's base: generations and reloads, on top of the watch over workers."""

    settings: Any
    listeners: list[Any]
    make_adapter: Any  # None: the app the settings name, loaded by an exec'd zygote
    pid: int
    signals: Any
    board: Scoreboard
    workers: dict[int, WorkerRecord]
    generations: dict[int, Generation]
    current: Generation | None
    pending: Generation | None
    next_generation: int
    serving: bool
    stopping: str
    num_workers: int
    app_label: str
    reread_settings: Any
    last_reload: str
    last_failure: str
    zygote_backoff: float
    zygote_not_before: float
    fast_failures: int
    spawn_not_before: float
    early_exits: dict[int, int]
    observer: Any  # status.Observer: counters, status server and file

    # -- starting ---------------------------------------------------------------------------
    def _start_generation(self) -> Generation:
        number = self.next_generation
        self.next_generation += 1
        cmd_r, cmd_w = os.pipe()
        msg_r, msg_w = os.pipe()
        if self.make_adapter is None and self.board.fd >= 0 and sys.executable:
            pid = self._exec_zygote(number, cmd_r, cmd_w, msg_w)
        else:
            pid = self._fork_zygote(number, cmd_r, cmd_w, msg_r, msg_w)
        os.close(cmd_r)
        os.close(msg_w)
        os.set_blocking(msg_r, False)
        gen = Generation(number, pid, cmd_w, msg_r, time.monotonic())
        self.generations[number] = gen
        if self.current is None:
            self.current = gen
        else:
            self.pending = gen
        (log.info if self.serving and not self.last_failure else log.debug)(
            "generation %d: zygote %d is loading %s", number, pid, self.app_label)
        return gen

    def _exec_zygote(self, number: int, cmd_r: int, cmd_w: int, msg_w: int) -> int:
        """A zygote in a fresh interpreter (workers then share none of the master's pages);
        its bootstrap goes first on its command pipe. Returns its PID."""
        argv = zygote_command(cmd_r, msg_w)
        fds = [sock.fileno() for sock in self.listeners]
        boot = bootstrap(self.settings, number, fds, self.board.fd, self.board.capacity,
                         self.pid, self.app_label)
        pid = os.fork()
        if pid == 0:
            exec_zygote(argv, [cmd_r, msg_w, self.board.fd, *fds],
                        f"forkhttpd: zygote gen {number} [{self.app_label}] starting")
        view = memoryview(boot)
        try:
            while view:  # the pipe holds 64 KiB: this blocks only for a huge config
                view = view[os.write(cmd_w, view):]
        except OSError:
            pass  # the zygote is gone already: reaping tells why
        return pid

    def _fork_zygote(self, number: int, cmd_r: int, cmd_w: int, msg_r: int,
                     msg_w: int) -> int:
        """A zygote forked from the master, for an app object that lives in the master's
        memory (HttpServer's handler), or where exec is not possible. Returns its PID."""
        from ..interfaces import build_app_adapter
        from .zygote import ZygoteContext, zygote_main

        context = ZygoteContext(self.settings, self.listeners, self.board, self.pid,
                                self.app_label, self.make_adapter or build_app_adapter)
        pid = os.fork()
        if pid == 0:
            os.close(cmd_w)
            os.close(msg_r)
            for gen in self.generations.values():  # other generations' pipes
                for fd in (gen.cmd_w, gen.msg_r):
                    if fd >= 0:
                        os.close(fd)
            self.signals.close()
            self.board.close_fd()  # the mapping stays; the memfd is for exec'd zygotes
            zygote_main(context, number, cmd_r, msg_w)  # never returns
        return pid

    # -- messages from zygotes ------------------------------------------------------------
    def _read_zygote(self, gen: Generation) -> None:
        if gen.msg_r < 0:
            return
        try:
            data = os.read(gen.msg_r, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # the pipe is gone: treat it as the zygote's EOF
        if not data:
            try:
                os.close(gen.msg_r)
            except OSError:
                pass
            gen.msg_r = -1
            data = b"\n"
        gen.buffer += data
        *lines, gen.buffer = gen.buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._zygote_message(gen, json.loads(line))
        if gen.msg_r < 0:
            self._forget_if_done(gen)

    def _zygote_message(self, gen: Generation, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "W":
            self._worker_forked(gen, message["slot"], message["pid"])
        elif kind == "M":  # --reload: the files it imported (or that its failure named)
            self._sources(message)
        elif gen.state != "loading" or self.stopping:
            return  # an abandoned generation's last words, or too late to matter
        elif kind == "R":
            self._generation_loaded(gen)
        elif kind == "F":
            gen.state = "failed"
            gen.failure = message.get("msg", "") or "the app could not be loaded"
            gen.details = message.get("details", "")
            self._generation_failed(gen)

    def _generation_loaded(self, gen: Generation) -> None:
        gen.state = "ready"
        self.zygote_backoff = 0.0
        self.last_failure = ""
        self.fast_failures = 0  # new code, new chances
        self.spawn_not_before = 0.0
        took = time.monotonic() - gen.started
        if gen is self.pending:
            previous, self.current, self.pending = self.current, gen, None
            self.last_reload = "rolling"
            log.info("reload: generation %d loaded in %.1fs; rolling the workers over",
                     gen.number, took)
            if previous is not None:
                self._retire_zygote(previous)
        elif self.serving:
            log.info("generation %d loaded in %.1fs; it replaces the workers", gen.number,
                     took)

    def _worker_forked(self, gen: Generation, slot: int, pid: int) -> None:
        record = self.workers.pop(-(slot + 1), None)
        if record is None:  # given up on; the worker must not live on untracked
            log.warning("unexpected worker pid %d from generation %d; stopping it", pid,
                        gen.number)
            send(pid, signal.SIGTERM)
            return
        record.pid = pid
        record.process = watch(pid)  # its create time pins the PID's identity
        self.board.set_pid(slot, pid)
        self.workers[pid] = record
        if record.retiring:  # asked to go (TTOU, stop) before its PID was known
            reason, record.retiring = record.retiring, ""
            self._retire(record, reason,
                         signal.SIGQUIT if self.stopping == "fast" else signal.SIGTERM)
        status = self.early_exits.pop(pid, None)
        if status is not None:  # it died before we heard of it, and was reaped already
            del self.workers[pid]
            self._worker_exited(record, status, time.monotonic())

    def _generation_failed(self, gen: Generation) -> None:
        if self.stopping:
            return
        if not self.serving and gen is self.current and self.pending is None:
            raise StartupError(gen.failure, gen.details)
        traceback = ("\nthe app's traceback:\n" + gen.details.rstrip("\n")) if gen.details \
            else ""
        if gen is self.pending:
            self.pending = None
            self.last_reload = f"failed: {gen.failure}"
            self.observer.reloaded(False)
            log.error("reload failed: generation %d cannot load the app: %s%s", gen.number,
                      gen.failure, traceback)
            log.error("reload failed; generation %d keeps serving; the next SIGHUP tries "
                      "again", self.current.number if self.current else 0)
            systemd.notify("READY=1", f"STATUS=reload failed: {gen.failure}"[:200])
        elif gen is self.current:
            self.zygote_backoff = min(5.0, max(0.5, self.zygote_backoff * 2))
            self.zygote_not_before = time.monotonic() + self.zygote_backoff
            if gen.failure == self.last_failure:
                log.error("generation %d: the app still cannot load (the same error); next "
                          "try in %.1fs", gen.number, self.zygote_backoff)
            else:
                log.error("generation %d cannot load the app: %s%s", gen.number, gen.failure,
                          traceback)
                log.error("the workers still running keep serving; next try in %.1fs",
                          self.zygote_backoff)
            self.last_failure = gen.failure
            systemd.notify(f"STATUS=cannot load the app: {gen.failure}"[:200])

    # -- the end of a zygote ----------------------------------------------------------------
    def _retire_zygote(self, gen: Generation) -> None:
        if gen.state == "ready":
            gen.state = "retired"
        if gen.cmd_w >= 0:
            os.close(gen.cmd_w)  # EOF: the zygote forks what it was asked for, then exits
            gen.cmd_w = -1

    def _zygote_exited(self, gen: Generation, status: int) -> None:
        gen.zygote_pid = 0
        if gen.cmd_w >= 0:
            os.close(gen.cmd_w)
            gen.cmd_w = -1
        if gen.msg_r >= 0:
            self._read_zygote(gen)  # its last words, if already written (EOF may follow)
        if gen.state == "loading" and self.stopping:
            gen.state = "abandoned"  # we asked it to go
        elif gen.state == "loading":
            gen.state = "failed"
            gen.failure = f"the zygote died while loading the app ({describe_status(status)})"
            self._generation_failed(gen)
        elif gen.state == "ready" and gen is self.current and not self.stopping:
            log.error("the zygote of generation %d died (%s); loading the app anew",
                      gen.number, describe_status(status))
            gen.state = "failed"
            self.current = None
        self._forget_if_done(gen)

    def _forget_if_done(self, gen: Generation) -> None:
        """A generation whose zygote is gone and whose pipe is drained: drop it, and the
        placeholders it will never fill."""
        if gen.zygote_pid or gen.msg_r >= 0 or gen is self.current or gen is self.pending:
            return
        for key in [k for k, w in self.workers.items() if k < 0 and w.generation == gen.number]:
            self.board.release(self.workers.pop(key).slot)
        self.generations.pop(gen.number, None)

    # -- SIGHUP -----------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the config, then load the app in a new zygote; roll over once it loaded."""
        if self.stopping:
            return
        if not self.serving:
            log.warning("SIGHUP before the first generation serves: ignored")
            return
        log.info("SIGHUP: reloading")
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
            self._apply_settings(new)
        self._reload_hooks()
        if self.pending is not None:
            log.info("reload: abandoning generation %d, still loading", self.pending.number)
            self.pending.state = "abandoned"
            send(self.pending.zygote_pid, signal.SIGKILL)
            pending, self.pending = self.pending, None
            self._forget_if_done(pending)
        self.last_reload = "loading"
        self._start_generation()

    def _sources(self, message: dict[str, Any]) -> None:
        """--reload's file list (the Arbiter watches them)."""

    def _reload_hooks(self) -> None:
        """--hooks: read again and on_reload run (the Arbiter has the hooks)."""

    def _apply_settings(self, new: Any) -> None:
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
