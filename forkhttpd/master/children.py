"""Process primitives of the master package: the system calls the arbiter makes on its
children (`System`, the seam its unit tests replace with fakes), forking a whole server into a
child (embedded use), waiting for it, signalling, and describing exit statuses; the master
package is the only place in forkhttpd that forks, waits or kills, and this module imports
nothing from forkhttpd but the logs."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Callable

from ..runtime import logs

__all__ = ["System", "become_subreaper", "describe_status", "send", "start_in_child",
           "stop_child", "wait_child"]

log = logs.error_log


def send(pid: int, sig: int) -> None:
    """Signal `pid` if it is a real PID; a process already gone is not an error."""
    if pid <= 0:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        log.warning("cannot become a child subreaper; worker exit codes may be lost")


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            return f"signal {signal.Signals(signum).name}"
        except ValueError:
            return f"signal {signum}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


class System:
    """What the arbiter asks of the kernel about its children, the clock, its title and
    systemd, in one place, so that a test drives the arbiter with a fake: no fork, no
    signal, no sleep."""

    now = staticmethod(time.monotonic)

    def signal(self, pid: int, sig: int) -> None:
        send(pid, sig)

    def reap(self) -> tuple[int, int] | None:
        """One exited child, (pid, wait status), or None when none has exited (or none is
        left): the one waitpid(-1) of forkhttpd."""
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        return (pid, status) if pid else None

    def read(self, fd: int) -> bytes | None:
        """What a non-blocking pipe holds: None if nothing yet, b"" at its end (or if it is
        gone)."""
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def write(self, fd: int, data: bytes) -> bool:
        try:
            os.write(fd, data)
        except OSError:
            return False
        return True

    def close(self, fd: int) -> None:
        try:
            os.close(fd)
        except OSError:
            pass

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def title(self, text: str) -> None:
        from setproctitle import setproctitle

        setproctitle(text)

    def notify(self, *lines: str) -> None:
        from ..runtime import systemd

        systemd.notify(*lines)


def start_in_child(run: Callable[[], int]) -> int:
    """Fork; the child runs `run()` and exits with its result. Returns the child's PID."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = run()
        finally:
            os._exit(code)
    return pid


def stop_child(pid: int, graceful: bool = True, timeout: float = 35.0) -> int | None:
    """Signal a child started by start_in_child and wait for it; its exit code, or None."""
    try:
        os.kill(pid, signal.SIGTERM if graceful else signal.SIGINT)
    except ProcessLookupError:
        pass
    return wait_child(pid, timeout)


def wait_child(pid: int, timeout: float | None = None) -> int | None:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, 0 if deadline is None else os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return os.waitstatus_to_exitcode(status)
        if deadline is not None and time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = None
        time.sleep(0.02)
