"""Supervision: the real master replaces dead, hung, leaky and worn-out workers, and an app that
cannot load any more never takes the master down."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import time
from pathlib import Path

from .harness import APPS, Load, Server, StartServer, cmdline, wait_until


def ppid_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def held_connections(pid: int) -> int:
    """Client connections a worker holds: its sockets but the one listener."""
    fds = Path(f"/proc/{pid}/fd")
    sockets = 0
    for fd in fds.iterdir():
        try:
            sockets += os.readlink(fd).startswith("socket:")
        except OSError:
            pass
    return sockets - 1


def zygotes(server: Server) -> list[int]:
    return [pid for pid in server.children() if "forkhttpd: zygote" in cmdline(pid)]


def test_workers_are_the_masters_own_children(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "3")
    assert wait_until(lambda: len(server.worker_pids()) == 3)
    # zygote and workers are all children of the master (subreaper); no intermediate lingers
    children = server.children()
    assert len(children) == 4, [cmdline(p) for p in children]
    assert len(zygotes(server)) == 1 and "gen 1" in cmdline(zygotes(server)[0])
    for pid in server.worker_pids():
        assert ppid_of(pid) == server.pid
        assert re.match(r"forkhttpd: worker \d+ gen 1 \[mymod:handler\] (idle|busy) \d+ reqs",
                        cmdline(pid)), cmdline(pid)
    served = {server.request("GET", "/pid")[2].decode() for _ in range(10)}
    assert served <= {str(pid) for pid in server.worker_pids()}


def test_kill_9_under_load_is_replaced_within_a_second(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "2")
    assert wait_until(lambda: len(server.worker_pids()) == 2)
    before = set(server.worker_pids())
    with Load(server.port, "/sleep?s=0.02", clients=3, keep_alive=False) as load:
        time.sleep(0.5)
        victim = sorted(before)[0]
        held = held_connections(victim)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_until(lambda: len(set(server.worker_pids()) - before) == 1
                          and "reqs" in cmdline(max(set(server.worker_pids()) - before)),
                          timeout=2.0, interval=0.005)
        replaced = time.monotonic() - killed
        time.sleep(0.7)
    outcomes = load.snapshot()
    print(f"replacement serving after {replaced * 1000:.0f} ms; "
          f"{len(load.failures)} failed of {len(outcomes)}; the victim held {held}")
    assert replaced < 1.0
    # only what the killed worker held fails: the request in its handler, and any connection
    # it had accepted whose request had not arrived yet
    assert len(load.failures) <= max(1, held), load.failures
    assert len(outcomes) > 20
    newcomer = (set(server.worker_pids()) - before).pop()
    log = server.wait_for_log(f"(pid {victim}, gen 1) exited: reason=signal, signal SIGKILL")
    assert re.search(rf"\(pid {victim}, gen 1\) exited: .*served \d+ requests", log)
    assert wait_until(lambda: server.request("GET", "/pid")[2] == str(newcomer).encode()
                      or server.request("GET", "/pid")[2] == str(newcomer).encode(), 3)


def test_busy_healthy_workers_are_never_taken_for_stuck(start_server: StartServer) -> None:
    # Thousands of requests a second: each rewrites the worker's heartbeat block, which
    # struct.pack_into zero-fills first; a master that believed one torn read would alarm a
    # healthy worker. (--max-rss near the workers' size makes the master read 50 times a
    # second, to give a torn read every chance.)
    server = start_server("--app", "mymod:handler", "--workers", "2", "--timeout", "5",
                          "--max-rss", "27")
    with Load(server.port, "/hello", clients=2, keep_alive=True, max_seconds=4) as load:
        time.sleep(4)
    print(f"{len(load.snapshot())} requests, {len(load.failures)} failed")
    assert load.failures == [] and len(load.snapshot()) > 1000
    assert "silent for more than" not in server.stderr
    assert "reason=timeout" not in server.stderr


def test_hung_handler_is_answered_503_and_its_worker_replaced(start_server: StartServer) -> None:
    server = start_server("--app", "hang:handler", "--workers", "1", "--timeout", "2")
    old = int(server.request("GET", "/pid")[2])
    started = time.monotonic()
    status, _, _ = server.request("GET", "/forever", timeout=10)
    took = time.monotonic() - started
    print(f"hung request answered {status} after {took:.2f}s")
    assert status == 503
    assert 2.0 <= took < 3.0
    log = server.wait_for_log(f"(pid {old}, gen 1) exited: reason=timeout")
    # the handler's stack, from inside the worker, in the error log
    assert "handler timed out on 'GET /forever HTTP/1.1'" in log
    assert re.search(r'hang\.py", line \d+, in handler\n.*ERROR\s+time\.sleep\(3600\)', log), log
    assert "out of memory" not in log and "reason=rss" not in log
    assert wait_until(lambda: server.request("GET", "/pid")[2] not in (b"", str(old).encode()))
    assert server.request("GET", "/pid")[0] == 200


def test_handler_deaf_to_the_alarm_gets_sigabrt_with_its_stack(start_server: StartServer,
                                                               tmp_path: Path) -> None:
    error_log = tmp_path / "error.log"
    server = start_server("--app", "hang:handler", "--workers", "1", "--timeout", "2",
                          "--error-logfile", str(error_log), ready=False)
    assert wait_until(lambda: error_log.exists() and "serving on" in error_log.read_text())
    old = int(server.request("GET", "/pid")[2])
    started = time.monotonic()
    try:
        status = server.request("GET", "/stubborn", timeout=10)[0]
    except (http.client.RemoteDisconnected, ConnectionResetError):
        status = 0
    took = time.monotonic() - started
    print(f"stubborn request closed after {took:.2f}s")
    assert status == 0 and took < 4.5
    exited = f"(pid {old}, gen 1) exited: reason=timeout, signal SIGABRT"
    assert wait_until(lambda: exited in error_log.read_text())
    log = error_log.read_text()
    # faulthandler's dump of the worker's stack, in the error log file
    assert "Fatal Python error: Aborted" in log
    assert re.search(r'File ".*hang\.py", line \d+ in handler', log), log
    assert "SIGALRM" in log and "SIGABRT" in log
    assert wait_until(lambda: server.request("GET", "/pid")[2] not in (b"", str(old).encode()))


def test_leaky_worker_is_recycled_by_max_rss_without_failures(start_server: StartServer) -> None:
    server = start_server("--app", "leaky:handler", "--workers", "2", "--max-rss", "80")
    before = set(server.worker_pids())
    # no pause: ~5 MiB per request, hundreds of MiB per second; the workers check themselves
    with Load(server.port, "/", clients=2, keep_alive=True, max_seconds=15) as load:
        server.wait_for_log("reason=rss, exit code 0", timeout=12, count=6)
    outcomes = load.snapshot()
    log = server.stderr
    peak = max(int(o.body.split()[1]) for o in outcomes)
    print(f"{log.count('reason=rss')} rss recycles, {len(load.failures)} failed of "
          f"{len(outcomes)}; at most {peak} leaks (5 MiB each) in one worker")
    assert load.failures == []
    assert "SIGKILL" not in log
    assert re.search(r"\[worker \d+\] WARNING worker \d+: \d+ MiB > --max-rss 80; finishing "
                     r"and leaving", log)
    assert re.search(r"exited: reason=rss, exit code 0, served \d+ requests", log)
    served_by = {int(o.body.split()[0]) for o in outcomes}
    assert served_by - before, "no replacement served"
    assert peak <= 19  # 22 MiB at the start + 19 x 5 MiB: well below 1.5 x 80 MiB


def test_max_requests_recycles_are_staggered_and_lose_nothing(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "3", "--max-requests", "20",
                          "--max-requests-jitter", "5")
    with Load(server.port, "/pid", clients=3, keep_alive=True, max_seconds=15) as load:
        server.wait_for_log("reason=max-requests, exit code 0", timeout=12, count=5)
    assert load.failures == []
    lines = [line for line in server.stderr.splitlines()
             if "will be replaced (reason=max-requests)" in line
             or "exited: reason=max-requests" in line]
    recycling: set[str] = set()
    for line in lines:  # never two workers of the generation recycling at once
        pid = re.search(r"\(pid (\d+)", line)[1]  # type: ignore[index]
        if "will be replaced" in line:
            assert not recycling, f"{pid} recycles while {recycling} still does"
            recycling.add(pid)
        else:
            recycling.discard(pid)
    served = [int(n) for n in re.findall(r"reason=max-requests, exit code 0, served (\d+)",
                                         server.stderr)]
    assert served and all(n >= 20 for n in served), served


def test_max_worker_lifetime_recycles_workers(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "2",
                          "--max-worker-lifetime", "1", "--max-worker-lifetime-jitter", "0.5")
    with Load(server.port, "/pid", clients=2, keep_alive=False, max_seconds=10) as load:
        server.wait_for_log("reason=lifetime, exit code 0", timeout=8, count=3)
    assert load.failures == []
    # replace-first: a successor may be up while its predecessor finishes
    assert 2 <= len(server.worker_pids()) <= 3
    assert not re.search(r"reason=lifetime, (signal|exit code [1-9])", server.stderr)


def test_an_app_that_cannot_load_any_more_never_stops_the_master(start_server: StartServer,
                                                                  tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(APPS / "mymod.py", site / "mymod.py")
    server = start_server("--app", "mymod:handler", "--workers", "2", cwd=site,
                          env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert wait_until(lambda: len(server.worker_pids()) == 2)
    (site / "mymod.py").write_text("raise RuntimeError('broken on disk')\n")
    zygote = zygotes(server)[0]
    os.kill(zygote, signal.SIGKILL)  # the only holder of the good code is gone
    with Load(server.port, "/version", clients=1, keep_alive=True, max_seconds=10) as load:
        server.wait_for_log("cannot load the app", timeout=5)
        with open(f"/proc/{server.pid}/stat") as handle:
            ticks_before = sum(int(x) for x in handle.read().rsplit(")", 1)[1].split()[11:13])
        time.sleep(4)
        with open(f"/proc/{server.pid}/stat") as handle:
            ticks_after = sum(int(x) for x in handle.read().rsplit(")", 1)[1].split()[11:13])
        assert server.proc.poll() is None
        log = server.stderr
        attempts = log.count("cannot load the app") + log.count("still cannot load")
        assert 2 <= attempts <= 7, log  # backing off: 0.5, 1, 2, 4 s ...
        # the traceback, once (each line of it carries the log prefix)
        assert len(re.findall(r"ERROR RuntimeError: broken on disk$", log, re.M)) == 1, log
        assert re.search(r'mymod\.py", line 1, in <module>', log)
        assert (ticks_after - ticks_before) / os.sysconf("SC_CLK_TCK") < 0.5  # no spinning
        assert len(server.worker_pids()) == 2  # the old workers still serve
        (site / "mymod.py").write_text((APPS / "mymod.py").read_text().replace(
            'VERSION = "v1"', 'VERSION = "v2-fixed"'))
        load.wait_for_body(lambda body: body == "v2-fixed", timeout=8)
    assert load.failures == []
    assert "zygote of generation 1 died (signal SIGKILL)" in server.stderr


DIES_IN_WORKERS = (
    "# Loads fine, but every worker forked from it dies as it starts.\n"
    "import os\n"
    "VERSION = 'v2'\n"
    "_forks = [0]\n"
    "def _after_fork():\n"
    "    _forks[0] += 1\n"
    "    if _forks[0] >= 2:  # the zygote's intermediate is the first fork, the worker next\n"
    "        os._exit(3)\n"
    "os.register_at_fork(after_in_child=_after_fork)\n"
    "def handler(request, response):\n"
    "    return VERSION\n"
)


def test_workers_that_die_as_they_start_back_off_and_the_old_ones_serve(
        start_server: StartServer, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(APPS / "mymod.py", site / "mymod.py")
    server = start_server("--app", "mymod:handler", "--workers", "2", cwd=site,
                          env={"PYTHONDONTWRITEBYTECODE": "1"})
    old = set(server.worker_pids())
    with Load(server.port, "/version", clients=1, keep_alive=False, max_seconds=15) as load:
        (site / "mymod.py").write_text(DIES_IN_WORKERS)
        server.send_signal(signal.SIGHUP)
        server.wait_for_log("workers die as they start", timeout=5)
        time.sleep(4)
        log = server.stderr
        deaths = len(re.findall(r"gen 2\) exited: reason=crash, exit code 3", log))
        print(f"{deaths} workers of the bad generation died in ~4s")
        assert 3 <= deaths <= 14, log
        # it does not heal: the generation fails, and the old one keeps serving
        assert "reload failed: generation 2: its workers exit as they start (exit code 3" in log
        assert "reload failed; generation 1 keeps serving" in log
        assert set(server.worker_pids()) >= old  # the old generation still serves
        assert server.proc.poll() is None
        (site / "mymod.py").write_text((APPS / "mymod.py").read_text().replace(
            'VERSION = "v1"', 'VERSION = "v3"'))
        server.send_signal(signal.SIGHUP)
        load.wait_for_body(lambda body: body == "v3", timeout=8)
        server.wait_for_log("reload complete: generation 3")
    assert load.failures == []
    bodies = {o.body for o in load.snapshot()}
    assert bodies <= {"v1", "v3"}, bodies


def test_a_handler_ballooning_past_one_and_a_half_times_max_rss_is_killed(
        start_server: StartServer) -> None:
    server = start_server("--app", "leaky:handler", "--workers", "1", "--max-rss", "60")
    pid = int(server.request("GET", "/?mib=1")[2].split()[0])
    started = time.monotonic()
    try:  # 120 MiB more, and the handler is still running: no graceful way out
        status = server.request("GET", "/?mib=120&sleep=5", timeout=10)[0]
    except (http.client.RemoteDisconnected, ConnectionResetError):
        status = 0
    assert status == 0 and time.monotonic() - started < 2.0
    log = server.wait_for_log(f"(pid {pid}, gen 1) exited: reason=rss, signal SIGKILL")
    assert re.search(rf"\(pid {pid}\): SIGKILL \(reason=rss, rss (9\d|1\d\d) MiB\)", log), log
    assert wait_until(lambda: server.request("GET", "/?mib=1")[2].split()[0] !=
                      str(pid).encode())
