"""The integration tests' one harness: start the real forkhttpd on a loopback socket the test owns
(Server, and the start_server fixture's type), talk to it (requests, raw bytes, clients that never
pause: Load), run short forkhttpd commands (check, control, the daemon launcher), stand in for
systemd's NOTIFY_SOCKET, and end every process we started by its PID (or its own process group).

tests/integration/clients.py and ops_support.py re-export their old names from here.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = [
    "APPS", "REPO", "Load", "NotifySocket", "Outcome", "Server", "StartServer", "alive",
    "cmdline", "forkhttpd_env", "free_port", "http_get", "kill_daemon", "listening_socket",
    "run_forkhttpd", "wait_until",
]

REPO = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(2048)
    return sock


class Server:
    """A forkhttpd master in its own session (so its whole process group is ours to end)."""

    def __init__(self, *args: str, cwd: Path | str | None = None,
                 env: dict[str, str] | None = None, bind_socket: bool = True,
                 log_dir: Path | None = None, extra_fds: Sequence[int] = (),
                 wrapper: Sequence[str] = ()) -> None:
        self.args = list(args)
        self.cwd = str(cwd or APPS)
        self.sock = listening_socket() if bind_socket else None
        self.port = self.sock.getsockname()[1] if self.sock else 0
        self.log_dir = Path(log_dir or Path(os.environ.get("TMPDIR", "/tmp")))
        self.stderr_path = self.log_dir / f"forkhttpd-{os.getpid()}-{id(self)}.err"
        self.stdout_path = self.stderr_path.with_suffix(".out")
        env_all = forkhttpd_env(env)
        # `wrapper` runs forkhttpd through another program (unshare): self.pid is then that
        # program's, and the session still holds every process the test started.
        command = [*wrapper, sys.executable, "-m", "forkhttpd", *self.args]
        fds: list[int] = list(extra_fds)
        if self.sock is not None:
            command += ["--bind", f"fd://{self.sock.fileno()}"]
            fds.append(self.sock.fileno())
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                command, cwd=self.cwd, env=env_all, pass_fds=fds, start_new_session=True,
                stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15.0, marker: str = "serving on") -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.stderr:
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"forkhttpd exited {self.proc.returncode}:\n{self.stderr}")
            time.sleep(0.05)
        raise AssertionError(f"forkhttpd not ready in {timeout}s:\n{self.stderr}")

    def wait_for_log(self, text: str, timeout: float = 10.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.stderr
            if log.count(text) >= count:
                return log
            time.sleep(0.05)
        raise AssertionError(f"{text!r} x{count} not logged in {timeout}s:\n{self.stderr}")

    def request(self, method: str = "GET", path: str = "/", body: bytes | str | None = None,
                headers: dict[str, str] | None = None,
                timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, \
                response.read()
        finally:
            conn.close()

    def raw(self, data: bytes, timeout: float = 5.0, shut: bool = False) -> bytes:
        """Send raw bytes, read until the server closes (or timeout)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            if shut:
                sock.shutdown(socket.SHUT_WR)
            chunks = []
            try:
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except (TimeoutError, ConnectionResetError):
                pass
            return b"".join(chunks)

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
                self.proc.wait(5)
        self.kill_group()  # anything of its session still alive (never happens when healthy)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        return self.proc.returncode

    def kill_group(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def children(self) -> list[int]:
        """PIDs whose parent is the master (zygotes and workers)."""
        return [int(p) for p in _children_of(self.pid)]

    def worker_pids(self) -> list[int]:
        return [pid for pid in self.children() if cmdline(pid).startswith("forkhttpd: worker ")]

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StartServer(Protocol):
    """The start_server fixture (conftest.py): starts a Server, waits until it serves (unless
    ready=False), and stops it when the test ends."""

    def __call__(self, *args: str, ready: bool = ..., cwd: Path | str | None = ...,
                 env: dict[str, str] | None = ..., bind_socket: bool = ...,
                 log_dir: Path | None = ..., extra_fds: Sequence[int] = (),
                 wrapper: Sequence[str] = ()) -> Server: ...


def _children_of(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return handle.read().split()
    except OSError:
        return []


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_until(predicate: Callable[..., object], timeout: float = 10.0,
               interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# -- servers that are not ours to start as Server: commands, daemons, ports ---------------

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


# -- clients that send requests without pause ------------------------------------------------
# Bounded in count and time, for the supervision, reload and signal tests: each request's
# outcome is recorded, so a test can count failures.

@dataclass
class Outcome:
    start: float
    end: float
    status: int  # 0 when the request failed (no response)
    body: str = ""
    error: str = ""
    client: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def latency(self) -> float:
        return self.end - self.start


@dataclass
class Load:
    """`clients` threads asking `path` on 127.0.0.1:`port`, each on one kept-alive connection
    (keep_alive=True: reconnecting only when the server says Connection: close) or on a new
    connection per request. Stops on stop(), after `max_seconds` or `max_requests` each."""

    port: int
    path: str = "/"
    clients: int = 1
    keep_alive: bool = True
    pause: float = 0.0
    timeout: float = 10.0
    max_seconds: float = 30.0
    max_requests: int = 100_000
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(self.clients)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Load:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        return self

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what happened --------------------------------------------------------------------
    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.snapshot() if not o.ok]

    def bodies_since(self, moment: float) -> list[str]:
        return [o.body for o in self.snapshot() if o.ok and o.start >= moment]

    def wait_for_body(self, predicate: Callable[..., object], timeout: float = 10.0) -> float:
        """Wait until a response started after now satisfies `predicate`; its end time."""
        since = time.monotonic()
        deadline = since + timeout
        while time.monotonic() < deadline:
            for outcome in self.snapshot():
                if outcome.ok and outcome.start >= since and predicate(outcome.body):
                    return outcome.end
            time.sleep(0.02)
        raise AssertionError(f"no matching response in {timeout}s; last: "
                             f"{[o.body for o in self.snapshot()[-5:]]}")

    # -- the clients ----------------------------------------------------------------------
    def _run(self, number: int) -> None:
        began = time.monotonic()
        conn: http.client.HTTPConnection | None = None
        headers = {} if self.keep_alive else {"Connection": "close"}
        for _ in range(self.max_requests):
            if self._stop.is_set() or time.monotonic() - began > self.max_seconds:
                break
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            start = time.monotonic()
            try:
                conn.request("GET", self.path, headers=headers)
                response = conn.getresponse()
                body = response.read().decode(errors="replace")
                outcome = Outcome(start, time.monotonic(), response.status, body, "", number)
                if response.will_close or not self.keep_alive:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as error:
                outcome = Outcome(start, time.monotonic(), 0, "", repr(error), number)
                if conn is not None:  # always: only its request/response can raise
                    conn.close()
                conn = None
            with self._lock:
                self.outcomes.append(outcome)
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()
