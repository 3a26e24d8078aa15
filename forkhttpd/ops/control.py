"""`forkhttpd reload|stop|status`: control a running master through its PID file, without
memorising signals; must not import the master or worker packages (it runs in its own short-lived
process and only ever signals the master named by a locked PID file).

A PID file can outlive its master and its PID can be recycled; a signal goes out only when the
file is locked by a live master (pidfile.holder) whose command line is forkhttpd's.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from typing import TextIO

from ..config.settings import SettingsError, load_settings
from ..master.health import ProcessInfo, children_info, process_info
from .pidfile import PidFileError, holder

__all__ = ["COMMANDS", "main"]

COMMANDS = ("reload", "stop", "status")
EXIT_NOT_RUNNING = 3  # LSB init scripts: "program is not running"
EXIT_RELOAD_NOT_RUNNING = 7  # LSB: "program is not running", for the other actions
EXIT_USAGE = 2

_GENERATION = re.compile(r"\bgen (\d+)\b")


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"forkhttpd {command}", allow_abbrev=False,
        description={"reload": "Load the application anew (SIGHUP) and wait until the new "
                               "generation has loaded.",
                     "stop": "Stop gracefully (SIGTERM) and wait until the master is gone.",
                     "status": "Show the master, its workers and their generation."}[command])
    parser.add_argument("-p", "--pid", metavar="FILE",
                        help="the master's PID file (default: pid from the config file)")
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="TOML config file to read `pid` (and the graceful timeout) from")
    if command == "status":
        parser.add_argument("--json", action="store_true",
                            help="print the master's status snapshot as JSON (with --watch: "
                                 "one line per snapshot)")
        parser.add_argument("--watch", type=_seconds, metavar="SECONDS",
                            help="show the status again every SECONDS until Ctrl-C")
    else:
        parser.add_argument("--timeout", type=float, metavar="SECONDS",
                            help="how long to wait (default: the graceful timeout + 10s for "
                                 "stop, 60s for reload)")
    if command == "stop":
        parser.add_argument("--fast", action="store_true",
                            help="SIGQUIT: stop at once, interrupting requests in flight")
    return parser


def _seconds(text: str) -> float:
    """--watch's argument: a finite number of seconds, at least 0.1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (0.1 <= value < 86400):
        raise argparse.ArgumentTypeError(f"expected 0.1 to 86400 seconds, got {text}")
    return value


def _age(seconds: float) -> str:
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _short(title: str) -> str:
    return title.removeprefix("forkhttpd: ")


def _generation(title: str) -> int | None:
    match = _GENERATION.search(title)
    return int(match[1]) if match else None


