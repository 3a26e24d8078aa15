"""The master's signals: TERM drains, INT/QUIT stop fast, TTIN/TTOU, USR1, process titles."""

from __future__ import annotations

import http.client
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from .harness import StartServer, cmdline, wait_until


def ask(port: int, path: str, results: dict[str, object], key: str,
        keep_alive: bool = True) -> threading.Thread:
    """GET `path` in a thread; results[key] = (status, headers, body) or the exception."""

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            conn.request("GET", path, headers={} if keep_alive else {"Connection": "close"})
            response = conn.getresponse()
            results[key] = (response.status, {k.lower(): v for k, v in response.getheaders()},
                            response.read())
        except Exception as error:  # noqa: BLE001 - recorded for the test to judge
            results[key] = error
        finally:
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_term_answers_the_request_in_flight_and_every_queued_one(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "1")
    results: dict[str, object] = {}
    threads = [ask(server.port, "/sleep?s=2", results, "busy")]
    time.sleep(0.4)  # the only worker is inside the handler
    threads += [ask(server.port, "/hello", results, f"queued{n}") for n in range(3)]
    time.sleep(0.4)  # three connections wait in the listen backlog
    assert results == {}
    sent = time.monotonic()
    server.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(10)
    code = server.proc.wait(10)
    took = time.monotonic() - sent
    print(f"TERM: all answered, exit {code} after {took:.2f}s")
    assert code == 0
    busy = results["busy"]
    assert isinstance(busy, tuple) and busy[0] == 200 and busy[2] == b"slept", busy
    # the keep-alive connection of the in-flight request is closed after its response
    assert busy[1].get("connection") == "close"
    for n in range(3):
        answer = results[f"queued{n}"]
        assert isinstance(answer, tuple) and answer[:1] == (200,) and answer[2] == \
            b"Hello world!", answer
    assert took < 3.0  # nobody waited for a keep-alive deadline
    assert "exited: reason=shutdown, exit code 0" in server.stderr


def test_graceful_timeout_bounds_a_term(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "1", "--graceful-timeout",
                          "1")
    results: dict[str, object] = {}
    thread = ask(server.port, "/sleep?s=8", results, "slow")
    time.sleep(0.4)
    sent = time.monotonic()
    server.send_signal(signal.SIGTERM)
    assert server.proc.wait(5) == 0
    took = time.monotonic() - sent
    thread.join(5)
    assert 0.9 <= took < 2.5
    assert isinstance(results["slow"], Exception)
    assert "outlived the stop; SIGKILL" in server.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT])
def test_int_and_quit_stop_at_once(start_server: StartServer, signum: int) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "2")
    workers = server.worker_pids()
    results: dict[str, object] = {}
    thread = ask(server.port, "/sleep?s=10", results, "slow")
    time.sleep(0.4)
    sent = time.monotonic()
    server.send_signal(signum)
    assert server.proc.wait(5) == 0
    assert time.monotonic() - sent < 1.5
    thread.join(5)
    assert isinstance(results["slow"], Exception)  # fast: in-flight requests are cut
    assert wait_until(lambda: not any("forkhttpd" in cmdline(p) for p in workers), 3)
    assert "fast stop" in server.stderr


def test_ttin_and_ttou_change_the_number_of_workers(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "2")
    assert wait_until(lambda: len(server.worker_pids()) == 2)
    took = []
    for wanted in (3, 4):
        sent = time.monotonic()
        server.send_signal(signal.SIGTTIN)
        assert wait_until(lambda w=wanted: len(server.worker_pids()) == w, 5, 0.002)
        took.append(time.monotonic() - sent)
    # the signal wakes the loop at once (it does not wait for the 0.2 s tick)
    print("TTIN to a new worker: " + ", ".join(f"{t * 1000:.0f} ms" for t in took))
    for _ in range(5):  # never below one
        server.send_signal(signal.SIGTTOU)
        time.sleep(0.1)
    assert wait_until(lambda: len(server.worker_pids()) == 1, 5)
    time.sleep(0.5)
    assert len(server.worker_pids()) == 1
    assert server.request("GET", "/hello")[2] == b"Hello world!"
    assert server.stderr.count("exited: reason=ttou, exit code 0") == 3
    assert "TTOU: 1 workers wanted" in server.stderr


