"""sd_notify without libsystemd: datagrams to $NOTIFY_SOCKET; must not import anything else
from forkhttpd (the master calls it; it never fails the caller)."""

from __future__ import annotations

import os
import socket
import time

__all__ = ["notify", "notify_enabled", "watchdog_interval", "monotonic_usec"]


def notify_enabled() -> bool:
    return bool(os.environ.get("NOTIFY_SOCKET"))


def notify(*lines: str) -> bool:
    """Send "KEY=value" lines to systemd; False when there is no NOTIFY_SOCKET or it fails."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode("utf-8", "replace"))
        return True
    except OSError:
        return False


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in µs, for RELOADING=1's MONOTONIC_USEC (systemd 253+)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval() -> float:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), 0 when not asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return 0.0
    try:
        return max(int(usec) / 2_000_000, 0.05)
    except ValueError:
        return 0.0
