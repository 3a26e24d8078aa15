"""Start one server: settings in, listeners bound (and the PID file, the daemon's detach),
the arbiter run, exit code out; shared by the `forkhttpd` command and the servers started
from Python (HttpServer, the seeds' drop-ins); must not import cli nor application code.

Startup order, so that every mistake shows up on the terminal that started the server:
settings -> umask -> user/group resolved -> every path setting checked as the user that will
use it (relative paths from --chdir) -> chdir -> error log -> PID file -> listeners bound ->
(daemon: detach, and the launcher waits for the ready pipe, which reports readiness or any
failure) -> arbiter.

Exit codes (docs/errors.md): 0 success, 2 a settings error (the same command fails the same
way until the configuration changes), 1 a runtime failure (a port in use, a server already
running, a daemon that could not start).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from typing import Any

from ..config.paths import path_problems
from ..config.settings import Settings
from ..master.arbiter import Arbiter, StartupError
from ..master.listeners import BindError, close_listeners, describe, open_listeners, systemd_fds
from ..runtime import logs
from ..runtime.privileges import PrivilegeError, hand_over_files, resolve
from .daemon import ReadyPipe, detach
from .pidfile import AlreadyRunning, PidFile, PidFileError, holder

__all__ = ["EXIT_RUNNING", "EXIT_RUNTIME", "EXIT_USAGE", "app_label", "fail", "run_server"]

EXIT_USAGE = 2  # a settings error
EXIT_RUNTIME = 1  # a runtime failure
EXIT_RUNNING = EXIT_RUNTIME  # --pid names a live master
PREFIX = "forkhttpd: error: "


class _Startup:
    """Where startup failures go: stderr, and the launcher's ready pipe in daemon mode."""

    def __init__(self) -> None:
        self.pipe: ReadyPipe | None = None

    def fail(self, message: str, details: str = "", code: int = EXIT_USAGE) -> int:
        """Report on stderr (one line per problem, one prefix) and on the ready pipe."""
        text = "".join(f"{PREFIX}{line}\n" for line in message.splitlines() or [message])
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


def fail(message: str, details: str = "", code: int = EXIT_USAGE) -> int:
    """Report a startup failure on stderr; the exit code to return."""
    return _Startup().fail(message, details, code)


def _bind_exit_code(error: BindError) -> int:
    """A port someone else holds is a runtime failure; a bad address is a settings error."""
    cause = error.__context__
    if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
        return EXIT_RUNTIME
    return EXIT_RUNTIME if "another server is listening" in str(error) else EXIT_USAGE


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
    try:
        identity = resolve(settings.user, settings.group)
    except PrivilegeError as error:
        return startup.fail(str(error))
    # Before anything is forked: a worker that cannot open its log would crash at start, be
    # respawned and crash again; one line per path setting that cannot work, and exit 2.
    problems = path_problems(settings, identity)
    if problems:
        return startup.fail("\n".join(problems))
    if settings.chdir:
        try:
            os.chdir(settings.chdir)
        except OSError as error:
            return startup.fail(f"--chdir {settings.chdir}: {error.strerror}")
    if settings.certfile:  # read here for the terminal's sake; each zygote reads it again
        from ..worker.tls import TLSSetupError, context_from_settings

        try:
            context_from_settings(settings)
        except TLSSetupError as error:
            return startup.fail(str(error))
    if not settings.daemon:
        failed = _configure_logging(settings)
        if failed:
            return startup.fail(failed)
    pidfile = PidFile(settings.pid) if settings.pid else None
    try:
        if pidfile is not None and settings.daemon:
            running = holder(pidfile.path)  # fail on the terminal; the daemon locks it later
            if running is not None:
                return startup.fail(f"already running (pid {running}, pid file "
                                    f"{pidfile.path})", code=EXIT_RUNNING)
        elif pidfile is not None:
            pidfile.acquire()
    except AlreadyRunning as error:
        return startup.fail(str(error), code=EXIT_RUNNING)
    except PidFileError as error:
        return startup.fail(str(error))
    listeners: list[socket.socket] = []
    master_pid = os.getpid()
    try:
        try:
            binds: list[Any] = list(settings.bind)  # BindAddress fits listeners.BindSpec
            listeners = open_listeners(binds, settings.backlog, settings.reuse_port,
                                       inherited=systemd_fds(),
                                       defer_accept=settings.defer_accept)
        except BindError as error:
            return startup.fail(str(error), code=_bind_exit_code(error))
        try:
            hand_over_files(settings, identity)
        except PrivilegeError as error:
            return startup.fail(str(error))
        if settings.daemon:
            startup.pipe = ReadyPipe()
            try:
                detach(settings, listeners, pidfile, startup.pipe)
            except AlreadyRunning as error:  # in the daemon: another master won the race
                return startup.fail(str(error), code=EXIT_RUNNING)
            except Exception as error:  # noqa: BLE001 - reported, whatever went wrong
                return startup.fail(f"cannot become a daemon: {error}", code=EXIT_RUNTIME)
            master_pid = os.getpid()
        try:
            return _serve(settings, listeners, pidfile, startup, make_adapter, label, reread)
        except StartupError as error:
            return startup.fail(str(error), error.details, code=error.code)
        except Exception as error:  # noqa: BLE001 - the ready pipe must hear of any failure
            if startup.pipe is None or startup.pipe.write_fd < 0:
                raise  # not a daemon, or ready already: the usual crash report
            logs.error_log.exception("the master failed while starting")
            return startup.fail(f"the master failed while starting: "
                                f"{type(error).__name__}: {error}", code=EXIT_RUNTIME)
    finally:
        if os.getpid() == master_pid:
            close_listeners(listeners)
            if pidfile is not None:
                pidfile.release()


def _configure_logging(settings: Settings) -> str:
    """The error log (or --log-config's dictConfig) set up; the one-line reason it cannot
    be, or ""."""
    try:
        logs.configure_logging(settings)
    except OSError as error:
        return f"--error-logfile {settings.error_logfile}: {error.strerror}"
    except ValueError as error:  # --log-config names a file that cannot be applied
        return str(error)
    return ""


def _serve(settings: Settings, listeners: list[socket.socket], pidfile: PidFile | None,
           startup: _Startup, make_adapter: Any, label: str | None, reread: Any) -> int:
    """The arbiter's run, in the foreground or in the daemon."""
    if settings.daemon:
        failed = _configure_logging(settings)
        if failed:
            return startup.fail(failed)
    if pidfile is not None and pidfile.took_over:
        logs.error_log.info("pid file %s: took it over from pid %d, which is gone",
                            pidfile.path, pidfile.took_over)
    pipe = startup.pipe
    arbiter = Arbiter(
        settings, listeners, make_adapter, label or app_label(settings),
        reread_settings=reread,
        on_ready=(lambda: pipe.ready(", ".join(describe(s) for s in listeners)))
        if pipe is not None else None)
    return arbiter.run()