def test_usr1_reopens_the_log_files(start_server: StartServer, tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    server = start_server("--app", "mymod:handler", "--workers", "2", "--error-logfile",
                          str(log), ready=False)
    assert wait_until(lambda: log.exists() and "serving on" in log.read_text())
    rotated = tmp_path / "error.log.1"
    log.rename(rotated)
    server.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: log.exists() and "USR1: log files reopened" in log.read_text())

    def files_of(pid: int) -> set[str]:
        fds = Path(f"/proc/{pid}/fd")
        return {os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()}

    # every worker lets go of the rotated file and writes to the new one (from its loop)
    assert wait_until(lambda: all(str(log) in files_of(pid) and str(rotated) not in
                                  files_of(pid) for pid in server.worker_pids()), 3)
    assert str(rotated) not in files_of(server.pid)
    zygote = [pid for pid in server.children() if "zygote" in cmdline(pid)][0]
    assert wait_until(lambda: str(rotated) not in files_of(zygote))
    for _ in range(4):
        assert server.request("GET", "/boom")[0] == 500
    assert wait_until(lambda: log.read_text().count("RuntimeError: secret internal detail\n")
                      == 4)
    assert "secret internal detail" not in rotated.read_text()


def test_titles_show_role_generation_and_state(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "2")
    assert wait_until(lambda: "serving workers 2" in cmdline(server.pid))
    assert cmdline(server.pid).startswith("forkhttpd: master [mymod:handler] gen 1 serving")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/hello")
    conn.getresponse().read()  # the connection stays open: its worker is busy with it

    def titles() -> list[str]:
        return [cmdline(pid) for pid in server.worker_pids()]

    assert wait_until(lambda: any(re.match(
        r"forkhttpd: worker \d+ gen 1 \[mymod:handler\] busy 1 reqs", t) for t in titles()))
    conn.close()
    assert wait_until(lambda: all(" idle " in t for t in titles()), 3)
    server.send_signal(signal.SIGHUP)
    assert wait_until(lambda: len(titles()) == 2 and all(" gen 2 " in t for t in titles()))
    zygote = [cmdline(p).strip() for p in server.children() if "zygote" in cmdline(p)]
    assert zygote == ["forkhttpd: zygote gen 2 [mymod:handler] ready"]
    assert wait_until(lambda: "gen 2 serving workers 2" in cmdline(server.pid))


def test_term_while_the_first_generation_loads_exits_0(start_server: StartServer) -> None:
    server = start_server("--app", "slow_start:handler", ready=False)
    assert wait_until(lambda: any("zygote" in cmdline(p) for p in server.children()))
    server.send_signal(signal.SIGTERM)
    assert server.proc.wait(5) == 0
    assert "error" not in server.stderr.lower()


def test_int_during_startup_exits_cleanly(tmp_path: Path) -> None:
    """A Ctrl-C that lands while the first generation is still loading (or just after): once
    the master runs (its title is set), INT is a clean stop, exit 0, no traceback."""
    import signal as _signal
    import time as _time

    from .harness import Server, cmdline, wait_until

    for delay in (0.0, 0.05, 0.15):
        server = Server("--app", "mymod:handler", "--workers", "2", log_dir=tmp_path)
        assert wait_until(lambda s=server: "forkhttpd: master" in cmdline(s.pid), 10)
        _time.sleep(delay)
        code = server.stop(_signal.SIGINT)
        assert code == 0, server.stderr
        assert "Traceback" not in server.stderr
