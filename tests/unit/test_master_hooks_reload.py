"""The master's side of --hooks and --reload, driven in-process with fake zygotes, workers and
clock (fake_master.py): on_starting and when_ready stop a start (exit code 1, the workers
stopped first), child_exit hears why a worker ended, on_reload runs on a reload; a zygote's
file list feeds the watch, and a change reloads once the server serves."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_master import Captured, Rig, capture_log, killed

from forkhttpd.master.arbiter import StartupError
from forkhttpd.master.autoreload import DEBOUNCE, POLL_INTERVAL, FileWatcher

HOOKS = '''
import json, os
RAISE = os.environ.get("TEST_HOOKS_RAISE", "")
CALLS = []

def _note(name, *views):
    CALLS.append((name, views))
    if name == RAISE:
        raise RuntimeError(name + " failed")

def on_starting(server): _note("on_starting", server)
def when_ready(server): _note("when_ready", server)
def on_reload(server): _note("on_reload", server)
def child_exit(server, worker): _note("child_exit", server, worker)
'''


@pytest.fixture
def log() -> Iterator[Captured]:
    yield from capture_log()


@pytest.fixture
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "master_hooks.py"
    path.write_text(HOOKS)
    monkeypatch.delenv("TEST_HOOKS_RAISE", raising=False)
    return path


def calls(name: str) -> list[tuple[object, ...]]:
    import sys

    return [views for called, views in sys.modules["forkhttpd_hooks"].CALLS if called == name]


def test_master_hooks_run_with_views_of_the_server(hooks: Path, log: Captured) -> None:
    rig = Rig(workers=2, argv=["--hooks", str(hooks)])
    try:
        rig.serve()
        [(starting,)] = calls("on_starting")
        [(ready,)] = calls("when_ready")
        assert starting.pid == ready.pid == os.getpid()  # type: ignore[attr-defined]
        assert ready.generation == 1 and ready.workers == 2  # type: ignore[attr-defined]
        assert ready.settings["hooks"] == str(hooks)  # type: ignore[attr-defined]
        assert rig.notified("READY=1")  # told after when_ready

        victim = rig.live_workers()[0]
        rig.worker_exits(victim.pid, killed(signal.SIGKILL))
        rig.run(3)
        [(server, worker)] = calls("child_exit")
        assert worker.pid == victim.pid and worker.generation == 1  # type: ignore[attr-defined]
        assert worker.reason == "signal"  # type: ignore[attr-defined]
        assert worker.status == "signal SIGKILL"  # type: ignore[attr-defined]

        rig.step(signal.SIGHUP)
        [(reloading,)] = calls("on_reload")
        assert reloading.pid == os.getpid()  # type: ignore[attr-defined]
        assert "hook" not in " ".join(log.lines)
    finally:
        rig.close()


def test_on_starting_that_raises_stops_the_start_before_any_zygote(
        hooks: Path, log: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOKS_RAISE", "on_starting")
    rig = Rig(argv=["--hooks", str(hooks)])
    try:
        with pytest.raises(StartupError) as error:
            rig.arbiter.start()
        assert error.value.code == 1
        assert str(error.value) == (f"hook on_starting ({hooks}) raised RuntimeError: "
                                    "on_starting failed")
        assert rig.zygotes == {}
        assert "the server does not start" in log
    finally:
        rig.close()


def test_when_ready_that_raises_stops_the_workers_then_the_start(
        hooks: Path, log: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOKS_RAISE", "when_ready")
    rig = Rig(workers=2, argv=["--hooks", str(hooks)])
    try:
        rig.arbiter.start()
        rig.load(1)
        with pytest.raises(StartupError) as error:
            rig.run(40)
        assert error.value.code == 1 and "when_ready failed" in str(error.value)
        assert not rig.arbiter.serving and not rig.notified("READY=1")
        assert rig.live_workers() == []  # stopped before the master gave up
        assert "stopped" in log
    finally:
        rig.close()


def test_a_hook_that_raises_in_the_master_is_logged_and_changes_nothing(
        hooks: Path, log: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOKS_RAISE", "child_exit")
    rig = Rig(workers=2, argv=["--hooks", str(hooks)])
    try:
        rig.serve()
        victim = rig.live_workers()[0]
        rig.worker_exits(victim.pid, killed(signal.SIGKILL))
        rig.run(5)
        assert log.count(f"hook child_exit ({hooks}) raised RuntimeError: child_exit failed") \
            == 1
        assert len(rig.live_workers()) == 2  # replaced all the same
    finally:
        rig.close()


def test_the_zygote_s_files_feed_the_watch_and_a_change_reloads(tmp_path: Path,
                                                                 log: Captured) -> None:
    app, broken = tmp_path / "app.py", tmp_path / "broken.py"
    app.write_text("x = 1\n")
    broken.write_text("x = (\n")
    rig = Rig(workers=1, argv=["--reload"])
    try:
        assert rig.arbiter.watcher is not None
        rig.arbiter.watcher.close()
        watcher = rig.arbiter.watcher = FileWatcher(use_inotify=False)  # the fake clock
        rig.arbiter.start()
        rig._say(rig.zygotes[1], {"t": "M", "ok": True, "files": [str(app)]})
        rig.load(1)
        rig.run(5)
        assert rig.arbiter.serving and watcher.files == {str(app)}
        assert "not for production" in log

        stat = app.stat()
        os.utime(app, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        rig.step(seconds=POLL_INTERVAL)  # seen...
        assert len(rig.zygotes) == 1
        rig.step(seconds=DEBOUNCE)  # ...and quiet: the reload
        assert f"--reload: {app} changed" in log and "SIGHUP: reloading" in log
        assert len(rig.zygotes) == 2

        # a failed load's files are added to the watch, not put in its place
        rig._say(rig.zygotes[2], {"t": "M", "ok": False, "files": [str(broken)]})
        rig.fail(2)
        rig.run(3)
        assert watcher.files == {str(app), str(broken)}
        assert rig.arbiter.last_reload.startswith("failed")
    finally:
        rig.close()


def test_changes_before_the_server_serves_wait(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("x = 1\n")
    rig = Rig(workers=1, argv=["--reload"])
    try:
        assert rig.arbiter.watcher is not None
        rig.arbiter.watcher.close()
        watcher = rig.arbiter.watcher = FileWatcher(use_inotify=False)
        watcher.set_files([str(app)])
        rig.arbiter.start()
        stat = app.stat()
        os.utime(app, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        rig.step(seconds=1.0)
        rig.step(seconds=1.0)
        assert len(rig.zygotes) == 1  # no SIGHUP-like reload while loading
        rig.load(1)
        rig.run(5)
        assert len(rig.zygotes) == 2  # the change that waited reloads once serving
    finally:
        rig.close()
