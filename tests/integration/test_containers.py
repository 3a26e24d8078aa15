"""forkhttpd as a container's PID 1 (docs/deploy.md, "In a container"): in a new PID namespace
(`unshare --pid --fork --mount-proc`, which needs root), it stops gracefully on TERM (exit 0,
"stopped" logged) and reaps the orphans an app leaves behind, so no zombie stays."""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from .harness import StartServer, _children_of, wait_until

UNSHARE = ("unshare", "--pid", "--fork", "--mount-proc")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="a new PID namespace needs root and unshare (util-linux)")


def ns_pids(pid: int) -> list[int]:
    """The PID of `pid` in each namespace it is in, outermost first (NSpid)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []


def state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    return [int(child) for child in _children_of(pid)]


def test_pid_1_reaps_orphans_and_stops_gracefully_on_term(start_server: StartServer) -> None:
    server = start_server("--app", "orphans:app", "--interface", "wsgi", wrapper=UNSHARE)
    assert wait_until(lambda: children(server.pid), timeout=5)
    [init] = children(server.pid)  # unshare's child: forkhttpd's master
    assert ns_pids(init)[-1] == 1, "forkhttpd is not PID 1 of its namespace"

    status, _, body = server.request("GET", "/orphan")
    assert status == 200
    orphan = int(body)  # as the namespace numbers it
    # The middle process exited before the answer: the orphan (it lives a second) is now
    # PID 1's child...
    adopted = [child for child in children(init) if ns_pids(child)[-1:] == [orphan]]
    assert adopted, f"orphan {orphan} is not PID 1's child"
    # ...and once it exits, PID 1 reaps it: no zombie child remains.
    assert wait_until(lambda: not any(ns_pids(c)[-1:] == [orphan] for c in children(init)),
                      timeout=5), f"orphan {orphan} not reaped: state {state(adopted[0])}"
    assert not [c for c in children(init) if state(c) == "Z"]
    status, _, _ = server.request("GET", "/orphan")  # still serving
    assert status == 200

    os.kill(init, signal.SIGTERM)  # from outside, as `docker stop` / the kubelet does
    assert server.proc.wait(30) == 0  # unshare exits with its child's status
    log = server.stderr
    assert "graceful stop" in log and log.rstrip().endswith("stopped"), log
