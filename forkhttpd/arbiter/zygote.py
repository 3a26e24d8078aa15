"""A generation's zygote: imports the app once, then forks that generation's workers on the
master's command (through a short-lived intermediate, so that each worker is re-parented to
the master, a child subreaper, which alone reaps it); part of the arbiter package, the only
forker, and the only place where the app gets imported on a server's behalf.

Talk with the master goes over two pipes: commands in ("slot,number\\n"; EOF = exit once
they are all done), JSON lines out: {"t": "R"} loaded, {"t": "F", "msg", "details"} failed,
{"t": "W", "slot", "pid", "n"} a worker was forked.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
from typing import Any

from setproctitle import setproctitle

from .. import logs, privileges
from ..interfaces import Adapter, preload_modules
from ..signals import reset_signals
from ..worker import run_worker

__all__ = ["zygote_main"]

log = logs.error_log


def _say(msg_w: int, message: dict[str, Any]) -> None:
    os.write(msg_w, (json.dumps(message) + "\n").encode())


def zygote_main(master: Any, number: int, cmd_r: int, msg_w: int) -> None:
    """Run in the fresh child of the master (`master` is the Arbiter); never returns."""
    code = 0
    try:
        reset_signals()
        signal.signal(signal.SIGINT, lambda *_: os._exit(0))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        for ignored in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN,
                        signal.SIGTTOU):
            signal.signal(ignored, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for gen in master.generations.values():  # other generations' pipes
            for fd in (gen.cmd_w, gen.msg_r):
                if fd >= 0:
                    os.close(fd)
        master.signals.close()
        logs.set_role(f"zygote {number}")
        setproctitle(f"forkhttpd: zygote gen {number} [{master.app_label}] loading")
        # The code on disk may have changed since the master started: forget the finders'
        # directory caches, so that new and replaced modules are seen as they are now.
        importlib.invalidate_caches()
        try:
            if master.settings.user or master.settings.group:
                preload_modules()
            privileges.drop_for_app(master.settings)  # ops: --user/--group, before the import
            adapter = master.make_adapter(master.settings)
        except Exception as error:  # noqa: BLE001 - reported to the master, whatever it is
            details = getattr(error, "details", "") or ""
            _say(msg_w, {"t": "F", "msg": str(error) or type(error).__name__,
                         "details": details})
            code = 2
            return
        _say(msg_w, {"t": "R"})
        # Idle in os.read between forks, it can reopen its log files right in the handler.
        signal.signal(signal.SIGUSR1, lambda *_: logs.reopen_logs())
        setproctitle(f"forkhttpd: zygote gen {number} [{master.app_label}] ready")
        _fork_workers(master, number, cmd_r, msg_w, adapter)
    except BaseException:  # noqa: BLE001
        log.exception("zygote %d failed", number)
        code = 1
    finally:
        os._exit(code)


def _fork_workers(master: Any, number: int, cmd_r: int, msg_w: int, adapter: Adapter) -> None:
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
                _middle(master, number, cmd_r, msg_w, adapter, slot, worker_number)
            os.waitpid(middle, 0)


def _middle(master: Any, number: int, cmd_r: int, msg_w: int, adapter: Adapter, slot: int,
            worker_number: int) -> None:
    """The short-lived intermediate: fork the worker, report its PID, exit (the worker is
    then an orphan, re-parented to the master, the nearest child subreaper)."""
    code = 1
    try:
        worker = os.fork()
        if worker == 0:
            os.close(cmd_r)
            os.close(msg_w)
            run_worker(adapter, master.listeners, master.settings, master.board.slot(slot),
                       worker_number, number, master.pid, master.app_label)  # never returns
        _say(msg_w, {"t": "W", "slot": slot, "pid": worker, "n": worker_number})
        code = 0
    finally:
        os._exit(code)
