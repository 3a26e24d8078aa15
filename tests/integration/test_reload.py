"""SIGHUP: a transactional, rolling reload, seen from clients that never pause."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from .harness import APPS, Load, Outcome, StartServer, cmdline, wait_until


def write_app(path: Path, version: int, prelude: str = "") -> None:
    """The fixture app at `version`. Every version has its own size: a .pyc left by an
    earlier version (its source mtime is kept in whole seconds) can never pass for this one."""
    path.write_text(
        f'"""Reload fixture, version {version}."""\n\nimport os\n{prelude}\n'
        f'VERSION = "v{version}"\n\n\ndef handler(request, response):\n'
        f'    return f"{{VERSION}} {{os.getpid()}}"\n' + "#" * version + "\n")


def versions(outcomes: Iterable[Outcome]) -> list[str]:
    return [o.body.split()[0] for o in outcomes if o.ok]


def test_five_sighups_under_continuous_load_lose_nothing(start_server: StartServer,
                                                          tmp_path: Path) -> None:
    app = tmp_path / "relapp.py"
    write_app(app, 1)
    server = start_server("--app", "relapp:handler", "--workers", "2", cwd=tmp_path)
    kept = Load(server.port, "/", keep_alive=True, max_seconds=40)
    fresh = Load(server.port, "/", keep_alive=False, max_seconds=40)
    switches = []
    with kept, fresh:
        for version in range(2, 7):
            write_app(app, version)
            sent = time.monotonic()
            server.send_signal(signal.SIGHUP)
            for load in (kept, fresh):
                load.wait_for_body(lambda body, v=version: body.startswith(f"v{v} "))
            switches.append(time.monotonic() - sent)
        server.wait_for_log("reload complete: generation 6")
        done = time.monotonic()
        time.sleep(0.3)
    total = len(kept.snapshot()) + len(fresh.snapshot())
    print(f"5 reloads, {total} requests, {len(kept.failures)}+{len(fresh.failures)} failed; "
          f"switch after {', '.join(f'{s:.2f}s' for s in switches)}")
    assert kept.failures == [] and fresh.failures == []
    for load in (kept, fresh):
        assert set(versions(load.snapshot())) == {f"v{n}" for n in range(1, 7)}
        assert set(versions(o for o in load.snapshot() if o.start > done)) == {"v6"}
    assert len(server.worker_pids()) == 2
    assert all(" gen 6 " in cmdline(pid) for pid in server.worker_pids())
    assert server.stderr.count("exited: reason=reload, exit code 0") == 10


def test_sighups_in_a_burst_end_on_the_latest_code(start_server: StartServer,
                                                   tmp_path: Path) -> None:
    app = tmp_path / "relapp.py"
    write_app(app, 1)
    server = start_server("--app", "relapp:handler", "--workers", "2", cwd=tmp_path)
    with Load(server.port, "/", clients=2, keep_alive=True, max_seconds=20) as load:
        for version in range(2, 7):
            write_app(app, version, prelude="import time\ntime.sleep(0.2)\n")
            server.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        load.wait_for_body(lambda body: body.startswith("v6 "))
        server.wait_for_log("reload complete")
    assert load.failures == []
    assert "abandoning generation" in server.stderr  # superseded while still loading
    assert wait_until(lambda: len(server.worker_pids()) == 2)
    assert server.request("GET", "/")[2].startswith(b"v6 ")


def test_a_reload_that_cannot_import_keeps_the_old_code(start_server: StartServer,
                                                         tmp_path: Path) -> None:
    app = tmp_path / "relapp.py"
    write_app(app, 1)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setblocking(False)
    server = start_server("--app", "relapp:handler", "--workers", "2", cwd=tmp_path,
                          env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    with Load(server.port, "/", keep_alive=True) as kept, \
            Load(server.port, "/", keep_alive=False) as fresh:
        app.write_text('"""Broken."""\n\nraise ImportError("broken release")\n')
        server.send_signal(signal.SIGHUP)
        log = server.wait_for_log("reload failed; generation 1 keeps serving")
        time.sleep(0.3)
    assert kept.failures == [] and fresh.failures == []
    assert set(versions(kept.snapshot() + fresh.snapshot())) == {"v1"}
    messages = []
    while True:
        try:
            messages.append(notify.recv(4096).decode())
        except BlockingIOError:
            break
    notify.close()
    assert re.search(r'relapp\.py", line 3, in <module>\n.*\n.*ERROR ImportError: broken '
                     r'release', log), log
    assert any("RELOADING=1" in m for m in messages)
    assert any("STATUS=reload failed: --app relapp:handler: importing 'relapp' raised "
               "ImportError: broken release" in m for m in messages), messages

    # a crash after the failed reload is respawned from the last good code, not the disk's
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: len(server.worker_pids()) == 2 and victim not in
                      server.worker_pids())
    newcomer = (set(server.worker_pids()) - {victim}).pop()
    bodies = {server.request("GET", "/")[2].decode() for _ in range(30)}
    assert {body.split()[0] for body in bodies} == {"v1"}
    assert " gen 1 " in cmdline(newcomer)

    # the next SIGHUP, with the code fixed, switches over
    with Load(server.port, "/", keep_alive=True) as kept:
        write_app(app, 3)
        server.send_signal(signal.SIGHUP)
        kept.wait_for_body(lambda body: body.startswith("v3 "))
        server.wait_for_log("reload complete: generation 3")
    assert kept.failures == []


def test_a_slow_import_keeps_the_old_generation_serving(start_server: StartServer,
                                                         tmp_path: Path) -> None:
    app = tmp_path / "relapp.py"
    write_app(app, 1)
    server = start_server("--app", "relapp:handler", "--workers", "2", cwd=tmp_path)
    with Load(server.port, "/", clients=2, keep_alive=True, max_seconds=20) as load:
        time.sleep(0.2)
        write_app(app, 2, prelude="import time\ntime.sleep(3)  # a slow import\n")
        sent = time.monotonic()
        server.send_signal(signal.SIGHUP)
        switched = load.wait_for_body(lambda body: body.startswith("v2 "), timeout=10)
    during = [o for o in load.snapshot() if sent <= o.start < sent + 2.8]
    slowest = max(o.latency for o in load.snapshot())
    print(f"new code after {switched - sent:.2f}s; {len(during)} requests answered by the old "
          f"generation meanwhile; slowest request {slowest * 1000:.0f} ms")
    assert load.failures == []
    assert switched - sent >= 3.0
    assert len(during) > 20 and set(versions(during)) == {"v1"}
    assert slowest < 2.0  # one that waited on the import would take 3 s or more


def test_a_bad_config_on_sighup_changes_nothing(start_server: StartServer, tmp_path: Path) -> None:
    config = tmp_path / "forkhttpd.toml"
    config.write_text("workers = 2\n")
    server = start_server("--app", "mymod:handler", "--config", str(config), cwd=APPS)
    assert wait_until(lambda: len(server.worker_pids()) == 2)
    before = sorted(server.worker_pids())
    config.write_text('workers = "many"\n')
    server.send_signal(signal.SIGHUP)
    log = server.wait_for_log("reload: configuration rejected, keeping the running one")
    assert "workers" in log.split("configuration rejected")[1].splitlines()[0]
    time.sleep(0.5)
    assert sorted(server.worker_pids()) == before and "generation 2" not in server.stderr
    assert server.request("GET", "/hello")[2] == b"Hello world!"

    config.write_text("workers = 3\ntimeout = 20\n")
    server.send_signal(signal.SIGHUP)
    server.wait_for_log("reload complete: generation 2")
    assert wait_until(lambda: len(server.worker_pids()) == 3)
    assert "reload: new values for workers, timeout" in server.stderr


def test_a_worker_retired_as_it_is_forked_still_goes(start_server: StartServer,
                                                     tmp_path: Path) -> None:
    # Each SIGHUP asks for one worker more: the old generation forks it while the new one
    # loads, and it is retired the moment its PID is known, right after its fork, when a
    # signal can be lost (Python clears pending signals in a new child); the master sends
    # it again once the worker is ready, so no reload waits for the graceful timeout.
    config = tmp_path / "forkhttpd.toml"
    config.write_text("workers = 2\n")
    server = start_server("--app", "mymod:handler", "--config", str(config), cwd=APPS)
    for workers in range(3, 7):
        config.write_text(f"workers = {workers}\n")
        server.send_signal(signal.SIGHUP)
        server.wait_for_log(f"reload complete: generation {workers - 1}", timeout=4)
        assert wait_until(lambda w=workers: len(server.worker_pids()) == w, 3)
