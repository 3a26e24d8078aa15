"""--user and --group: resolve them in the master (so a typo fails at startup) and drop to them
in the processes that import the application (each zygote, hence every worker, and the
--check-config child); must not import the master or worker packages.

The master keeps root: it binds privileged ports, signals workers and reopens its own logs.
Only code that runs the application gives privileges up, before the first import of it.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from typing import Any

__all__ = ["Identity", "PrivilegeError", "drop", "drop_for_app", "hand_over_files", "resolve"]


class PrivilegeError(Exception):
    """--user/--group cannot be used; str() says which and why, in one line."""


@dataclass(frozen=True)
class Identity:
    """Who the application runs as. `user` is the passwd name used for supplementary groups
    (None for a numeric uid without a passwd entry)."""

    uid: int
    gid: int
    user: str | None
    home: str | None = None


def _lookup_user(text: str) -> pwd.struct_passwd | int:
    try:
        return pwd.getpwnam(text)
    except KeyError:
        pass
    if text.isdigit():
        try:
            return pwd.getpwuid(int(text))
        except KeyError:
            return int(text)  # a uid with no passwd entry (containers do this)
    raise PrivilegeError(f"--user {text}: no such user")


def _lookup_group(text: str) -> int:
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        pass
    if text.isdigit():
        return int(text)
    raise PrivilegeError(f"--group {text}: no such group")


def resolve(user: str | None, group: str | None) -> Identity | None:
    """The identity the settings ask for, or None when neither --user nor --group is set."""
    if not user and not group:
        return None
    name: str | None = None
    home: str | None = None
    if user:
        entry = _lookup_user(user)
        if isinstance(entry, int):
            if not group:
                raise PrivilegeError(f"--user {user}: uid {user} has no passwd entry, so its "
                                     "group is unknown; give --group too")
            uid, gid = entry, _lookup_group(group)
        else:
            name, home = entry.pw_name, entry.pw_dir
            uid = entry.pw_uid
            gid = _lookup_group(group) if group else entry.pw_gid
    else:
        uid, gid = os.getuid(), _lookup_group(group or "")
    if os.geteuid() != 0 and (uid != os.geteuid() or gid != os.getegid()):
        flags = " and ".join(flag for flag, value in (("--user", user), ("--group", group))
                             if value)
        raise PrivilegeError(f"{flags}: switching to uid {uid}, gid {gid} needs root; "
                             f"running as uid {os.geteuid()}")
    return Identity(uid, gid, name, home)


def drop(identity: Identity | None) -> None:
    """Become `identity` for good: supplementary groups, then gid, then uid (in that order:
    after setuid the process could no longer change its groups)."""
    if identity is None:
        return
    if os.geteuid() != 0:
        return  # resolve() made sure we already are this identity
    if identity.user is not None:
        os.initgroups(identity.user, identity.gid)
    else:
        os.setgroups([identity.gid])
    os.setgid(identity.gid)  # as root: real, effective and saved gid
    os.setuid(identity.uid)  # as root: real, effective and saved uid
    if identity.uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise PrivilegeError("could not drop root privileges: setuid(0) still works")
    if identity.user is not None and identity.home and identity.uid != 0:
        # Libraries that look for ~/.config and the like should find the user's, not root's.
        os.environ["HOME"] = identity.home
        os.environ["USER"] = os.environ["LOGNAME"] = identity.user


def drop_for_app(settings: Any) -> None:
    """The hook the zygote calls right before importing the app (and the check child too)."""
    drop(resolve(settings.user, settings.group))


def hand_over_files(settings: Any, identity: Identity | None) -> list[str]:
    """Give the log files to the workers' user, as gunicorn does: a worker opens the access
    log and reopens both logs on USR1 after it dropped root. Returns what was changed."""
    if identity is None or os.geteuid() != 0:
        return []
    changed = []
    for path in (settings.access_logfile, settings.error_logfile):
        if not path or path == "-":
            continue
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            try:
                os.fchown(fd, identity.uid, identity.gid)
            finally:
                os.close(fd)
            changed.append(path)
        except OSError as error:
            raise PrivilegeError(f"cannot give {path} to uid {identity.uid}: "
                                 f"{error.strerror}") from None
    return changed