class _Target:
    """The master named by the PID file, checked before every signal."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = holder(path)
        self.info = process_info(self.pid) if self.pid and self.pid > 0 else None

    @property
    def running(self) -> bool:
        return self.info is not None and "forkhttpd" in self.info.title

    def gone(self) -> bool:
        """True once the master is no more (same PID with another start time: recycled)."""
        assert self.info is not None
        now = process_info(self.info.pid)
        return now is None or abs(now.started - self.info.started) > 0.01

    def title(self) -> str:
        assert self.info is not None
        now = process_info(self.info.pid)
        return now.title if now else ""

    def signal(self, signum: int) -> None:
        assert self.info is not None
        os.kill(self.info.pid, signum)


def _pid_path(args: argparse.Namespace) -> tuple[str | None, float]:
    """The PID file and the graceful timeout, from --pid or the settings (-c, environment)."""
    argv = ["-c", args.config] if args.config else []
    try:
        settings = load_settings(argv, os.environ)
    except SettingsError:
        if args.pid:
            return args.pid, 30.0
        raise
    return args.pid or settings.pid, settings.graceful_timeout


def _status(target: _Target, path: str, as_json: bool, every: float | None) -> int:
    """The per-worker table from the status file the master keeps next to its PID file
    (observability); the process list from /proc when there is none yet. With `every`,
    again every `every` seconds until Ctrl-C (0) or until the master is gone (3)."""
    from ..master.status_cli import render_json, render_table, watch
    from ..master.status_file import NotRunning, read_status

    def frame(out: TextIO) -> int:
        if every is not None and target.gone():
            out.write(f"forkhttpd is not running (master pid {target.pid} has exited)\n")
            return EXIT_NOT_RUNNING
        try:
            snapshot = read_status(path)
        except (NotRunning, OSError, ValueError):
            snapshot = None
        if snapshot is None:
            return _process_status(target)
        out.write(render_json(snapshot, compact=every is not None) if as_json
                  else render_table(snapshot))
        return 0

    if every is None:
        return frame(sys.stdout)
    return watch(frame, every)


def _process_status(target: _Target) -> int:
    assert target.info is not None
    master = target.info
    now = time.time()
    print(f"forkhttpd is running: master pid {master.pid}, up {_age(now - master.started)}, "
          f"generation {_generation(master.title) or '?'}, user {master.user}")
    print(f"  {_short(master.title)}")
    children = children_info(master.pid)
    workers = [c for c in children if "worker" in c.title]
    others = [c for c in children if c not in workers]
    print(f"  {len(workers)} workers:")
    for info in workers:
        _child_line(info, now)
    if others:
        print("  other processes (zygotes load the app and fork its workers):")
        for info in others:
            _child_line(info, now)
    return 0


def _child_line(info: ProcessInfo, now: float) -> None:
    print(f"    pid {info.pid:<7} up {_age(now - info.started):<10} rss {info.rss_mib:6.1f} MiB"
          f"  user {info.user:<10} {_short(info.title)}")


def _stop(target: _Target, timeout: float, fast: bool) -> int:
    assert target.info is not None
    pid = target.info.pid
    target.signal(signal.SIGQUIT if fast else signal.SIGTERM)
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if target.gone():
            print(f"forkhttpd: master {pid} stopped after {time.monotonic() - start:.1f}s")
            return 0
        time.sleep(0.05)
    print(f"forkhttpd: error: master {pid} still running after {timeout:g}s "
          f"(workers finishing long requests?); it was sent "
          f"{'SIGQUIT' if fast else 'SIGTERM'}", file=sys.stderr)
    return 1


def _reload(target: _Target, timeout: float) -> int:
    assert target.info is not None
    pid = target.info.pid
    before = _generation(target.title())
    target.signal(signal.SIGHUP)
    if before is None:
        print(f"forkhttpd: sent SIGHUP to master {pid}")
        return 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.gone():
            print(f"forkhttpd: error: master {pid} exited during the reload", file=sys.stderr)
            return 1
        now = _generation(target.title())
        if now is not None and now > before:
            print(f"forkhttpd: reloaded: generation {now} has loaded and takes over "
                  f"from generation {before}")
            return 0
        time.sleep(0.05)
    print(f"forkhttpd: error: no new generation after {timeout:g}s; generation {before} "
          "keeps serving. The new code or configuration probably failed to load: see the "
          "error log", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    """`argv` starts with the command: reload, stop or status."""
    command, rest = argv[0], argv[1:]
    args = _parser(command).parse_args(rest)
    try:
        path, graceful = _pid_path(args)
    except SettingsError as error:
        print(f"forkhttpd: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not path:
        print(f"forkhttpd {command}: error: which server? give --pid FILE, or -c CONFIG with "
              "pid = \"/run/forkhttpd/forkhttpd.pid\" in it", file=sys.stderr)
        return EXIT_USAGE
    try:
        target = _Target(path)
    except PidFileError as error:
        print(f"forkhttpd: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not target.running:
        why = "no such file" if not os.path.exists(path) else "no live master holds it"
        print(f"forkhttpd is not running (pid file {path}: {why})",
              file=sys.stderr if command == "reload" else sys.stdout)
        # LSB init-script codes: stopping a stopped server succeeds; status says 3.
        return {"status": EXIT_NOT_RUNNING, "stop": 0}.get(command, EXIT_RELOAD_NOT_RUNNING)
    if command == "status":
        return _status(target, path, args.json, args.watch)
    if command == "stop":
        return _stop(target, args.timeout if args.timeout is not None else graceful + 10.0,
                     args.fast)
    return _reload(target, args.timeout if args.timeout is not None else 60.0)
