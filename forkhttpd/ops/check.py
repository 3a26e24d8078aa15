"""`forkhttpd --check-config`: validate the settings and every path as the user that will use
it, import the application in a throwaway child process, print what would run and exit 0, or
2 with one line per problem (a settings error, as at startup), like `nginx -t`; must not import
the master package nor the worker's loop and process (worker/tls.py reads certificates as a
zygote would), and never imports the application in the calling process (only
the child, `forkhttpd _check-app`, does, after dropping privileges as a zygote would).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import traceback
from typing import Any

from ..config.paths import path_problems
from ..config.settings import Settings, SettingsError, load_settings
from ..interfaces.loader import AppLoadError
from ..master.listeners import systemd_fds
from ..runtime import logs
from ..runtime.hooks import HookError, load_hooks
from ..runtime.privileges import PrivilegeError, drop_for_app, resolve
from .pidfile import PidFileError, holder

__all__ = ["check_config", "import_child"]

IMPORT_TIMEOUT = 120.0  # an app whose import hangs is a finding too
EXIT_PROBLEMS = 2  # what the same settings would exit with at startup


_CAP_NET_BIND_SERVICE = 10


def _can_bind_low() -> bool:
    """Root, or a process given CAP_NET_BIND_SERVICE (systemd's AmbientCapabilities=)."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_NET_BIND_SERVICE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _unprivileged_port_start() -> int:
    """The first port anyone may bind (Linux's net.ipv4.ip_unprivileged_port_start)."""
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", encoding="ascii") as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return 1024


def _bind_problems(settings: Settings) -> tuple[list[str], list[str]]:
    """(what the binds are, what is wrong with them); nothing is bound here."""
    shown: list[str] = []
    problems: list[str] = []
    inherited = systemd_fds()
    if inherited:
        shown.append(f"{len(inherited)} socket(s) from systemd (LISTEN_FDS), "
                     "instead of --bind")
        return shown, problems
    for bind in settings.bind:
        shown.append(str(bind))
        if bind.kind == "fd":
            try:
                if not stat.S_ISSOCK(os.fstat(bind.fd).st_mode):
                    problems.append(f"--bind fd://{bind.fd}: not a socket")
            except OSError as error:
                problems.append(f"--bind fd://{bind.fd}: {error.strerror}")
        elif bind.kind == "unix":
            directory = os.path.dirname(os.path.abspath(bind.path))
            if not os.path.isdir(directory):
                problems.append(f"--bind unix:{bind.path}: directory {directory} does not "
                                "exist")
        elif bind.port and bind.port < _unprivileged_port_start() and not _can_bind_low():
            problems.append(f"--bind {bind}: port {bind.port} needs root (or "
                            "CAP_NET_BIND_SERVICE, or a socket from systemd)")
    return shown, problems


def _import_in_child(argv: list[str], settings: Settings) -> dict[str, Any]:
    """Run `forkhttpd _check-app` with the same arguments; its verdict as a dict."""
    import forkhttpd

    read_fd, write_fd = os.pipe()
    env = dict(os.environ)
    # The child must import this very forkhttpd, installed or run from a source tree.
    source = os.path.dirname(os.path.dirname(os.path.abspath(forkhttpd.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        [source] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("LISTEN_FDS", None)
    env.pop("LISTEN_PID", None)
    command = [sys.executable, "-m", "forkhttpd", "_check-app", str(write_fd), *argv]
    try:
        with subprocess.Popen(command, env=env, pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                              stdout=sys.stderr) as child:
            os.close(write_fd)
            write_fd = -1
            try:
                child.wait(IMPORT_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                return {"ok": False, "message": f"importing the app took longer than "
                                                f"{IMPORT_TIMEOUT:g}s; the check gave up"}
            data = b""
            while chunk := os.read(read_fd, 65536):
                data += chunk
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    try:
        result: dict[str, Any] = json.loads(data.decode() or "{}")
    except ValueError:
        result = {}
    if "ok" not in result:
        result = {"ok": False, "message": "the check process died while importing the app "
                                          f"(exit code {child.returncode})"}
    return result


def check_config(settings: Settings, argv: list[str]) -> int:
    """Print what would run and every problem found; 0 when none, 2 otherwise."""
    problems: list[str] = []
    notes: list[str] = []
    identity = None
    try:
        identity = resolve(settings.user, settings.group)
    except PrivilegeError as error:
        problems.append(str(error))
    problems += path_problems(settings, identity)
    if settings.certfile:  # read as each zygote will read them
        from ..worker.tls import TLSSetupError, context_from_settings

        try:
            context_from_settings(settings)
        except TLSSetupError as error:
            problems.append(str(error))
    binds, bind_problems = _bind_problems(settings)
    problems += bind_problems
    if settings.daemon and os.environ.get("NOTIFY_SOCKET"):
        problems.append("--daemon with NOTIFY_SOCKET set: a service manager runs forkhttpd; "
                        "drop --daemon")
    if settings.pid and os.path.isdir(os.path.dirname(os.path.abspath(settings.pid))):
        try:
            running = holder(settings.pid)
        except PidFileError as error:
            problems.append(str(error))
        else:
            if running:
                notes.append(f"a master is running (pid {running}): starting another "
                             "would fail; `forkhttpd reload` would load this "
                             "configuration")
    verdict = _import_in_child(argv, settings) if not problems else {
        "ok": False, "skipped": True}
    app = settings.app or (f"routes in {settings.routes}" if settings.routes
                           else "static files in the working directory")
    if verdict.get("ok"):
        interface = verdict.get("interface") or settings.interface
    else:
        interface = settings.interface
    who = "" if identity is None else f" as uid {identity.uid}, gid {identity.gid}"
    lines = [
        f"config file:  {settings.config or '(none)'}",
        f"app:          {app}",
        f"interface:    {interface}",
        f"binds:        {', '.join(binds)}" + ("  (SO_REUSEPORT)" if settings.reuse_port
                                               else ""),
        f"workers:      {settings.workers}",
        f"user/group:   {settings.user or '(unchanged)'}/{settings.group or '(unchanged)'}"
        f"{who}",
        f"working dir:  {settings.chdir or os.getcwd()}",
        f"pid file:     {settings.pid or '(none)'}",
        f"daemon:       {'yes' if settings.daemon else 'no'}",
        f"health path:  {settings.health_path or '(none)'}",
    ]
    print("\n".join(lines))
    for note in notes:
        print(f"note: {note}")
    if not verdict.get("ok") and not verdict.get("skipped"):
        problems.append(str(verdict.get("message") or "the app could not be loaded"))
    if problems:
        for problem in problems:
            print(f"forkhttpd: error: {problem}", file=sys.stderr)
        if verdict.get("details"):
            print("the app's traceback:\n" + str(verdict["details"]).rstrip("\n"),
                  file=sys.stderr)
        print("forkhttpd: configuration check failed", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"forkhttpd: the app loaded in a separate process{who}; "
          "configuration check is successful")
    return 0


class _Finding(Exception):
    """A problem the check child reports as it is: one line, and a traceback if any."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def import_child(args: list[str]) -> int:
    """The throwaway child: load the app exactly as a zygote would and report on fd N."""
    result_fd, argv = int(args[0]), args[1:]
    result: dict[str, Any]
    try:
        settings = load_settings(argv, os.environ)
        try:
            logs.configure_logging(settings)  # --log-config applied, as the master would
        except ValueError as error:
            raise _Finding(str(error)) from None
        os.umask(settings.umask)
        if settings.chdir:
            os.chdir(settings.chdir)
        from ..interfaces import build_app_adapter, preload_modules

        preload_modules()  # forkhttpd itself need not be readable by --user
        drop_for_app(settings)
        build_app_adapter(settings)
        try:
            load_hooks(settings.hooks)  # after the app, as the zygote does
        except HookError as error:
            raise _Finding(str(error), error.details) from None
        result = {"ok": True, "interface": _interface(settings)}
    except _Finding as finding:
        result = {"ok": False, "message": str(finding), "details": finding.details}
    except (SettingsError, PrivilegeError, OSError) as error:
        result = {"ok": False, "message": str(error)}
    except BaseException as error:  # noqa: BLE001 - the app's failure, whatever it is
        # a load error knows whether it has an app traceback to show ("not found": none)
        details = (error.details if isinstance(error, AppLoadError)
                   else "".join(traceback.format_exception(error)))
        result = {"ok": False, "message": str(error) or type(error).__name__,
                  "details": details}
    os.write(result_fd, json.dumps(result).encode())
    os.close(result_fd)
    return 0 if result["ok"] else 1


def _interface(settings: Settings) -> str:
    """The interface `auto` picks, for the report (already imported: no second import)."""
    if settings.interface != "auto" or not settings.app or settings.app.endswith("()"):
        return settings.interface
    try:
        from ..interfaces import detect_interface
        from ..interfaces.loader import load_app

        return f"auto ({detect_interface(load_app(settings.app, settings.chdir))})"
    except Exception:  # noqa: BLE001 - only a label; the real load already succeeded
        return settings.interface
