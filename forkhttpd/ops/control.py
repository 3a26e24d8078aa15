"""`forkhttpd reload|reopen|stop|status`: control a running master through its PID file,
without memorising signals; must not import the master or worker packages (it runs in its own
short-lived process and only ever signals the master named by a locked PID file).

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
from ..runtime.scoreboard import Scoreboard
from .pidfile import PidFileError, holder

__all__ = ["COMMANDS", "main"]

COMMANDS = ("reload", "reopen", "stop", "status")
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
                     "reopen": "Reopen the log files (SIGUSR1) and wait until every worker "
                               "has written its buffered lines to the old files and opened "
                               "the new ones: for logrotate's postrotate, so that "
                               "compressing the old file loses no line.",
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
                                 "stop, 60s for reload, 30s for reopen)")
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


# -- reopen: USR1, then wait for every worker's acknowledgement in its scoreboard slot --------
_SCOREBOARD_LINK = "/memfd:forkhttpd-scoreboard"
_NO_WORKER = ("free", "starting")


def _scoreboard(pid: int) -> Scoreboard:
    """The master's scoreboard, mapped read-only through /proc (its memfd); OSError when it
    cannot be found or read (another user's master: run as that user or root)."""
    directory = f"/proc/{pid}/fd"
    for name in os.listdir(directory):
        try:
            link = os.readlink(f"{directory}/{name}")
        except OSError:
            continue
        if link.startswith(_SCOREBOARD_LINK):
            return Scoreboard.inspect(f"{directory}/{name}")
    raise FileNotFoundError(f"master {pid} has no scoreboard open")


def _gone(pid: int) -> bool:
    """A worker that exited (or waits to be reaped) flushed its lines on its way out."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def _reopen(target: _Target, timeout: float) -> int:
    """Signal USR1; 0 once each worker that was serving has acknowledged the reopen (or
    exited). The master reopens its own logs before it relays the signal, so the workers'
    acknowledgements vouch for it too."""
    assert target.info is not None
    pid = target.info.pid
    try:
        board = _scoreboard(pid)
    except OSError as error:
        target.signal(signal.SIGUSR1)
        print(f"forkhttpd: error: sent SIGUSR1 to master {pid}, but cannot see its workers "
              f"acknowledge ({error.strerror or error}); run as the server's user or root",
              file=sys.stderr)
        return 1
    waiting: dict[int, tuple[int, int]] = {}  # slot -> (worker pid, reopens before)
    for index in range(board.capacity):
        view = board.read(index)
        if view.pid > 0 and view.state not in _NO_WORKER:
            waiting[index] = (view.pid, board.reopens(index))
    count = len(waiting)
    target.signal(signal.SIGUSR1)
    start = time.monotonic()
    deadline = start + timeout
    while waiting:
        for index, (worker, before) in list(waiting.items()):
            if (board.read(index).pid != worker or board.reopens(index) != before
                    or _gone(worker)):
                del waiting[index]
        if not waiting:
            break
        if time.monotonic() >= deadline:
            pids = ", ".join(str(worker) for worker, _ in waiting.values())
            print(f"forkhttpd: error: after {timeout:g}s, {len(waiting)} of {count} workers "
                  f"have not reopened their logs (pid {pids}): busy in a long request, or "
                  "stuck; their buffered lines may still go to the old file", file=sys.stderr)
            return 1
        if target.gone():
            print(f"forkhttpd: error: master {pid} exited during the reopen", file=sys.stderr)
            return 1
        time.sleep(0.01)
    print(f"forkhttpd: logs reopened by master {pid} and {count} workers "
          f"in {time.monotonic() - start:.2f}s")
    return 0


def main(argv: list[str]) -> int:
    """`argv` starts with the command: reload, reopen, stop or status."""
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
              file=sys.stderr if command in ("reload", "reopen") else sys.stdout)
        # LSB init-script codes: stopping a stopped server succeeds; status says 3.
        return {"status": EXIT_NOT_RUNNING, "stop": 0}.get(command, EXIT_RELOAD_NOT_RUNNING)
    if command == "status":
        return _status(target, path, args.json, args.watch)
    if command == "stop":
        return _stop(target, args.timeout if args.timeout is not None else graceful + 10.0,
                     args.fast)
    if command == "reopen":
        return _reopen(target, args.timeout if args.timeout is not None else 30.0)
    return _reload(target, args.timeout if args.timeout is not None else 60.0)
