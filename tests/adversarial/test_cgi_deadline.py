"""--cgi-timeout covers a CGI program's whole process group (issue 19 item 5): a program that
leaves a child holding its stdout, or whose children hang, is answered 504 at the CGI
deadline, every process of its group is gone, and the worker keeps serving."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration.harness import Server, wait_until

from .attacks import Probe, one_request, probe_after
from .conftest import Hostile, start_server

SCRIPTS = {
    # exits at once, but `sleep &` inherited stdout: the output never reaches EOF
    "background.sh": 'sleep 30 &\necho $! >> "PID_FILE"\n'
                     'printf "Content-Type: text/plain\\r\\n\\r\\nstarted\\n"\n',
    # waits on a child that never ends; both belong to the program's group
    "waits.sh": 'sleep 30 &\necho $! >> "PID_FILE"\nwait\n',
    # a child with its output sent elsewhere: the answer is complete when the program ends
    "detached.sh": 'sleep 3 > /dev/null 2>&1 &\n'
                   'printf "Content-Type: text/plain\\r\\n\\r\\nok\\n"\n',
}


def alive(pid: int) -> bool:
    """The process runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def cgi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """One server for the module, --cgi-timeout 1; the scripts append their children's PIDs
    to a file, returned beside the server."""
    work = tmp_path_factory.mktemp("cgi")
    pids = work / "children"
    pids.write_text("")
    directory = work / "cgi-bin"
    directory.mkdir()
    for name, text in SCRIPTS.items():
        path = directory / name
        path.write_text("#!/bin/sh\n" + text.replace("PID_FILE", str(pids)))
        path.chmod(0o755)
    server = start_server(work, "--cgi-dir", f"/cgi-bin={directory}", "--cgi-timeout", "1")
    yield server, pids
    server.stop()


@pytest.fixture
def cgi(cgi_server: tuple[Server, Path]) -> tuple[Hostile, Path]:
    server, pids = cgi_server
    attacked = Hostile(server)
    attacked.warm_up()
    return attacked, pids


def started_children(pids: Path) -> list[int]:
    """The background children the scripts started so far (their PIDs, in order)."""
    return [int(line) for line in pids.read_text().split()]


@pytest.mark.parametrize("script", ["background.sh", "waits.sh"])
def test_group_killed_at_the_cgi_timeout(cgi: tuple[Hostile, Path], script: str) -> None:
    server, pids = cgi
    known = len(started_children(pids))
    with Probe(server.port) as probe:
        status, took = one_request(server.port, f"/cgi-bin/{script}", timeout=10)
    assert status == 504, (status, took)  # at --cgi-timeout, not 503 at --timeout
    assert took < 2.5, took  # --timeout is 3 s
    [child] = started_children(pids)[known:]
    assert wait_until(lambda: not alive(child), timeout=3), f"child {child} outlived its group"
    assert probe.report.all_ok, probe.report.failures
    assert server.same_workers(), "the worker was replaced"
    assert probe_after(server.port).all_ok
    assert "process group killed" in server.log
    server.recovered()


def test_a_detached_child_does_not_delay_the_answer(cgi: tuple[Hostile, Path]) -> None:
    server, _ = cgi
    started = time.monotonic()
    status, _ = one_request(server.port, "/cgi-bin/detached.sh")
    assert status == 200
    assert time.monotonic() - started < 0.9  # well before --cgi-timeout (1 s)
    assert server.same_workers()


def test_no_program_of_a_killed_group_is_left(cgi: tuple[Hostile, Path]) -> None:
    # several timed-out requests in a row: each group is gone, and the worker serves on
    server, pids = cgi
    known = len(started_children(pids))
    for _ in range(3):
        assert one_request(server.port, "/cgi-bin/background.sh")[0] == 504
    started = started_children(pids)[known:]
    assert len(started) == 3 and os.getpid() not in started
    assert wait_until(lambda: not any(alive(pid) for pid in started), timeout=3)
    assert server.same_workers()
    server.recovered()
