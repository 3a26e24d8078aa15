#!/usr/bin/python3
"""Inside the booted container (e2e-run.service): install forkhttpd offline and the shipped
units, then check start, reload, reload of broken code, graceful stop, socket activation and
the template unit through systemctl; write /e2e/out/results.json and power off.

Standard library only: it runs on the container's own python3, not forkhttpd's venv.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

E2E = Path("/e2e")
OUT = E2E / "out"
APP_DIR = Path("/srv/app")
VENV = Path("/opt/forkhttpd")
results: list[dict[str, object]] = []


def check(name: str, ok: object, detail: object = "") -> bool:
    results.append({"name": name, "ok": bool(ok), "detail": str(detail)[:2000]})
    print(f"e2e: {'ok  ' if ok else 'FAIL'} {name} {str(detail)[:300]}", flush=True)
    return bool(ok)


def sh(*command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def prop(unit: str, name: str) -> str:
    return sh("systemctl", "show", "-P", name, unit).stdout.strip()


def get(port: int, path: str, timeout: float = 10) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def wait(predicate: Callable[[], object], timeout: float = 30, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(interval)
    return False


class Load(threading.Thread):
    """Requests without pause, each on a new connection, counting what fails."""

    def __init__(self, port: int, path: str = "/version") -> None:
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.running = True
        self.total = 0
        self.failures: list[str] = []
        self.bodies: dict[str, int] = {}

    def run(self) -> None:
        while self.running:
            self.total += 1
            try:
                status, body = get(self.port, self.path)
                if status != 200:
                    self.failures.append(f"{status} {body[:80]}")
                self.bodies[body] = self.bodies.get(body, 0) + 1
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(repr(error))

    def finish(self) -> Load:
        self.running = False
        self.join(20)
        return self


def write_app(version: str, broken: bool = False) -> None:
    text = (E2E / "e2eapp.py").read_text().replace('VERSION = "v1"', f'VERSION = "{version}"')
    if broken:
        text += "\nraise RuntimeError('broken deploy')\n"
    (APP_DIR / "e2eapp.py").write_text(text)


def install() -> None:
    APP_DIR.mkdir(parents=True, exist_ok=True)
    write_app("v1")
    made = sh("python3", "-m", "venv", str(VENV), timeout=300)
    check("venv created", made.returncode == 0, made.stderr)
    pip = sh(str(VENV / "bin/pip"), "install", "--no-index", "--find-links",
             str(E2E / "wheels"), "forkhttpd", timeout=300)
    check("forkhttpd installed offline from wheels", pip.returncode == 0,
          pip.stdout[-500:] + pip.stderr[-1500:])
    Path("/usr/local/bin/forkhttpd").symlink_to(VENV / "bin/forkhttpd")
    shutil.copy(E2E / "units/forkhttpd.sysusers", "/usr/lib/sysusers.d/forkhttpd.conf")
    users = sh("systemd-sysusers")
    check("forkhttpd user created by systemd-sysusers",
          sh("id", "forkhttpd").returncode == 0, users.stderr)
    for unit in ("forkhttpd.service", "forkhttpd.socket", "forkhttpd@.service",
                 "forkhttpd@.socket"):
        shutil.copy(E2E / "units" / unit, Path("/etc/systemd/system") / unit)
    Path("/etc/forkhttpd").mkdir(exist_ok=True)
    common = ('app = "e2eapp:handler"\nchdir = "/srv/app"\nworkers = 2\n'
              'graceful_timeout = 10.0\nhealth_path = "/healthz"\n')
    Path("/etc/forkhttpd/forkhttpd.toml").write_text(common + 'bind = ["127.0.0.1:8000"]\n')
    Path("/etc/forkhttpd/blue.toml").write_text(common + 'bind = ["127.0.0.1:8001"]\n')
    sh("systemctl", "daemon-reload")


def test_check_config() -> None:
    result = sh("forkhttpd", "--check-config", "-c", "/etc/forkhttpd/forkhttpd.toml")
    check("forkhttpd --check-config passes", result.returncode == 0 and
          "configuration check is successful" in result.stdout, result.stdout + result.stderr)


def test_bad_configuration_fails_the_start() -> None:
    # ExecStartPre=forkhttpd --check-config: a log path the service cannot use fails the start
    # with the reason in the journal, and no worker ever runs.
    config = Path("/etc/forkhttpd/forkhttpd.toml")
    good = config.read_text()
    config.write_text(good + 'access_logfile = "/nonexistent/access.log"\n')
    try:
        started = sh("systemctl", "start", "forkhttpd", timeout=120)
        journal = sh("journalctl", "--no-pager", "-u", "forkhttpd", "-n", "50").stdout
        check("a bad log path fails systemctl start", started.returncode != 0,
              started.stderr)
        check("the journal names the setting and the reason",
              "--access-logfile /nonexistent/access.log: directory /nonexistent does not exist"
              in journal, journal[-1500:])
    finally:
        config.write_text(good)
        sh("systemctl", "stop", "forkhttpd")
        sh("systemctl", "reset-failed", "forkhttpd")


def test_start() -> None:
    begin = time.monotonic()
    started = sh("systemctl", "start", "forkhttpd", timeout=120)
    took = time.monotonic() - begin
    check("systemctl start forkhttpd", started.returncode == 0,
          f"{took:.2f}s {started.stderr}")
    check("forkhttpd.service active", prop("forkhttpd", "ActiveState") == "active")
    # Type=notify: start returned after READY=1, so the workers already serve.
    check("serving right after start returned", get(8000, "/version") == (200, "v1"))
    status = prop("forkhttpd", "StatusText")
    check("STATUS= shows workers and generation", "2 workers" in status
          and "generation 1" in status, status)
    main = prop("forkhttpd", "MainPID")
    users = sh("ps", "-o", "user=", "--ppid", main).stdout.split()
    check("master and workers run as user forkhttpd",
          sh("ps", "-o", "user=", "-p", main).stdout.strip() == "forkhttpd"
          and users and set(users) == {"forkhttpd"}, users)
    status_code, body = get(8000, "/healthz")
    check("health path answers", status_code == 200 and body.strip() == "ok", body)
    pid = "/run/forkhttpd/forkhttpd.pid"
    shown = sh("forkhttpd", "status", "--pid", pid)
    check("forkhttpd status works under the unit (pid file in RuntimeDirectory)",
          shown.returncode == 0 and main in shown.stdout, shown.stdout + shown.stderr)
    reopen = sh("forkhttpd", "reopen", "--pid", pid)
    check("forkhttpd reopen: both workers acknowledge", reopen.returncode == 0
          and "2 workers" in reopen.stdout, reopen.stdout + reopen.stderr)


def test_reload() -> None:
    load = Load(8000)
    load.start()
    time.sleep(0.5)
    write_app("v2")
    reloaded = sh("systemctl", "reload", "forkhttpd")
    check("systemctl reload forkhttpd", reloaded.returncode == 0, reloaded.stderr)
    saw_v2 = wait(lambda: get(8000, "/version") == (200, "v2"), 30)
    time.sleep(0.5)
    load.finish()
    check("reload serves the new code", saw_v2, load.bodies)
    check("no failed request during the reload", not load.failures and load.total > 20,
          f"{load.total} requests, failures {load.failures[:5]}")
    check("STATUS= after reload", wait(lambda: "generation 2" in prop(
        "forkhttpd", "StatusText"), 20), prop("forkhttpd", "StatusText"))
    check("still active after reload", prop("forkhttpd", "ActiveState") == "active")

    write_app("v3", broken=True)
    sh("systemctl", "reload", "forkhttpd")
    failed = wait(lambda: "reload failed" in prop("forkhttpd", "StatusText"), 30)
    check("a broken reload is reported in STATUS=", failed, prop("forkhttpd", "StatusText"))
    check("the old generation keeps serving after a broken reload",
          get(8000, "/version") == (200, "v2") and prop("forkhttpd", "ActiveState") == "active")
    write_app("v2")


def test_stop() -> None:
    slow: list[tuple[int, str]] = []
    client = threading.Thread(target=lambda: slow.append(get(8000, "/sleep?s=2")))
    client.start()
    time.sleep(0.5)
    begin = time.monotonic()
    stopped = sh("systemctl", "stop", "forkhttpd", timeout=120)
    took = time.monotonic() - begin
    client.join(15)
    check("systemctl stop forkhttpd", stopped.returncode == 0, stopped.stderr)
    check("graceful: the request in flight finished", slow == [(200, "slept")], slow)
    check("stopped within TimeoutStopSec, cleanly", took < 40 and
          prop("forkhttpd", "Result") == "success" and
          prop("forkhttpd", "ExecMainStatus") == "0",
          f"{took:.2f}s Result={prop('forkhttpd', 'Result')} "
          f"status={prop('forkhttpd', 'ExecMainStatus')}")
    check("inactive after stop", prop("forkhttpd", "ActiveState") == "inactive")
    check("no watchdog restart happened", prop("forkhttpd", "NRestarts") == "0",
          prop("forkhttpd", "NRestarts"))


def test_socket_activation() -> None:
    # The configuration names another port: serving on 8000 proves the socket came from
    # systemd (LISTEN_FDS), which wins over `bind`. (/proc/PID/environ cannot tell:
    # setproctitle reuses that memory for the process title.)
    config = Path("/etc/forkhttpd/forkhttpd.toml")
    config.write_text(config.read_text().replace("127.0.0.1:8000", "127.0.0.1:8009"))
    started = sh("systemctl", "start", "forkhttpd.socket")
    check("systemctl start forkhttpd.socket", started.returncode == 0, started.stderr)
    check("service not started by the socket alone",
          prop("forkhttpd.service", "ActiveState") == "inactive")
    first = get(8000, "/version", timeout=60)
    check("first connection starts the service and is answered", first == (200, "v2"), first)
    # A worker may answer a moment before the master's READY=1 reaches systemd.
    check("service active after activation", wait(lambda: prop(
        "forkhttpd.service", "ActiveState") == "active", 20),
        prop("forkhttpd.service", "ActiveState"))
    try:
        get(8009, "/version", timeout=3)
        bound_own = True
    except OSError:
        bound_own = False
    check("master serves systemd's socket (LISTEN_FDS), not its own bind", not bound_own)
    # The socket stays open while the service restarts: connections wait, none is refused.
    load = Load(8000)
    load.start()
    time.sleep(0.5)
    restarted = sh("systemctl", "restart", "forkhttpd.service", timeout=120)
    time.sleep(0.5)
    load.finish()
    check("restart behind the socket loses no request",
          restarted.returncode == 0 and not load.failures and load.total > 10,
          f"{load.total} requests, failures {load.failures[:5]}")
    sh("systemctl", "stop", "forkhttpd.socket", "forkhttpd.service")
    config.write_text(config.read_text().replace("127.0.0.1:8009", "127.0.0.1:8000"))


def get_unix(path: str, target: str, timeout: float = 60) -> tuple[int, str]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_template_socket() -> None:
    started = sh("systemctl", "start", "forkhttpd@blue.socket")
    check("systemctl start forkhttpd@blue.socket", started.returncode == 0, started.stderr)
    answer = get_unix("/run/forkhttpd-blue.sock", "/version")
    check("forkhttpd@blue.socket activates forkhttpd@blue on its unix socket",
          answer == (200, "v2"), answer)
    sh("systemctl", "stop", "forkhttpd@blue.socket", "forkhttpd@blue.service")


def test_template() -> None:
    started = sh("systemctl", "start", "forkhttpd@blue")
    check("systemctl start forkhttpd@blue", started.returncode == 0, started.stderr)
    check("forkhttpd@blue serves its own port", get(8001, "/version") == (200, "v2"))
    stopped = sh("systemctl", "stop", "forkhttpd@blue")
    check("systemctl stop forkhttpd@blue", stopped.returncode == 0 and
          prop("forkhttpd@blue", "Result") == "success", stopped.stderr)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    try:
        state = sh("systemctl", "is-system-running", "--wait", timeout=120).stdout.strip()
        check("container booted", state in ("running", "degraded"), state)
        offline = sh("curl", "-sS", "-m", "3", "-o", "/dev/null", "http://deb.debian.org/")
        check("the container has no network: the install below is offline",
              offline.returncode != 0, offline.stderr.strip())
        install()
        if all(r["ok"] for r in results):
            for step in (test_check_config, test_bad_configuration_fails_the_start,
                         test_start, test_reload, test_stop, test_socket_activation,
                         test_template_socket, test_template):
                try:
                    step()
                except Exception:  # noqa: BLE001 - recorded, and the next step still runs
                    check(f"{step.__name__} raised", False, traceback.format_exc())
    except Exception:  # noqa: BLE001
        check("e2e driver raised", False, traceback.format_exc())
    finally:
        journal = sh("journalctl", "--no-pager", "-o", "short-monotonic", "-u",
                     "forkhttpd*", timeout=60)
        (OUT / "journal.txt").write_text(journal.stdout + journal.stderr)
        failed = sh("systemctl", "--failed", "--no-legend")
        (OUT / "failed-units.txt").write_text(failed.stdout)
        (OUT / "results.json").write_text(json.dumps(
            {"results": results, "seconds": time.monotonic() - began}, indent=1))
        subprocess.run(["systemctl", "poweroff", "--no-block"], timeout=30)


if __name__ == "__main__":
    main()
