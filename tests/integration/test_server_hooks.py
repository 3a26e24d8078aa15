"""--hooks over the real server: every hook runs in the process and at the moment documented
(docs/applications.md, "Server hooks") with the views it is promised; a hook that raises is
logged with its name, stops the start when it is on_starting or when_ready (exit 1), and
anywhere else never takes the server down. A hooks module that cannot be imported is a
startup error (exit 2) that --check-config finds too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .harness import APPS, REPO, StartServer, wait_until

HOOKS = str(APPS / "recording_hooks.py")


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def named(path: Path, hook: str) -> list[dict[str, Any]]:
    return [r for r in records(path) if r["hook"] == hook]


def hooks_env(tmp_path: Path, raise_in: str = "") -> tuple[Path, dict[str, str]]:
    log = tmp_path / "hooks.jsonl"
    return log, {"HOOKS_LOG": str(log), "HOOKS_RAISE": raise_in}


def test_each_hook_runs_where_and_when_documented(start_server: StartServer,
                                                  tmp_path: Path) -> None:
    log, env = hooks_env(tmp_path)
    server = start_server("--app", "hang:handler", "--workers", "2", "--timeout", "2",
                          "--hooks", HOOKS, env=env)
    master = server.pid
    [starting] = named(log, "on_starting")
    [ready] = named(log, "when_ready")
    assert starting["in"] == ready["in"] == starting["pid"] == master
    assert starting["workers"] == 2 and starting["timeout"] == 2.0
    assert ready["generation"] == 1 and ready["addresses"] == [f"127.0.0.1:{server.port}"]
    forks = named(log, "post_fork")
    assert sorted(r["number"] for r in forks) == [1, 2]
    for fork in forks:  # in the worker itself, after the app loaded
        assert fork["in"] == fork["pid"] != master and fork["master_pid"] == master
        assert fork["generation"] == 1
    order = records(log)
    assert order[0] == starting  # before anything started
    assert order.index(ready) > max(order.index(fork) for fork in forks)  # once they serve

    status, _, _ = server.request("GET", "/")
    assert status == 200
    server.send_signal(signal.SIGHUP)
    server.wait_for_log("reload complete")
    [reloading] = named(log, "on_reload")
    assert reloading["in"] == master
    assert sorted(r["number"] for r in named(log, "post_fork") if r["generation"] == 2) == [3, 4]
    assert wait_until(lambda: len(named(log, "child_exit")) == 2)
    for exited in named(log, "child_exit"):
        assert exited["in"] == master and exited["generation"] == 1
        assert exited["reason"] == "reload" and exited["status"] == "exit code 0"
    assert {r["pid"] for r in named(log, "worker_exit")} == {r["pid"] for r in forks}
    for leaving in named(log, "worker_exit"):
        assert leaving["in"] == leaving["pid"]  # in the worker, before it exits

    # A timeout: worker_abort runs in the stuck worker, as the master's alarm arrives.
    status, _, _ = server.request("GET", "/forever", timeout=20)
    assert status == 503
    [abort] = named(log, "worker_abort")
    assert abort["in"] == abort["pid"] and abort["generation"] == 2
    assert wait_until(lambda: any(r["reason"] == "timeout" for r in named(log, "child_exit")))

    assert server.stop() == 0
    assert {r["reason"] for r in named(log, "child_exit")} == {"reload", "timeout", "shutdown"}
    assert "hook" not in server.stderr.replace("--hooks", "")  # nothing raised


@pytest.mark.parametrize("hook", ["on_starting", "when_ready"])
def test_a_failing_startup_hook_stops_the_start(tmp_path: Path, hook: str) -> None:
    from .harness import Server

    log, env = hooks_env(tmp_path, hook)
    server = Server("--app", "hang:handler", "--workers", "2", "--hooks", HOOKS, env=env,
                    log_dir=tmp_path)
    try:
        assert server.proc.wait(30) == 1
        err = server.stderr
        line = f"hook {hook} ({HOOKS}) raised RuntimeError: {hook} failed on purpose"
        assert f"forkhttpd: error: {line}" in err
        assert "raise RuntimeError(f\"{name} failed on purpose\")" in err  # its traceback
        assert "serving on" not in err.split(line)[-1]
        # nothing of the server is left: the workers a when_ready saw are gone with it
        assert wait_until(lambda: not _session_alive(server.pid), timeout=5)
        if hook == "on_starting":
            assert named(log, "post_fork") == []  # nothing started
    finally:
        server.stop()


def _session_alive(sid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                return True
    return False


@pytest.mark.parametrize("hook", ["post_fork", "worker_exit", "child_exit", "on_reload"])
def test_a_hook_that_raises_elsewhere_is_logged_and_the_server_serves_on(
        start_server: StartServer, tmp_path: Path, hook: str) -> None:
    log, env = hooks_env(tmp_path, hook)
    server = start_server("--app", "hang:handler", "--hooks", HOOKS, env=env)
    status, _, before = server.request("GET", "/")
    assert status == 200
    server.send_signal(signal.SIGHUP)  # a reload: on_reload, post_fork, worker_exit, child_exit
    server.wait_for_log("reload complete")
    server.wait_for_log(f"hook {hook} ({HOOKS}) raised RuntimeError: {hook} failed on purpose")
    status, _, after = server.request("GET", "/")
    assert status == 200 and after != before  # the new generation's worker serves
    assert named(log, hook)  # it did run
    assert server.stop() == 0


def test_a_worker_abort_that_raises_still_ends_the_stuck_request(start_server: StartServer,
                                                                 tmp_path: Path) -> None:
    log, env = hooks_env(tmp_path, "worker_abort")
    server = start_server("--app", "hang:handler", "--timeout", "1", "--hooks", HOOKS, env=env)
    status, _, _ = server.request("GET", "/forever", timeout=20)
    assert status == 503
    server.wait_for_log(f"hook worker_abort ({HOOKS}) raised RuntimeError")
    assert wait_until(lambda: any(r["reason"] == "timeout" for r in named(log, "child_exit")))
    status, _, _ = server.request("GET", "/")
    assert status == 200


def test_a_hooks_module_that_cannot_be_imported(tmp_path: Path) -> None:
    broken = tmp_path / "broken_hooks.py"
    broken.write_text("def post_fork(worker):\n    pass\nraise ImportError('no db driver')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for extra in ([], ["--check-config"]):
        result = subprocess.run(
            [sys.executable, "-m", "forkhttpd", "--app", "hang:handler", "--bind",
             "127.0.0.1:0", "--hooks", str(broken), *extra], cwd=APPS, env=env,
            capture_output=True, text=True, timeout=60)
        assert result.returncode in ((2,) if not extra else (1, 2)), result.stderr
        assert (f"forkhttpd: error: --hooks {broken}: importing it raised ImportError: "
                "no db driver") in result.stderr


def test_a_hooks_module_broken_by_a_reload_keeps_the_old_generation(
        start_server: StartServer, tmp_path: Path) -> None:
    hooks = tmp_path / "my_hooks.py"
    hooks.write_text("def post_fork(worker):\n    pass\n")
    server = start_server("--app", "hang:handler", "--hooks", str(hooks))
    _, _, before = server.request("GET", "/")
    hooks.write_text("def post_fork(worker):\n    pass\nraise ValueError('half-saved')\n")
    server.send_signal(signal.SIGHUP)
    server.wait_for_log("reload failed")
    assert "ValueError: half-saved" in server.stderr
    _, _, after = server.request("GET", "/")
    assert after == before  # the same worker serves on
