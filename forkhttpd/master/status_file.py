"""The status file: where it lies (next to the PID file), writing it whole (write, then rename)
and reading it back for `forkhttpd status`; must not import arbiter, supervise, worker or the
status server (the reader runs in a short-lived command, far from any master).

A file rather than a socket: it needs no listener or protocol in the master, it answers even
while the master is busy or wedged (and then shows its age, which is itself the diagnosis),
and the PID file's directory already has the right owner. Mode 0640: request lines can hold
secrets.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

__all__ = ["NotRunning", "read_status", "status_path", "write_status"]


class NotRunning(Exception):
    """No live master behind the PID file / status file; str() says why."""


def status_path(pidfile: str) -> str:
    """The status file that goes with a PID file: run/app.pid -> run/app.status.json."""
    base = pidfile[:-4] if pidfile.endswith(".pid") else pidfile
    return base + ".status.json"


def write_status(path: str, snapshot: dict[str, Any]) -> None:
    """Replace the file at `path` with `snapshot` as JSON; a reader never sees half a file.
    Raises OSError."""
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, json.dumps(snapshot).encode())
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _pid_in(pidfile: str) -> int | None:
    try:
        with open(pidfile) as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def read_status(pidfile: str) -> dict[str, Any]:
    """The snapshot a master wrote next to `pidfile`, with "age" (seconds) added; raises
    NotRunning when there is none or its master is gone."""
    path = status_path(os.path.abspath(pidfile))
    try:
        with open(path, "rb") as handle:
            snapshot: dict[str, Any] = json.loads(handle.read())
        master = snapshot["master"]["pid"]
        written = float(snapshot["time"])
    except FileNotFoundError:
        raise NotRunning(f"no status file {path} (is a master running with --pid "
                         f"{pidfile}?)") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise NotRunning(f"cannot read {path}: {error}") from None
    pid = _pid_in(pidfile)
    if pid is not None and pid != master:
        raise NotRunning(f"{path} belongs to pid {master}, but {pidfile} names pid {pid}")
    if not os.path.exists(f"/proc/{master}"):
        raise NotRunning(f"master pid {master} is gone (stale {path})")
    snapshot["age"] = round(max(0.0, time.time() - written), 3)
    return snapshot
