"""Start, probe, measure and stop the servers under test (forkhttpd, gunicorn, nginx) on
loopback, for run_locust.py and bench.py; no load generation and no locust import here.

Every server is started in its own session (start_new_session=True), so that its whole
process tree shares one process group that only we created; stopping it signals the master
by PID, then SIGKILLs that group if anything outlived the grace period. Nothing is ever
looked up or killed by name.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["LOOPBACK", "REPO_ROOT", "ServerProcess", "TreeCpu", "free_port",
           "forkhttpd_command", "http_request", "tree_cpu_seconds", "tree_pids"]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOPBACK = "127.0.0.1"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port(host: str = LOOPBACK) -> int:
    """An ephemeral TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def forkhttpd_command(port: int, app: str | None = "loadtests.app:app", workers: int = 2,
                      extra: Sequence[str] = ()) -> list[str]:
    """The command line that runs this worktree's forkhttpd on loopback."""
    command = [sys.executable, "-m", "forkhttpd", "--workers", str(workers),
               "--bind", f"{LOOPBACK}:{port}"]
    if app:
        command += ["--app", app]
    return command + list(extra)


def http_request(port: int, path: str = "/", method: str = "GET", timeout: float = 2.0,
                 host: str = LOOPBACK, body: bytes = b"") -> tuple[int, bytes]:
    """One request on a fresh connection (Connection: close); returns (status, body)."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("ascii")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head + body)
        raw = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
            # Stop at the end of a Content-Length body: a server that keeps the connection
            # open despite "Connection: close" (uWSGI's http11-socket) still answers here.
            head_end = raw.find(b"\r\n\r\n")
            if head_end >= 0:
                length = re.search(rb"\r\ncontent-length:[ \t]*(\d+)\r\n",
                                   raw[:head_end + 2], re.I)
                size = 0 if method == "HEAD" else int(length[1]) if length else -1
                if size >= 0 and len(raw) >= head_end + 4 + size:
                    break
    head_end = raw.find(b"\r\n\r\n")
    if not raw.startswith(b"HTTP/1.") or head_end < 0:
        raise ConnectionError(f"not an HTTP response: {raw[:60]!r}")
    return int(raw.split(b" ", 2)[1]), raw[head_end + 4:]


class ServerProcess:
    """A server started in a new session, with its output in a log file."""

    def __init__(self, name: str, command: Sequence[str], port: int, cwd: str = REPO_ROOT,
                 env: dict[str, str] | None = None, stop_signal: int = signal.SIGTERM,
                 log_dir: str | None = None, pythonpath: Sequence[str] | None = None) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.env = dict(os.environ if env is None else env)
        # The worktree first, so that `python -m forkhttpd` is this branch's forkhttpd
        # (or `pythonpath`, e.g. another checkout's tree, instead of it).
        first = [REPO_ROOT] if pythonpath is None else list(pythonpath)
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (*first, self.env.get("PYTHONPATH", "")) if p)
        self.log_path = os.path.join(log_dir or tempfile.gettempdir(),
                                     f"{name}-{port}.log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self, ready_path: str = "/", timeout: float = 20.0) -> ServerProcess:
        """Start and wait until the server answers an HTTP request on its port."""
        self.launch()
        return self.wait_ready(ready_path, timeout)

    def launch(self) -> ServerProcess:
        """Start the process without waiting for it (see wait_ready)."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, ready_path: str = "/", timeout: float = 20.0) -> ServerProcess:
        """Wait until the server answers any HTTP response on its port; RuntimeError if it
        exits or stays silent (it is then stopped)."""
        assert self.process is not None, "not started"
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.process.returncode} "
                                   f"before answering:\n{self.log_tail()}")
            try:
                http_request(self.port, ready_path, timeout=1.0)
                return self
            except OSError as error:
                last_error = error
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on port {self.port} within {timeout:.0f}"
                           f" s ({last_error}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as log:
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        """Send `signum` to the master, by PID."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def stop(self, grace: float = 10.0) -> int | None:
        """Stop the master by PID, then SIGKILL whatever is left in its process group."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, self.stop_signal)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # The group id is the master's PID (a new session); only our server is in it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5.0)
        return process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# -- process-tree accounting ------------------------------------------------------------------
def _read_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 onward), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _parents() -> dict[int, int]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _read_stat(int(entry))
            if fields is not None:
                table[int(entry)] = int(fields[1])
    return table


def tree_pids(root: int) -> list[int]:
    """`root` and all its living descendants."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


@dataclass(frozen=True)
class TreeCpu:
    """CPU seconds of a process tree: user+system of the living processes plus the
    cutime+cstime they collected from children that exited and were reaped."""

    seconds: float
    processes: int


def tree_cpu_seconds(root: int) -> TreeCpu:
    """utime+stime+cutime+cstime summed over `root` and its living descendants.

    A process's cutime/cstime hold only its reaped children, which are no longer in the
    tree, so nothing is counted twice; a worker that exited during a round moves from its
    own utime to its reaper's cutime and the difference of two samples stays right.
    """
    ticks, count = 0, 0
    for pid in tree_pids(root):
        fields = _read_stat(pid)
        if fields is None:
            continue
        # stat fields 14-17 (utime stime cutime cstime) are at 11-14 after the name.
        ticks += sum(int(value) for value in fields[11:15])
        count += 1
    return TreeCpu(ticks / _CLOCK_TICKS, count)


def process_title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def worker_pids(root: int) -> list[int]:
    """The worker processes of a server tree: those whose title says "worker", else the
    leaves of the tree (a server that does not retitle its workers)."""
    pids = [pid for pid in tree_pids(root) if pid != root]
    named = [pid for pid in pids if "worker" in process_title(pid)]
    if named:
        return named
    parents = set(_parents().values())
    return [pid for pid in pids if pid not in parents] or [root]


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix=prefix) as path:
        yield path
