"""The start of an exec'd zygote, both sides of it: the master builds the command and the
bootstrap (settings as plain data, descriptor numbers), the fresh interpreter reads them back
and runs zygote_main; this module must import nothing up front but os, sys, marshal and
forkhttpd.interfaces.mounts (no settings, argparse, tomllib, psutil, dataclasses, json), since both
processes import it.

Why exec: a zygote forked from the master carries every page the master ever touched
(argparse, the settings table, psutil, tomllib, the arbiter...) into every worker, whose RSS
counts them all. A fresh interpreter holds only what serving needs (see docs/design.md).

The zygote's descriptors, inherited across exec (all others are close-on-exec): its command
pipe, its message pipe, the listening sockets and the scoreboard's memfd. Its command pipe
first carries the bootstrap, a length-prefixed marshal of plain data; commands follow.
"""

from __future__ import annotations

import marshal
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..interfaces.mounts import Mount

__all__ = ["BOOTSTRAP", "bootstrap", "exec_zygote", "main", "plain_settings",
           "settings_from_plain", "zygote_command"]

# The -c program: forkhttpd from the very directory the master imported it from, whatever
# the current directory holds; the master's own sys.path replaces the default one next.
BOOTSTRAP = ("import sys; sys.path.insert(0, sys.argv[1]); "
             "from forkhttpd.master.zygote_entry import main; main()")
_MOUNT_TAG = "__mount__"  # a Mount travels as {_MOUNT_TAG: (url_prefix, directory)}
_SIZE = 8  # the bootstrap's length prefix, in bytes (big-endian)


# -- the master's side --------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A settings value as marshal-able data: named tuples and dataclasses become tuples and
    dicts; anything else but str, int, float, bool and None is refused."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mount):
        return {_MOUNT_TAG: tuple(value)}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return tuple(_plain(item) for item in value)
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return {name: _plain(getattr(value, name)) for name in fields}
    if isinstance(value, (tuple, list)):
        return tuple(_plain(item) for item in value)
    raise TypeError(f"a setting value an exec'd zygote cannot receive: {value!r}")


def plain_settings(settings: Any) -> dict[str, Any]:
    """Every field of a Settings dataclass, as plain data."""
    return {name: _plain(getattr(settings, name)) for name in settings.__dataclass_fields__}


def _interpreter_options() -> list[str]:
    """The master's own interpreter options that matter to the code it runs (-E, -s, -S,
    -I, -O, -B, -b, -X, -W), so that a zygote runs under the same rules."""
    flags = sys.flags
    options = [flag for flag, on in (("-I", flags.isolated), ("-E", flags.ignore_environment),
                                     ("-s", flags.no_user_site), ("-S", flags.no_site),
                                     ("-B", flags.dont_write_bytecode)) if on]
    options += ["-O"] * flags.optimize + ["-b"] * flags.bytes_warning
    for key, value in getattr(sys, "_xoptions", {}).items():
        options += ["-X", key if value is True else f"{key}={value}"]
    for warning in sys.warnoptions:
        options += ["-W", warning]
    return options


def zygote_command(cmd_r: int, msg_w: int) -> list[str]:
    """The argv of an exec'd zygote: this interpreter, running BOOTSTRAP."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    return [sys.executable, *_interpreter_options(), "-c", BOOTSTRAP, package_parent,
            str(cmd_r), str(msg_w)]


def bootstrap(settings: Any, number: int, listener_fds: Sequence[int], board_fd: int,
              capacity: int, master_pid: int, app_label: str) -> bytes:
    """What the master writes first on a new exec'd zygote's command pipe."""
    data = marshal.dumps({
        "settings": plain_settings(settings), "number": number,
        "listeners": tuple(listener_fds), "board": (board_fd, capacity),
        "master_pid": master_pid, "app_label": app_label,
        "path": tuple(sys.path), "argv": tuple(sys.argv)})
    return len(data).to_bytes(_SIZE, "big") + data


def exec_zygote(argv: list[str], keep: Sequence[int], title: str) -> None:
    """In the master's fresh child: keep the descriptors `keep` across exec and become the
    zygote's interpreter. Never returns (exit code 127 when exec fails)."""
    import signal

    from setproctitle import setproctitle

    try:
        setproctitle(title)  # not the master's title, even for the moment until exec
        # Until zygote_main sets its own: a ^C at the terminal must not print a
        # KeyboardInterrupt traceback from the half-started interpreter (an ignored SIGINT
        # stays ignored across exec, and Python then installs no handler of its own).
        for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                       signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(signum, signal.SIG_IGN)
        signal.set_wakeup_fd(-1)
        for fd in keep:
            os.set_inheritable(fd, True)
        os.execv(argv[0], argv)
    except BaseException as error:  # noqa: BLE001 - told to the master as a failed load
        try:
            from .zygote import say_failed

            say_failed(int(argv[-1]), f"cannot start the zygote ({argv[0]}): {error}")
        finally:
            os._exit(127)


# -- the zygote's side ----------------------------------------------------------------------
def settings_from_plain(data: dict[str, Any]) -> Any:
    """The settings as the zygote and its workers read them: attributes, Mounts included."""
    from types import SimpleNamespace

    def value(item: Any) -> Any:
        if isinstance(item, dict):
            if _MOUNT_TAG in item:
                return Mount(*item[_MOUNT_TAG])
            return SimpleNamespace(**{key: value(inner) for key, inner in item.items()})
        if isinstance(item, tuple):
            return tuple(value(inner) for inner in item)
        return item

    return SimpleNamespace(**{name: value(item) for name, item in data.items()})


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError("the master closed the command pipe during the bootstrap")
        data += chunk
    return data


def main() -> None:
    """The exec'd zygote's program (see BOOTSTRAP); never returns."""
    cmd_r, msg_w = int(sys.argv[2]), int(sys.argv[3])
    try:
        boot = marshal.loads(_read_exactly(cmd_r, int.from_bytes(
            _read_exactly(cmd_r, _SIZE), "big")))
        sys.path[:] = boot["path"]
        sys.argv[:] = boot["argv"]
        from setproctitle import setproctitle

        setproctitle(f"forkhttpd: zygote gen {boot['number']} [{boot['app_label']}] loading")
        settings = settings_from_plain(boot["settings"])
        from ..runtime import logs

        logs.configure_logging(settings)  # --log-config: a file it cannot apply fails the load
        import socket

        from ..runtime.scoreboard import Scoreboard
        from .zygote import ZygoteContext, zygote_main

        board_fd, capacity = boot["board"]
        board = Scoreboard.attach(board_fd, capacity)
        board.close_fd()  # the mapping is all a zygote and its workers need
        listeners = [socket.socket(fileno=fd) for fd in boot["listeners"]]
        from ..interfaces import build_app_adapter

        context = ZygoteContext(settings, listeners, board, boot["master_pid"],
                                boot["app_label"], build_app_adapter)
    except BaseException as error:  # noqa: BLE001 - told to the master as a failed load
        import traceback

        from .zygote import say_failed

        try:
            say_failed(msg_w, f"the zygote could not start: {error!r}",
                       traceback.format_exc())
        finally:
            os._exit(1)
    zygote_main(context, boot["number"], cmd_r, msg_w)
