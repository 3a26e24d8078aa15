"""Start one server: settings in, listeners bound (and the PID file, the daemon's detach),
the arbiter run, exit code out; shared by the `forkhttpd` command and the servers started
from Python (HttpServer, the seeds' drop-ins); must not import cli nor application code.

Startup order, so that every mistake shows up on the terminal that started the server:
settings -> umask -> user/group resolved -> chdir -> PID file -> listeners bound -> (daemon:
detach, and the launcher waits for the ready pipe) -> arbiter.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from ..config.settings import Settings
from ..master.arbiter import Arbiter, StartupError
from ..master.listeners import BindError, close_listeners, describe, open_listeners, systemd_fds
from ..runtime import logs
from .daemon import ReadyPipe, detach
from .pidfile import PidFile, PidFileError, holder
from .privileges import PrivilegeError, hand_over_files, resolve

__all__ = ["EXIT_RUNNING", "EXIT_USAGE", "app_label", "fail", "run_server"]

EXIT_USAGE = 2
EXIT_RUNNING = 1  # --pid names a live master


class _Startup:
    """Where startup failures go: stderr, and the launcher's ready pipe in daemon mode."""

    def __init__(self) -> None:
        self.pipe: ReadyPipe | None = None

    def fail(self, message: str, details: str = "", code: int = EXIT_USAGE) -> int:
        text = f"forkhttpd: error: {message}\n"
        if details:
            text += "the app's traceback:\n" + details.rstrip("\n") + "\n"
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        if self.pipe is not None:
            self.pipe.failed(code, text)
        return code


def fail(message: str, details: str = "") -> int:
    """Report a startup failure on stderr; the exit code to return."""
    return _Startup().fail(message, details)


def app_label(settings: Settings) -> str:
    """How the app is named in titles and logs."""
    if settings.app:
        return str(settings.app)
    if settings.routes:
        return f"routes in {settings.routes}"
    return f"static files in {os.getcwd()}"


def run_server(settings: Settings, make_adapter: Any = None,
               label: str | None = None, reread: Any = None) -> int:
    """Bind, start the arbiter (detached with --daemon), and return the exit code.
    `make_adapter`: see Arbiter (None: the app the settings name, in exec'd zygotes)."""
    startup = _Startup()
    os.umask(settings.umask)
    if not settings.daemon:
        logs.configure_error_log(settings.error_logfile, settings.log_level)
    try:
        identity = resolve(settings.user, settings.group)
    except PrivilegeError as error:
        return startup.fail(str(error))
    if settings.chdir:
        try:
            os.chdir(settings.chdir)
        except OSError as error:
            return startup.fail(f"--chdir {settings.chdir}: {error.strerror}")
    pidfile = PidFile(settings.pid) if settings.pid else None
    try:
        if pidfile is not None and settings.daemon:
            running = holder(pidfile.path)  # fail on the terminal; the daemon locks it later
            if running is not None:
                return startup.fail(f"already running (pid {running}, pid file "
                                    f"{pidfile.path})", code=EXIT_RUNNING)
        elif pidfile is not None:
            pidfile.acquire()
    except PidFileError as error:
        return startup.fail(str(error), code=EXIT_RUNNING)
    listeners: list[socket.socket] = []
    master_pid = os.getpid()
    try:
        try:
            binds: list[Any] = list(settings.bind)  # BindAddress fits listeners.BindSpec
            listeners = open_listeners(binds, settings.backlog, settings.reuse_port,
                                       inherited=systemd_fds(),
                                       defer_accept=settings.defer_accept)
            hand_over_files(settings, identity)
        except (BindError, PrivilegeError) as error:
            return startup.fail(str(error))
        if settings.daemon:
            startup.pipe = ReadyPipe()
            try:
                detach(settings, listeners, pidfile, startup.pipe)
            except PidFileError as error:  # in the daemon: another master won the race
                return startup.fail(str(error), code=EXIT_RUNNING)
            except Exception as error:  # noqa: BLE001 - reported, whatever went wrong
                return startup.fail(f"cannot become a daemon: {error}")
            master_pid = os.getpid()
            logs.configure_error_log(settings.error_logfile, settings.log_level)
        if pidfile is not None and pidfile.took_over:
            logs.error_log.info("pid file %s: took it over from pid %d, which is gone",
                                pidfile.path, pidfile.took_over)
        pipe = startup.pipe
        arbiter = Arbiter(
            settings, listeners, make_adapter, label or app_label(settings),
            reread_settings=reread,
            on_ready=(lambda: pipe.ready(", ".join(describe(s) for s in listeners)))
            if pipe is not None else None)
        try:
            return arbiter.run()
        except StartupError as error:
            return startup.fail(str(error), error.details)
    finally:
        if os.getpid() == master_pid:
            close_listeners(listeners)
            if pidfile is not None:
                pidfile.release()
