"""A generation's zygote: imports the app once, then forks that generation's workers on the
master's command (through a short-lived intermediate, so that each worker is re-parented to
the master, a child subreaper, which alone reaps it); part of the arbiter package, the only
forker, and the only place where the app gets imported on a server's behalf."""

from __future__ import annotations

import json
import os
import signal
from typing import TYPE_CHECKING

from setproctitle import setproctitle

from .. import logs, privileges
from ..interfaces import Adapter
from ..signals import reset_signals
from ..worker import run_worker

if TYPE_CHECKING:
    from .master import Arbiter

__all__ = ["zygote_main"]

log = logs.error_log


def zygote_main(self: Arbiter, number: int, cmd_r: int, msg_w: int) -> None:
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
            privileges.drop_for_app(self.settings)  # ops: --user/--group, before the app import
            adapter = self.make_adapter(self.settings)
        except Exception as error:  # noqa: BLE001 - reported to the master, whatever it is
            details = getattr(error, "details", "") or ""
            message = str(error) or type(error).__name__
            os.write(msg_w, (json.dumps({"t": "F", "msg": message, "details": details})
                             + "\n").encode())
            code = 2
            return
        os.write(msg_w, b'{"t": "R"}\n')
        zygote_loop(self, number, cmd_r, msg_w, adapter)
    except BaseException:  # noqa: BLE001
        log.exception("zygote %d failed", number)
        code = 1
    finally:
        os._exit(code)

def zygote_loop(self: Arbiter, number: int, cmd_r: int, msg_w: int, adapter: Adapter) -> None:
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
