"""The `forkhttpd` command: settings in, arbiter run, exit code out; must not import
application code (the zygotes do that) and prints no traceback for a person's mistakes."""

from __future__ import annotations

import os
import sys
from typing import Any

from . import logs
from .arbiter import Arbiter, StartupError
from .interfaces import app_label, build_app_adapter
from .listeners import BindError, open_listeners, systemd_fds
from .settings import Settings, SettingsError, load_settings, to_toml

__all__ = ["main", "run_server"]

EXIT_USAGE = 2


def _fail(message: str, details: str = "") -> int:
    print(f"forkhttpd: error: {message}", file=sys.stderr)
    if details:
        print("the app's traceback:\n" + details.rstrip("\n"), file=sys.stderr)
    return EXIT_USAGE


def run_server(settings: Settings, make_adapter: Any = build_app_adapter,
               label: str | None = None, reread: Any = None) -> int:
    """Bind, start the arbiter, and return the exit code (0 on a clean stop)."""
    logs.configure_error_log(settings.error_logfile, settings.log_level)
    if settings.chdir:
        try:
            os.chdir(settings.chdir)
        except OSError as error:
            return _fail(f"--chdir {settings.chdir}: {error.strerror}")
    try:
        listeners = open_listeners(list(settings.bind), settings.backlog, settings.reuse_port,
                                   inherited=systemd_fds())
    except BindError as error:
        return _fail(str(error))
    arbiter = Arbiter(settings, listeners, make_adapter, label or app_label(settings),
                      reread_settings=reread)
    try:
        return arbiter.run()
    except StartupError as error:
        return _fail(str(error), error.details)
    finally:
        for sock in listeners:
            if sock.family == getattr(__import__("socket"), "AF_UNIX", None):
                try:
                    path = sock.getsockname()
                    if path and os.getpid() == arbiter.pid:
                        os.unlink(path)
                except OSError:
                    pass
            sock.close()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args, os.environ)
    except SettingsError as error:
        return _fail(str(error))
    if settings.print_config:
        sys.stdout.write(to_toml(settings))
        return 0
    try:
        return run_server(settings, reread=lambda: load_settings(args, os.environ))
    except KeyboardInterrupt:  # Ctrl-C before the master's signal handling is in place
        return 0


if __name__ == "__main__":
    sys.exit(main())
