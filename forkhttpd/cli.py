"""The `forkhttpd` command: settings in, arbiter run (or a control command, or a configuration
check), exit code out; must not import application code (the zygotes and the throwaway
--check-config child do that) and prints no traceback for a person's mistakes.

Startup order, so that every mistake shows up on the terminal that started the server:
settings -> umask -> user/group resolved -> chdir -> PID file -> listeners bound -> (daemon:
detach, and the launcher waits for the ready pipe) -> arbiter.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from .config.settings import Settings, SettingsError, load_settings, to_toml
from .master.arbiter import Arbiter, StartupError
from .master.listeners import BindError, close_listeners, describe, open_listeners, systemd_fds
from .ops.daemon import ReadyPipe, detach, refuse_under_service_manager
from .ops.pidfile import PidFile, PidFileError, holder
from .ops.privileges import PrivilegeError, hand_over_files, resolve
from .runtime import logs

__all__ = ["main", "run_server"]

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


def _fail(message: str, details: str = "") -> int:
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
        try:
            logs.configure_logging(settings)
        except ValueError as error:  # --log-config names a file that cannot be applied
            return startup.fail(str(error))
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
            try:
                logs.configure_logging(settings)
            except ValueError as error:
                return startup.fail(str(error))
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
            return startup.fail(str(error), error.details, code=error.code)
    finally:
        if os.getpid() == master_pid:
            close_listeners(listeners)
            if pidfile is not None:
                pidfile.release()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("reload", "stop", "status"):
        from .ops.control import main as control_main

        return control_main(args)
    if args and args[0] == "_check-app":
        from .ops.check import import_child

        return import_child(args[1:])
    try:
        settings = load_settings(args, os.environ)
    except SystemExit:
        if "-h" in args or "--help" in args:  # the settings' help; the commands are ours
            print("\ncommands:\n  forkhttpd reload|stop|status --pid FILE (or -c CONFIG)\n"
                  "                        control a running server through its PID file; "
                  "see forkhttpd status --help")
        raise
    except SettingsError as error:
        if "--check-config" in args:  # as `nginx -t`: a bad configuration is exit code 1
            _fail(str(error))
            print("forkhttpd: configuration check failed", file=sys.stderr)
            return 1
        return _fail(str(error))
    if settings.print_config:
        sys.stdout.write(to_toml(settings))
        return 0
    if settings.check_config:
        from .ops.check import check_config

        return check_config(settings, args)
    if settings.daemon:
        why = refuse_under_service_manager(os.environ)
        if why:
            return _fail(why)
    try:
        return run_server(settings, reread=lambda: load_settings(args, os.environ))
    except KeyboardInterrupt:  # Ctrl-C before the master's signal handling is in place
        return 0


if __name__ == "__main__":
    sys.exit(main())
