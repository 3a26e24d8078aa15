"""Classic daemon (-D) with its ready pipe, the PID file (-p) and `forkhttpd
reload|stop|status`: the real forkhttpd, daemons ended by the PID they reported."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from forkhttpd.ops.pidfile import holder, read_pid

from .harness import (
    APPS,
    StartServer,
    alive,
    cmdline,
    kill_daemon,
    listening_socket,
    run_forkhttpd,
    wait_until,
)
from .harness import http_get as _get


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def _dead_pid() -> int:
    """A PID no process has right now."""
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def test_daemon_start_status_reload_stop(tmp_path: Path) -> None:
    sock = listening_socket()
    port = sock.getsockname()[1]
    pidfile = tmp_path / "run" / "forkhttpd.pid"
    pidfile.parent.mkdir()
    log = tmp_path / "error.log"
    master = None
    try:
        started = time.monotonic()
        result = run_forkhttpd("-D", "--pid", str(pidfile), "--app", "mymod:handler",
                               "-w", "2", "--bind", f"fd://{sock.fileno()}",
                               "--error-logfile", str(log), cwd=APPS,
                               pass_fds=(sock.fileno(),), timeout=60)
        assert result.returncode == 0, result.stderr + log.read_text()
        match = re.search(r"running in the background as pid (\d+)", result.stdout)
        assert match, result.stdout
        master = int(match[1])
        # The launcher returned only once the workers serve: no retry needed.
        assert _get(port, "/hello") == (200, b"Hello world!")
        assert read_pid(str(pidfile)) == master and holder(str(pidfile)) == master
        assert os.getsid(master) != os.getsid(0)  # detached: its own session
        assert "forkhttpd: master" in cmdline(master)
        assert "serving on" in log.read_text()
        assert time.monotonic() - started < 30

        workers = [p for p in _children(master) if cmdline(p).startswith("forkhttpd: worker ")]
        assert len(workers) == 2

        def status_lists_workers() -> bool:
            # the master rewrites its status file every second: wait for a fresh one
            status = run_forkhttpd("status", "--pid", str(pidfile), timeout=20)
            assert status.returncode == 0, status.stderr
            assert f"master pid {master}" in status.stdout
            assert "generation 1" in status.stdout and "2 workers wanted" in status.stdout
            return all(f" {pid} " in status.stdout for pid in workers)

        assert wait_until(status_lists_workers, 10)

        reload = run_forkhttpd("reload", "--pid", str(pidfile), timeout=60)
        assert reload.returncode == 0, reload.stderr
        assert "generation 2" in reload.stdout
        assert wait_until(lambda: "reload complete: generation 2" in log.read_text(), 20)
        assert _get(port, "/version") == (200, b"v1")

        stop = run_forkhttpd("stop", "--pid", str(pidfile), timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert f"master {master} stopped" in stop.stdout
        assert not alive(master)
        assert not pidfile.exists()  # removed: it still named the master
        gone = run_forkhttpd("status", "--pid", str(pidfile), timeout=20)
        assert gone.returncode == 3 and "not running" in gone.stdout
        again = run_forkhttpd("stop", "--pid", str(pidfile), timeout=20)
        assert again.returncode == 0 and "not running" in again.stdout
    finally:
        kill_daemon(master)
        sock.close()


def test_daemon_startup_failure_is_the_launchers_exit_code(tmp_path: Path) -> None:
    sock = listening_socket()
    pidfile = tmp_path / "forkhttpd.pid"
    try:
        result = run_forkhttpd("-D", "--pid", str(pidfile), "--app", "raises_at_import:handler",
                               "--bind", f"fd://{sock.fileno()}", cwd=APPS,
                               pass_fds=(sock.fileno(),), timeout=60)
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert "the app's own import-time failure" in result.stderr
        assert "running in the background" not in result.stdout
        assert wait_until(lambda: holder(str(pidfile)) is None, 10)
        pid = read_pid(str(pidfile))
        assert pid is None or not alive(pid)
    finally:
        sock.close()


def test_daemon_bind_error_shows_on_the_terminal(tmp_path: Path) -> None:
    busy = listening_socket()
    port = busy.getsockname()[1]
    try:
        result = run_forkhttpd("-D", "--app", "mymod:handler", "--bind", f"127.0.0.1:{port}",
                               "--pid", str(tmp_path / "x.pid"), cwd=APPS, timeout=30)
        assert result.returncode == 1  # a runtime failure, not a settings error
        assert f"cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr
        assert not (tmp_path / "x.pid").exists()
    finally:
        busy.close()


def test_pid_file_foreground_lock_and_second_start(start_server: StartServer,
                                                   tmp_path: Path) -> None:
    pidfile = tmp_path / "forkhttpd.pid"
    server = start_server("--app", "mymod:handler", "--pid", str(pidfile))
    assert pidfile.read_text() == f"{server.pid}\n"
    assert holder(str(pidfile)) == server.pid

    sock = listening_socket()
    try:
        for daemon in ([], ["-D"]):
            second = run_forkhttpd(*daemon, "--app", "mymod:handler", "--pid", str(pidfile),
                                   "--bind", f"fd://{sock.fileno()}", cwd=APPS,
                                   pass_fds=(sock.fileno(),), timeout=30)
            assert second.returncode == 1, second.stderr
            assert f"already running (pid {server.pid}" in second.stderr
    finally:
        sock.close()
    assert pidfile.read_text() == f"{server.pid}\n"  # untouched by the losers
    assert server.stop() == 0
    assert not pidfile.exists()


def test_stale_pid_file_is_taken_over(start_server: StartServer, tmp_path: Path) -> None:
    pidfile = tmp_path / "forkhttpd.pid"
    dead = _dead_pid()
    pidfile.write_text(f"{dead}\n")
    server = start_server("--app", "mymod:handler", "--pid", str(pidfile))
    assert pidfile.read_text() == f"{server.pid}\n"
    assert f"took it over from pid {dead}" in server.stderr


def test_pid_file_not_removed_when_it_names_a_successor(start_server: StartServer,
                                                        tmp_path: Path) -> None:
    pidfile = tmp_path / "forkhttpd.pid"
    server = start_server("--app", "mymod:handler", "--pid", str(pidfile))
    pidfile.write_text("12345\n")  # say an operator (or a successor) rewrote it
    assert server.stop() == 0
    assert pidfile.read_text() == "12345\n"


def test_workers_do_not_keep_a_dead_masters_lock(start_server: StartServer, tmp_path: Path) -> None:
    pidfile = tmp_path / "forkhttpd.pid"
    first = start_server("--app", "mymod:handler", "-w", "2", "--pid", str(pidfile))
    children = first.children()
    assert children
    first.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    orphans = [pid for pid in children if alive(pid)]
    # Whether or not the orphans have noticed yet, none of them holds the lock.
    assert holder(str(pidfile)) is None, orphans
    second = start_server("--app", "mymod:handler", "--pid", str(pidfile))
    assert pidfile.read_text() == f"{second.pid}\n"
    assert wait_until(lambda: not any(alive(pid) for pid in children), 15)


def test_control_never_signals_a_stranger(tmp_path: Path) -> None:
    pidfile = tmp_path / "forkhttpd.pid"
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        pidfile.write_text(f"{stranger.pid}\n")  # a recycled PID, say
        for command, code in (("stop", 0), ("reload", 7), ("status", 3)):
            result = run_forkhttpd(command, "--pid", str(pidfile), timeout=20)
            assert result.returncode == code, (command, result.stdout, result.stderr)
            assert "not running" in result.stdout + result.stderr
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait(5)


def test_control_needs_to_know_which_server() -> None:
    result = run_forkhttpd("status", timeout=20)
    assert result.returncode == 2 and "--pid FILE" in result.stderr


def test_control_reads_the_pid_file_from_the_config(start_server: StartServer,
                                                    tmp_path: Path) -> None:
    pidfile = tmp_path / "forkhttpd.pid"
    config = tmp_path / "forkhttpd.toml"
    config.write_text(f'app = "mymod:handler"\npid = "{pidfile}"\n')
    server = start_server("-c", str(config))
    result = run_forkhttpd("status", "-c", str(config), timeout=20)
    assert result.returncode == 0 and f"master pid {server.pid}" in result.stdout


def test_stop_waits_for_requests_in_flight_and_reports_a_timeout(
        start_server: StartServer, tmp_path: Path) -> None:
    pidfile = tmp_path / "forkhttpd.pid"
    server = start_server("--app", "mymod:handler", "--pid", str(pidfile),
                          "--graceful-timeout", "20")
    answers: list[tuple[int, bytes]] = []
    client = threading.Thread(target=lambda: answers.append(_get(server.port, "/sleep?s=3")))
    client.start()
    time.sleep(0.5)  # the request is in the handler
    quick = run_forkhttpd("stop", "--pid", str(pidfile), "--timeout", "0.5", timeout=20)
    assert quick.returncode == 1 and "still running after 0.5s" in quick.stderr
    patient = run_forkhttpd("stop", "--pid", str(pidfile), timeout=30)
    assert patient.returncode == 0, patient.stderr
    client.join(10)
    assert answers == [(200, b"slept")]
    assert server.proc.wait(5) == 0


@pytest.mark.parametrize("command", ["reload", "stop", "status"])
def test_control_help(command: str) -> None:
    result = run_forkhttpd(command, "--help", timeout=20)
    assert result.returncode == 0 and "--pid" in result.stdout


def test_main_help_names_the_control_commands() -> None:
    result = run_forkhttpd("--help", timeout=20)
    assert result.returncode == 0
    assert "forkhttpd reload|reopen|stop|status --pid FILE" in result.stdout
