"""systemd's side of the contract without systemd as PID 1: sd_notify read from a fake
NOTIFY_SOCKET while the real forkhttpd runs, socket activation through
systemd-socket-activate (LISTEN_FDS/LISTEN_PID), and a socket passed as fd://N."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .harness import APPS, REPO, NotifySocket, StartServer, free_port, run_forkhttpd, wait_until
from .harness import http_get as _get


@pytest.fixture
def notify(tmp_path: Path) -> Any:
    listener = NotifySocket(tmp_path)
    yield listener
    listener.close()


def test_ready_status_reload_watchdog_and_stopping(start_server: StartServer, notify: NotifySocket,
                                                   tmp_path: Path) -> None:
    config = tmp_path / "forkhttpd.toml"
    config.write_text('app = "mymod:handler"\nworkers = 2\n')
    server = start_server("-c", str(config), ready=False,
                          env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "300000"})

    ready = notify.wait_for("READY", "1")
    # READY=1 means the workers serve: a request right now is answered.
    assert _get(server.port, "/hello") == (200, b"Hello world!")
    assert ready["MAINPID"] == str(server.pid)
    assert "2 workers" in ready["STATUS"] and "generation 1" in ready["STATUS"]

    # WATCHDOG_USEC=300000 without WATCHDOG_PID: a ping every 150 ms while the loop runs.
    start = len(notify.messages)
    time.sleep(1.0)
    notify.receive()
    pings = [m for m in notify.messages[start:] if m.get("WATCHDOG") == "1"]
    assert 3 <= len(pings) <= 12, notify.messages[start:]

    # A reload: RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC, same clock as ours), then
    # READY=1 once the new generation serves, with a STATUS saying so.
    mark = len(notify.messages)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    server.send_signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING", "1", after=mark)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before <= int(reloading["MONOTONIC_USEC"]) <= after
    at = notify.index_of("RELOADING", "1", after=mark)
    done = notify.wait_for("READY", "1", after=at + 1)
    assert "generation 2" in done["STATUS"] and "last reload: ok" in done["STATUS"]

    # A reload whose app cannot load: READY=1 again (generation 2 keeps serving), and the
    # STATUS line says why.
    config.write_text('app = "raises_at_import:handler"\nworkers = 2\n')
    mark = len(notify.messages)
    server.send_signal(signal.SIGHUP)
    notify.wait_for("RELOADING", "1", after=mark)
    at = notify.index_of("RELOADING", "1", after=mark)
    failed = notify.wait_for("READY", "1", after=at + 1)
    assert "reload failed" in failed["STATUS"], failed
    assert _get(server.port, "/version") == (200, b"v1")

    mark = len(notify.messages)
    server.send_signal(signal.SIGTERM)
    notify.wait_for("STOPPING", "1", after=mark)
    assert server.proc.wait(20) == 0
    # No watchdog ping is required after STOPPING=1, and no READY=1 may follow it.
    stop_at = notify.index_of("STOPPING", "1", after=mark)
    notify.receive()
    assert notify.index_of("READY", "1", after=stop_at) == -1


def test_no_watchdog_pings_unless_asked(start_server: StartServer, notify: NotifySocket) -> None:
    server = start_server("--app", "mymod:handler", ready=False,
                          env={"NOTIFY_SOCKET": notify.path})
    notify.wait_for("READY", "1")
    time.sleep(0.6)
    notify.receive()
    assert not [m for m in notify.messages if "WATCHDOG" in m]
    server.stop()


def test_daemon_is_refused_under_a_service_manager(notify: NotifySocket) -> None:
    result = run_forkhttpd("--daemon", "--app", "mymod:handler", cwd=APPS,
                           env={"NOTIFY_SOCKET": notify.path}, timeout=20)
    assert result.returncode == 2
    assert "--daemon" in result.stderr and "NOTIFY_SOCKET" in result.stderr
    assert "systemd" in result.stderr
    notify.receive()
    assert notify.messages == []  # it never started


def test_socket_activation_with_systemd_socket_activate(tmp_path: Path) -> None:
    tool = shutil.which("systemd-socket-activate")
    assert tool, ("systemd-socket-activate is missing: apt-get install -y systemd "
                  "(CI: add it to .ci/run)")
    port = free_port()
    log = tmp_path / "server.err"
    with open(log, "wb") as err:
        # systemd-socket-activate binds, waits for the first connection, then execs
        # forkhttpd in place (same PID) with LISTEN_FDS=1, LISTEN_PID=<its pid>, fd 3.
        proc = subprocess.Popen(
            [tool, "-l", f"127.0.0.1:{port}", "-E", f"PYTHONPATH={REPO}",
             sys.executable, "-m", "forkhttpd", "--app", "mymod:handler", "--workers", "2",
             # would fail if used: the inherited socket must win over --bind
             "--bind", "unix:/nonexistent-dir/x.sock"],
            cwd=APPS, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        assert wait_until(lambda: b"Listening on" in log.read_bytes(), 10), log.read_text()
        assert _get(port, "/hello", timeout=20) == (200, b"Hello world!")
        pids = {_get(port, "/pid")[1] for _ in range(20)}
        assert all(p.isdigit() and int(p) != proc.pid for p in pids)
        # Workers answer as soon as they exist; the master logs once all of them are ready.
        assert wait_until(lambda: f"serving on 127.0.0.1:{port}" in log.read_text(), 10), \
            log.read_text()
        with open(f"/proc/{proc.pid}/cmdline", "rb") as handle:
            assert b"forkhttpd: master" in handle.read()  # exec'd in place: same PID
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_fd_bind_serves_the_socket_the_test_bound(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler")
    assert server.sock is not None
    assert f"serving on 127.0.0.1:{server.port}" in server.stderr
    assert server.request("GET", "/hello")[2] == b"Hello world!"


def test_fd_bind_of_something_else_is_a_clear_error(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    try:
        result = run_forkhttpd("--app", "mymod:handler", "--bind", f"fd://{read_fd}",
                               cwd=APPS, pass_fds=(read_fd,), timeout=20)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert result.returncode != 0
    assert f"fd://{read_fd}: not a socket" in result.stderr


def test_listen_fds_for_another_pid_are_ignored(start_server: StartServer) -> None:
    # LISTEN_PID names someone else (a parent that did not unset it): not ours to use.
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        server = start_server("--app", "mymod:handler",
                              env={"LISTEN_FDS": "1", "LISTEN_PID": "1"})
        assert f"serving on 127.0.0.1:{server.port}" in server.stderr
        assert server.request("GET", "/hello")[0] == 200
