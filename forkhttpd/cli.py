"""The `forkhttpd` command: argv in, a server run (ops/run.py), a control command or a
configuration check, exit code out; must not import application code (the zygotes and the
throwaway --check-config child do that) and prints no traceback for a person's mistakes."""

from __future__ import annotations

import os
import sys

from .config.settings import SettingsError, load_settings, to_toml
from .ops.daemon import refuse_under_service_manager
from .ops.run import EXIT_USAGE, app_label, run_server
from .ops.run import fail as _fail

__all__ = ["app_label", "main", "run_server"]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("reload", "reopen", "stop", "status"):
        from .ops.control import main as control_main

        return control_main(args)
    if args and args[0] == "_check-app":
        from .ops.check import import_child

        return import_child(args[1:])
    try:
        settings = load_settings(args, os.environ)
    except SystemExit:
        if "-h" in args or "--help" in args:  # the settings' help; the commands are ours
            print("\ncommands:\n  forkhttpd reload|reopen|stop|status --pid FILE "
                  "(or -c CONFIG)\n"
                  "                        control a running server through its PID file; "
                  "see forkhttpd status --help")
        raise
    except SettingsError as error:
        _fail(str(error))
        if "--check-config" in args:
            print("forkhttpd: configuration check failed", file=sys.stderr)
        return EXIT_USAGE
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
