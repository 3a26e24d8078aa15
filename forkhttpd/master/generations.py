"""Code generations as the master holds them: which exist, which is current and which waits to
take over, how their zygotes are started (exec'd or forked) and what they say on their pipes;
the arbiter's part that owns generations, part of the master package (the only forker); it
never imports application code itself (the zygote does, in its own process), and it decides
nothing about a generation's life (reload.py does; the arbiter acts on it).

A generation is validated before it touches a healthy worker: only once its zygote says "R"
(the app imported) does it become current, and planning then rolls the workers over. The
generation it replaces stands by (`previous`), its zygote alive, until a new worker is ready:
if the new workers cannot start, the old generation is current again, and its respawns run
the last code that worked, never what now lies on disk.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..runtime.scoreboard import Scoreboard
from .children import System
from .reload import State
from .zygote_entry import bootstrap, exec_zygote, zygote_command

__all__ = ["Generation", "Generations", "Launch", "ZygoteLauncher"]


@dataclass
class Generation:
    number: int
    zygote_pid: int  # 0 once reaped
    cmd_w: int  # the master's commands ("slot,number\n"); -1 once closed
    msg_r: int  # the zygote's JSON lines; -1 after EOF
    started: float
    state: State = State.LOADING
    buffer: bytes = b""
    failure: str = ""
    details: str = ""
    start_failures: int = 0  # its workers that died as they started, in a row


#: (number, settings, app label) -> (zygote pid, command pipe's write end, message pipe's
#: read end, non-blocking)
Launch = Callable[[int, Any, str], tuple[int, int, int]]


class Generations:
    """Every generation the master still hears from, the current one (its zygote forks the
    respawns), the one loading to take over (pending), and the one standing by while the
    current one's first workers start (previous)."""

    def __init__(self, launch: Launch, system: System) -> None:
        self.launch = launch
        self.system = system
        self.all: dict[int, Generation] = {}
        self.current: Generation | None = None
        self.pending: Generation | None = None
        self.previous: Generation | None = None
        self.next_generation = 1

    def start(self, settings: Any, app_label: str) -> Generation:
        """A new generation, its zygote loading the app: current when there is none, else
        pending (it takes over once it loaded)."""
        number = self.next_generation
        self.next_generation += 1
        pid, cmd_w, msg_r = self.launch(number, settings, app_label)
        gen = Generation(number, pid, cmd_w, msg_r, self.system.now())
        self.all[number] = gen
        if self.current is None:
            self.current = gen
        else:
            self.pending = gen
        return gen

    def __iter__(self) -> Iterator[Generation]:
        return iter(list(self.all.values()))

    def by_zygote(self, pid: int) -> Generation | None:
        return next((gen for gen in self.all.values() if gen.zygote_pid == pid), None)

    def read_fds(self) -> list[int]:
        return [gen.msg_r for gen in self.all.values() if gen.msg_r >= 0]

    def command(self, gen: Generation, slot: int, number: int) -> bool:
        """Ask `gen`'s zygote to fork a worker for `slot`; False if it cannot hear."""
        return gen.cmd_w >= 0 and self.system.write(gen.cmd_w, f"{slot},{number}\n".encode())

    def read(self, gen: Generation) -> list[dict[str, Any]]:
        """The zygote's messages that arrived whole ({"t": "R" | "F" | "W", ...})."""
        if gen.msg_r < 0:
            return []
        data = self.system.read(gen.msg_r)
        if data is None:
            return []
        if not data:
            self.system.close(gen.msg_r)
            gen.msg_r = -1
            data = b"\n"
        gen.buffer += data
        *lines, gen.buffer = gen.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def close_commands(self, gen: Generation) -> None:
        """EOF on its command pipe: the zygote forks what it was asked for, then exits."""
        if gen.cmd_w >= 0:
            self.system.close(gen.cmd_w)
            gen.cmd_w = -1

    def close_all(self) -> None:
        for gen in self.all.values():
            self.close_commands(gen)
            if gen.msg_r >= 0:
                self.system.close(gen.msg_r)
                gen.msg_r = -1  # the reaper must not read a closed pipe

    def done(self, gen: Generation) -> bool:
        """Gone for good: its zygote reaped, its pipe drained, neither current, pending nor
        standing by."""
        return not (gen.zygote_pid or gen.msg_r >= 0 or gen is self.current
                    or gen is self.pending or gen is self.previous)

    def forget(self, gen: Generation) -> None:
        self.all.pop(gen.number, None)


class ZygoteLauncher:
    """Starts a generation's zygote: a fresh interpreter (exec) for the app the settings name,
    or a fork of the master for an app object that lives in the master's memory."""

    def __init__(self, listeners: list[socket.socket], board: Scoreboard, master_pid: int,
                 make_adapter: Callable[[Any], Any] | None,
                 inherited: Callable[[], list[int]]) -> None:
        self.listeners = listeners
        self.board = board
        self.master_pid = master_pid
        self.make_adapter = make_adapter
        self.inherited = inherited  # the master's descriptors a forked zygote must close

    def __call__(self, number: int, settings: Any, app_label: str) -> tuple[int, int, int]:
        cmd_r, cmd_w = os.pipe()
        msg_r, msg_w = os.pipe()
        if self.make_adapter is None and self.board.fd >= 0 and sys.executable:
            pid = self._exec(number, settings, app_label, cmd_r, cmd_w, msg_w)
        else:
            pid = self._fork(number, settings, app_label, cmd_r, cmd_w, msg_r, msg_w)
        os.close(cmd_r)
        os.close(msg_w)
        os.set_blocking(msg_r, False)
        return pid, cmd_w, msg_r

    def _exec(self, number: int, settings: Any, app_label: str, cmd_r: int, cmd_w: int,
              msg_w: int) -> int:
        """A zygote in a fresh interpreter (workers then share none of the master's pages);
        its bootstrap goes first on its command pipe. Returns its PID."""
        argv = zygote_command(cmd_r, msg_w)
        fds = [sock.fileno() for sock in self.listeners]
        boot = bootstrap(settings, number, fds, self.board.fd, self.board.capacity,
                         self.master_pid, app_label)
        pid = os.fork()
        if pid == 0:
            exec_zygote(argv, [cmd_r, msg_w, self.board.fd, *fds],
                        f"forkhttpd: zygote gen {number} [{app_label}] starting")
        view = memoryview(boot)
        try:
            while view:  # the pipe holds 64 KiB: this blocks only for a huge config
                view = view[os.write(cmd_w, view):]
        except OSError:
            pass  # the zygote is gone already: reaping tells why
        return pid

    def _fork(self, number: int, settings: Any, app_label: str, cmd_r: int, cmd_w: int,
              msg_r: int, msg_w: int) -> int:
        """A zygote forked from the master, for an app object that lives in the master's
        memory (HttpServer's handler), or where exec is not possible. Returns its PID."""
        from ..interfaces import build_app_adapter
        from .zygote import ZygoteContext, zygote_main

        context = ZygoteContext(settings, self.listeners, self.board, self.master_pid,
                                app_label, self.make_adapter or build_app_adapter)
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)  # before its pipe closes; the zygote resets the rest
            os.close(cmd_w)
            os.close(msg_r)
            for fd in self.inherited():  # other generations' pipes, the signal pipe
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.board.close_fd()  # the mapping stays; the memfd is for exec'd zygotes
            zygote_main(context, number, cmd_r, msg_w)  # never returns
        return pid
