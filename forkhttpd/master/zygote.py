"""A generation's zygote: imports the app once, then forks that generation's workers on the
master's command (through a short-lived intermediate, so that each worker is re-parented to
the master, a child subreaper, which alone reaps it); part of the master package, the only
forker, and the only place where the app gets imported on a server's behalf; it must not
import the master's side (config, supervise, status, health/psutil), nor json up front.

A zygote is either a fresh interpreter exec'd by the master (zygote_entry.py; workers then
carry none of the master's memory) or, for an app object handed over in memory (HttpServer),
a plain fork of the master. Either way it runs zygote_main with a ZygoteContext.

Talk with the master goes over two pipes: commands in ("slot,number\\n"; EOF = exit once
they are all done), JSON lines out: {"t": "R"} loaded, {"t": "F", "msg", "details"} failed,
{"t": "W", "slot", "pid", "n"} a worker was forked, and with --reload, before "R" or "F",
{"t": "M", "ok", "files"}: the app's source files (interfaces.sources) for the master to watch.

After the app, the zygote imports the --hooks module for the workers' hooks (post_fork,
worker_exit, worker_abort), which the workers inherit with the app; a hooks module that cannot
be imported fails the generation as an app that cannot be would.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from setproctitle import setproctitle

from ..interfaces import Adapter, preload_modules
from ..runtime import logs
from ..runtime.hooks import WORKER_HOOKS, Hooks, load_hooks
from ..runtime.scoreboard import Scoreboard
from ..runtime.signals import reset_signals
from ..worker.process import run_worker

__all__ = ["ZygoteContext", "say_failed", "zygote_main"]

log = logs.error_log


class ZygoteContext:
    """What a zygote needs of its master: settings (read by attribute only), listening
    sockets, the scoreboard, the master's PID, the app's label, and how to load the app."""

    __slots__ = ("settings", "listeners", "board", "master_pid", "app_label", "make_adapter")

    def __init__(self, settings: Any, listeners: list[socket.socket], board: Scoreboard,
                 master_pid: int, app_label: str, make_adapter: Callable[[Any], Adapter]
                 ) -> None:
        self.settings = settings
        self.listeners = listeners
        self.board = board
        self.master_pid = master_pid
        self.app_label = app_label
        self.make_adapter = make_adapter


def zygote_main(ctx: ZygoteContext, number: int, cmd_r: int, msg_w: int) -> None:
    """Run in the zygote's process, once it holds only its own pipes; never returns."""
    code = 0
    try:
        reset_signals()
        signal.signal(signal.SIGINT, lambda *_: os._exit(0))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        for ignored in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN,
                        signal.SIGTTOU):
            signal.signal(ignored, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        logs.set_role(f"zygote {number}")
        setproctitle(f"forkhttpd: zygote gen {number} [{ctx.app_label}] loading")
        # The code on disk may have changed since the master started: forget the finders'
        # directory caches, so that new and replaced modules are seen as they are now.
        importlib.invalidate_caches()
        settings = ctx.settings
        try:
            if settings.certfile:  # as root, before the app: a bad certificate fails the load
                from ..worker.tls import loaded_context

                loaded_context(settings)
            if settings.user or settings.group:
                from ..runtime import privileges

                preload_modules()
                privileges.drop_for_app(settings)  # --user/--group, before the import
            adapter = ctx.make_adapter(settings)
            hooks = load_hooks(getattr(settings, "hooks", None), WORKER_HOOKS)
        except Exception as error:  # noqa: BLE001 - reported to the master, whatever it is
            details = getattr(error, "details", "") or ""
            if getattr(settings, "reload", False):
                _report_sources(msg_w, False, details)
            say_failed(msg_w, str(error) or type(error).__name__, details)
            code = 2
            return
        if getattr(settings, "reload", False):
            _report_sources(msg_w, True)
        os.write(msg_w, b'{"t": "R"}\n')
        # Idle in os.read between forks, it can reopen its log files right in the handler.
        signal.signal(signal.SIGUSR1, lambda *_: logs.reopen_logs())
        setproctitle(f"forkhttpd: zygote gen {number} [{ctx.app_label}] ready")
        _fork_workers(ctx, number, cmd_r, msg_w, adapter, hooks)
    except BaseException:  # noqa: BLE001
        log.exception("zygote %d failed", number)
        code = 1
    finally:
        os._exit(code)


def say_failed(msg_w: int, message: str, details: str = "") -> None:
    """The "F" line: the generation cannot load (json only here, on the way out)."""
    import json

    os.write(msg_w, (json.dumps({"t": "F", "msg": message, "details": details}) + "\n")
             .encode())


def _report_sources(msg_w: int, ok: bool, details: str = "") -> None:
    """--reload: tell the master the app's source files: those imported, and after a failed
    import those its traceback names (the file with the syntax error never got imported)."""
    import json
    import sys

    from ..interfaces.sources import app_source_files, excluded_dirs, files_in_traceback

    excluded = excluded_dirs()
    files = app_source_files(list(sys.modules.values()), excluded)
    if details:
        files = sorted(set(files) | set(files_in_traceback(details, excluded)))
    os.write(msg_w, (json.dumps({"t": "M", "ok": ok, "files": files}) + "\n").encode())


def _fork_workers(ctx: ZygoteContext, number: int, cmd_r: int, msg_w: int,
                  adapter: Adapter, hooks: Hooks) -> None:
    pending = b""
    while True:
        chunk = os.read(cmd_r, 4096)
        if not chunk:
            return  # the master closed the pipe (or is gone): this generation is retired
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            slot, worker_number = (int(x) for x in line.decode().split(","))
            middle = os.fork()
            if middle == 0:
                _middle(ctx, number, cmd_r, msg_w, adapter, slot, worker_number, hooks)
            os.waitpid(middle, 0)


def _middle(ctx: ZygoteContext, number: int, cmd_r: int, msg_w: int, adapter: Adapter,
            slot: int, worker_number: int, hooks: Hooks) -> None:
    """The short-lived intermediate: fork the worker, report its PID, exit (the worker is
    then an orphan, re-parented to the master, the nearest child subreaper)."""
    code = 1
    try:
        worker = os.fork()
        if worker == 0:
            os.close(cmd_r)
            os.close(msg_w)
            run_worker(adapter, ctx.listeners, ctx.settings, ctx.board.slot(slot),
                       worker_number, number, ctx.master_pid, ctx.app_label,
                       hooks)  # never returns
        os.write(msg_w, f'{{"t": "W", "slot": {slot}, "pid": {worker}, "n": {worker_number}}}\n'
                 .encode())
        code = 0
    finally:
        os._exit(code)
