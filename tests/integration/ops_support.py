"""Helpers for the operations tests (test_ops_*): a fake NOTIFY_SOCKET, short forkhttpd
commands, free loopback ports, and ending daemons (which we started) by PID and group."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .harness import REPO

__all__ = ["NotifySocket", "alive", "forkhttpd_env", "free_port", "kill_daemon", "run_forkhttpd"]


def forkhttpd_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    env.pop("NOTIFY_SOCKET", None)
    env.update(extra or {})
    return env


def run_forkhttpd(*args: str, cwd: Path | str | None = None, timeout: float = 60.0,
                  env: dict[str, str] | None = None,
                  pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run a forkhttpd command that ends by itself (check, control, daemon launcher)."""
    return subprocess.run([sys.executable, "-m", "forkhttpd", *args], cwd=cwd,
                          env=forkhttpd_env(env), capture_output=True, text=True,
                          timeout=timeout, pass_fds=pass_fds, stdin=subprocess.DEVNULL)


def free_port() -> int:
    """A loopback port nobody listens on right now (for tests that cannot pass fd://N)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[dict[str, str]] = []

    def receive(self, timeout: float = 0.1) -> list[dict[str, str]]:
        got = []
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, BlockingIOError):
                break
            message = dict(line.split("=", 1) for line in data.decode().splitlines()
                           if "=" in line)
            got.append(message)
            self.sock.settimeout(0.01)
        self.messages += got
        return got

    def wait_for(self, key: str, value: str | None = None, timeout: float = 15.0,
                 after: int = 0) -> dict[str, str]:
        """The first message (from index `after`) with `key` (= `value`), waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages[after:]:
                if key in message and (value is None or message[key] == value):
                    return message
            if time.monotonic() >= deadline:
                raise AssertionError(f"no {key}={value or '*'} in {timeout}s; got "
                                     f"{self.messages[after:]}")
            self.receive()

    def index_of(self, key: str, value: str | None = None, after: int = 0) -> int:
        for index, message in enumerate(self.messages[after:], after):
            if key in message and (value is None or message[key] == value):
                return index
        return -1

    def close(self) -> None:
        self.sock.close()


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_daemon(pid: int | None, timeout: float = 15.0) -> None:
    """End a daemon we started: SIGTERM by PID, then SIGKILL to its process group (its own
    session, created by the daemon's setsid) if it lingers."""
    if not pid:
        return
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    if group != os.getpgid(0):
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET `path` from a server on loopback: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
