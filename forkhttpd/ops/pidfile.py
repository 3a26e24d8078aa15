"""The master's PID file: written atomically, flock-ed for the master's whole life, removed on
exit only while it still names us; must not import anything from forkhttpd (cli, daemon and
control use it, and python-daemon's DaemonContext enters it as its `pidfile=`).

The lock, not the PID, says whether a master is alive: a PID can be recycled by an unrelated
process, a lock dies with the process that holds it. Children forked by the master close
their copy of the descriptor (os.register_at_fork), so a surviving worker never keeps a dead
master's lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from types import TracebackType

__all__ = ["AlreadyRunning", "PidFile", "PidFileError", "holder", "read_pid"]


class PidFileError(Exception):
    """The PID file cannot be used; str() says which file and why, in one line."""


class AlreadyRunning(PidFileError):
    """Another master holds the PID file."""

    def __init__(self, path: str, pid: int | None) -> None:
        shown = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"already running ({shown}, pid file {path})")
        self.pid = pid


def read_pid(path: str) -> int | None:
    """The PID written in `path`, or None when the file is missing, empty or not a number."""
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            text = file.read(64).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def _is_forkhttpd(pid: int) -> bool:
    """True when `pid` is alive and its command line (or title) mentions forkhttpd."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return b"forkhttpd" in file.read()
    except OSError:
        return False


def _locked_by_other(fd: int) -> bool:
    """Try the lock without waiting: True when another open file description holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def holder(path: str) -> int | None:
    """The PID of the live master holding `path`, or None when nobody does.

    A file that is not locked but names a live forkhttpd process also counts (a master
    whose file was rewritten by hand, say): refusing to start beats two masters.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise PidFileError(f"--pid {path}: {error.strerror}") from None
    try:
        pid = read_pid(path)
        # A status probe may hold the lock for a moment: retry briefly before concluding.
        for _ in range(10):
            if not _locked_by_other(fd):
                break
            if pid is not None and _is_forkhttpd(pid):
                return pid
            time.sleep(0.05)
        else:
            return pid or -1
    finally:
        os.close(fd)
    return pid if pid is not None and pid != os.getpid() and _is_forkhttpd(pid) else None


class PidFile:
    """`with PidFile(path):` (or DaemonContext(pidfile=...)) holds the file for the block."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.fd = -1
        self.pid = 0
        self.took_over: int | None = None  # the stale PID found, for the log
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        # In a forked child (zygote, worker): the lock stays the master's alone.
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1

    def acquire(self) -> None:
        """Write our PID atomically and lock the file; AlreadyRunning if a master holds it."""
        if self.fd >= 0:
            return
        directory, name = os.path.split(self.path)
        try:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise PidFileError(f"--pid {self.path}: directory {directory}: "
                               f"{error.strerror}") from None
        try:
            # Starters serialise on the directory, so that check-then-replace is one step.
            self._lock_directory(dir_fd)
            running = holder(self.path)
            if running is not None:
                raise AlreadyRunning(self.path, running if running > 0 else None)
            self.took_over = read_pid(self.path)
            self.pid = os.getpid()
            temporary = os.path.join(directory, f".{name}.{self.pid}.tmp")
            try:
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                             0o644)
            except OSError as error:
                raise PidFileError(f"--pid {self.path}: {error.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.write(fd, f"{self.pid}\n".encode())
                os.fsync(fd)
                os.rename(temporary, self.path)  # readers see the old file or the new one
            except OSError as error:
                os.close(fd)
                try:
                    os.unlink(temporary)
                except OSError:
                    pass
                raise PidFileError(f"--pid {self.path}: {error.strerror}") from None
            self.fd = fd
        finally:
            os.close(dir_fd)  # also drops the directory lock

    @staticmethod
    def _lock_directory(dir_fd: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return  # a starter stuck in there: go on without the serialisation
                time.sleep(0.01)
            except OSError as error:
                if error.errno in (errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP):
                    return  # a filesystem without flock on directories
                raise

    def release(self) -> None:
        """Remove the file if it still names us (a successor may own it now), then unlock."""
        if self.fd < 0:
            return
        try:
            if os.getpid() == self.pid and read_pid(self.path) == self.pid:
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.fd = -1

    @property
    def is_locked(self) -> bool:
        return self.fd >= 0

    # -- the context manager protocol python-daemon expects of `pidfile=` -------------------
    def __enter__(self) -> PidFile:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()
