"""Start the real forkhttpd on a loopback socket the test owns, talk to it, stop it by PID."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

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
                 log_dir: Path | None = None, extra_fds: Sequence[int] = ()) -> None:
        self.args = list(args)
        self.cwd = str(cwd or APPS)
        self.sock = listening_socket() if bind_socket else None
        self.port = self.sock.getsockname()[1] if self.sock else 0
        self.log_dir = Path(log_dir or Path(os.environ.get("TMPDIR", "/tmp")))
        self.stderr_path = self.log_dir / f"forkhttpd-{os.getpid()}-{id(self)}.err"
        self.stdout_path = self.stderr_path.with_suffix(".out")
        env_all = dict(os.environ)
        env_all["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), env_all.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env_all.pop("NOTIFY_SOCKET", None)
        env_all.update(env or {})
        command = [sys.executable, "-m", "forkhttpd", *self.args]
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

    def request(self, method: str = "GET", path: str = "/", body: bytes | None = None,
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


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
