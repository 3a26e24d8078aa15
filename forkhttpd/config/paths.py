"""Check every path setting before anything is forked: that it exists (or can be created) and
that the process that will use it can, as the user it will run as; imports nothing from
forkhttpd (the startup, --check-config and the master's reload all use it, so it sits in
config/, below them; it judges paths and opens nothing).

Who uses what: the master (the invoking user) writes the PID file, creates the log files and
writes the error log; the workers (--user/--group when given) append to the access log,
reopen both logs by name on USR1, and read the static, CGI and routes directories and
--chdir. A worker that cannot open its log would otherwise die at start and be respawned
forever, so these checks run at startup, in --check-config and in --daemon's launcher, each
problem as one line naming the setting.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Protocol

__all__ = ["path_problems"]

_R, _W, _X = os.R_OK, os.W_OK, os.X_OK


class Identity(Protocol):
    """Who the workers run as (runtime.privileges.Identity has these fields)."""

    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...
    @property
    def user(self) -> str | None: ...


class _Who:
    """Permission checks as one identity: the kernel's own check (os.access with the
    effective ids) for the current process, the mode bits for another user."""

    def __init__(self, identity: Identity | None) -> None:
        self.identity = identity
        me = os.geteuid()
        self.myself = identity is None or (identity.uid == me and identity.gid == os.getegid())
        self.uid = me if identity is None else identity.uid
        groups: set[int] = set()
        if identity is not None and not self.myself:
            groups.add(identity.gid)
            if identity.user is not None:
                try:
                    groups.update(os.getgrouplist(identity.user, identity.gid))
                except OSError:
                    pass
        self.groups = groups

    def describe(self) -> str:
        if self.myself:
            return f"uid {os.geteuid()}"
        assert self.identity is not None
        name = f" ({self.identity.user})" if self.identity.user else ""
        return f"uid {self.identity.uid}{name}, the --user/--group the workers run as"

    def can(self, path: str, mode: int) -> bool:
        if self.myself:
            try:
                return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)
            except OSError:
                return False
        try:
            info = os.stat(path)
        except OSError:
            return False
        if self.uid == 0:  # root: everything but executing a file nobody may execute
            return not (mode & _X) or stat.S_ISDIR(info.st_mode) or bool(info.st_mode & 0o111)
        if info.st_uid == self.uid:
            bits = (info.st_mode >> 6) & 7
        elif info.st_gid in self.groups:
            bits = (info.st_mode >> 3) & 7
        else:
            bits = info.st_mode & 7
        return bits & mode == mode

    def blocked_ancestor(self, path: str) -> str | None:
        """The first directory on the way to `path` this identity cannot search, if any."""
        parts = os.path.abspath(path).split(os.sep)[1:-1]
        current = os.sep
        for part in ["", *parts]:
            current = os.path.join(current, part) if part else current
            if not self.can(current, _X):
                return current
        return None


def _absolute(path: str, base: str | None) -> str:
    """A path as the process will see it: relative paths are taken from --chdir."""
    return os.path.normpath(os.path.join(base or os.getcwd(), path))


def _writable_file(shown: str, path: str, master: _Who, app: _Who,
                   handed_over: bool) -> str | None:
    """Problems with a file the master creates (or finds) and appends to, and the workers
    append to and reopen by name; None when there are none. `shown`: "--flag value"."""
    if os.path.isdir(path):
        return f"{shown}: is a directory; expected a file"
    directory = os.path.dirname(path) or os.sep
    if not os.path.exists(path):
        if not os.path.isdir(directory):
            what = "is not a directory" if os.path.exists(directory) else "does not exist"
            return f"{shown}: directory {directory} {what}"
        if not master.can(directory, _W | _X):
            return (f"{shown}: cannot create it: directory {directory} is not writable by "
                    f"{master.describe()}")
    elif not master.can(path, _W):
        return f"{shown}: not writable by {master.describe()}"
    if app is not master and not app.myself:
        blocked = app.blocked_ancestor(path)
        if blocked is not None:
            return f"{shown}: directory {blocked} cannot be entered by {app.describe()}"
        # A file handed over (chowned to the workers' user at startup) will be theirs.
        if not handed_over and os.path.exists(path) and not app.can(path, _W):
            return f"{shown}: not writable by {app.describe()}"
    return None


def _readable_dir(shown: str, path: str, user: _Who) -> str | None:
    if not os.path.exists(path):
        return f"{shown}: no such directory"
    if not os.path.isdir(path):
        return f"{shown}: not a directory"
    blocked = user.blocked_ancestor(os.path.join(path, "x"))
    if blocked is not None and blocked != path:
        return f"{shown}: directory {blocked} cannot be entered by {user.describe()}"
    if not user.can(path, _R | _X):
        return f"{shown}: not readable by {user.describe()}"
    return None


def path_problems(settings: Any, identity: Identity | None,
                  chdir_done: bool = False) -> list[str]:
    """One line per path setting that cannot work, [] when all can.

    `chdir_done`: this process already changed to --chdir, so relative paths are relative
    to the current directory, as they will be for the workers."""
    problems: list[str] = []
    master = _Who(None)
    app = master if identity is None else _Who(identity)
    base = None if chdir_done else settings.chdir
    if settings.chdir:
        where = os.getcwd() if chdir_done else _absolute(settings.chdir, None)
        problem = _readable_dir(f"--chdir {settings.chdir}", where, app)
        if problem is None and not master.can(where, _X):
            problem = f"--chdir {settings.chdir}: cannot be entered by {master.describe()}"
        if problem is not None:
            problems.append(problem)
            base = None  # the paths below would be judged against a missing directory
    handed_over = app is not master and os.geteuid() == 0
    for flag, value in (("--error-logfile", settings.error_logfile),
                        ("--access-logfile", settings.access_logfile)):
        if value and value != "-":
            problem = _writable_file(f"{flag} {value}", _absolute(value, base), master, app,
                                     handed_over)
            if problem is not None:
                problems.append(problem)
    if settings.pid:
        path = _absolute(settings.pid, base)
        problem = _writable_file(f"--pid {settings.pid}", path, master, master, False)
        if problem is None and os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
            problem = f"--pid {settings.pid}: not a regular file"
        if problem is not None:
            problems.append(problem)
    mounts = ([("--static", mount) for mount in settings.static]
              + [("--cgi-dir", mount) for mount in settings.cgi_dir])
    for flag, mount in mounts:
        problem = _readable_dir(f"{flag} {mount.url_prefix}={mount.directory}",
                                _absolute(mount.directory, base), app)
        if problem is not None:
            problems.append(problem)
    if settings.routes:
        problem = _readable_dir(f"--routes {settings.routes}",
                                _absolute(settings.routes, base), app)
        if problem is not None:
            problems.append(problem)
    return problems
