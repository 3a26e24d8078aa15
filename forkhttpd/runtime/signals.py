"""Signal plumbing for every role: handlers that only record and wake, never act; must not
import worker, interfaces, master or any other layer above runtime.

The master's handlers do nothing at all: signal.set_wakeup_fd writes each signal's number to
a non-blocking pipe, and the master's loop reads that pipe as its signal queue.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

__all__ = ["MASTER_SIGNALS", "SignalQueue", "reset_signals"]

MASTER_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT,
                  signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2,
                  signal.SIGCHLD)


def _wake_only(signum: int, frame: FrameType | None) -> None:
    """The byte set_wakeup_fd writes is all the master needs."""


class SignalQueue:
    """The master's signals, as numbers read from the wake-up pipe."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.previous_wakeup = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        for signum in MASTER_SIGNALS:
            signal.signal(signum, _wake_only)

    def pending(self) -> list[int]:
        """The signals received since the last call, in order (CHLD coalesced)."""
        received: list[int] = []
        while True:
            try:
                data = os.read(self.read_fd, 4096)
            except BlockingIOError:
                break
            if not data:
                break
            received.extend(data)
        return received

    def close(self) -> None:
        signal.set_wakeup_fd(self.previous_wakeup)
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def reset_signals() -> None:
    """In a freshly forked child: forget the master's handlers and wake-up pipe."""
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    for signum in MASTER_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)

