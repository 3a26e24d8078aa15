"""The PID file: atomic content, the lock as the sign of life, stale take-over, careful
removal. flock locks belong to an open file description, so a second open in this same
process stands in for another master (no fork needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forkhttpd.ops.pidfile import AlreadyRunning, PidFile, PidFileError, holder, read_pid


def _dead_pid() -> int:
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def test_acquire_writes_our_pid_and_locks(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    with PidFile(str(path)) as pidfile:
        assert path.read_text() == f"{os.getpid()}\n"
        assert pidfile.is_locked
        assert holder(str(path)) == os.getpid()  # locked: alive, whatever its name
        assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed
    assert not path.exists()
    assert holder(str(path)) is None


def test_a_held_file_refuses_a_second_master(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    first = PidFile(str(path))
    first.acquire()
    try:
        with pytest.raises(AlreadyRunning) as caught:
            PidFile(str(path)).acquire()
        assert caught.value.pid == os.getpid()
        assert f"already running (pid {os.getpid()}" in str(caught.value)
        assert path.read_text() == f"{os.getpid()}\n"
    finally:
        first.release()


def test_a_stale_file_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    dead = _dead_pid()
    path.write_text(f"{dead}\n")
    assert holder(str(path)) is None
    pidfile = PidFile(str(path))
    pidfile.acquire()
    assert pidfile.took_over == dead
    assert read_pid(str(path)) == os.getpid()
    pidfile.release()


def test_garbage_in_a_stale_file_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    path.write_text("not a pid")
    with PidFile(str(path)) as pidfile:
        assert pidfile.took_over is None
        assert read_pid(str(path)) == os.getpid()


def test_release_keeps_a_file_that_names_someone_else(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    pidfile = PidFile(str(path))
    pidfile.acquire()
    path.write_text("12345\n")
    pidfile.release()
    assert path.read_text() == "12345\n"
    pidfile.release()  # twice is harmless


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "no" / "x.pid"
    with pytest.raises(PidFileError) as caught:
        PidFile(str(path)).acquire()
    assert str(tmp_path / "no") in str(caught.value)


def test_read_pid_is_forgiving(tmp_path: Path) -> None:
    assert read_pid(str(tmp_path / "missing")) is None
    (tmp_path / "empty").write_text("")
    assert read_pid(str(tmp_path / "empty")) is None
    (tmp_path / "ok").write_text(" 42\n")
    assert read_pid(str(tmp_path / "ok")) == 42
    (tmp_path / "zero").write_text("0\n")
    assert read_pid(str(tmp_path / "zero")) is None
