"""Startup mistakes against the real forkhttpd: every path setting checked before anything is
forked (as the user that will use it), one line naming the setting, exit 2 for settings errors
and 1 for runtime failures, in the foreground, in --check-config and through --daemon's ready
pipe; no traceback of ours on the terminal."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forkhttpd.ops.pidfile import read_pid

from .harness import APPS, listening_socket, wait_until
from .ops_support import alive, kill_daemon, run_forkhttpd

PREFIX = "forkhttpd: error: "


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(PREFIX)]


def assert_one_clean_line(stderr: str, *words: str) -> str:
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert PREFIX + "forkhttpd" not in stderr  # one prefix, never two
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(("flag", "value", "why"), [
    ("--access-logfile", "{tmp}/missing/a.log", "directory {tmp}/missing does not exist"),
    ("--access-logfile", "{tmp}", "is a directory"),
    ("--error-logfile", "{tmp}/missing/e.log", "directory {tmp}/missing does not exist"),
    ("--pid", "{tmp}/missing/x.pid", "directory {tmp}/missing does not exist"),
    ("--static", "/s={tmp}/missing", "no such directory"),
    ("--cgi-dir", "/cgi-bin={tmp}/file", "not a directory"),
    ("--routes", "{tmp}/missing", "no such directory"),
    ("--chdir", "{tmp}/missing", "no such directory"),
])
def test_a_path_that_cannot_work_is_one_line_and_exit_2(tmp_path: Path, flag: str, value: str,
                                                         why: str) -> None:
    (tmp_path / "file").write_text("x")
    value, why = value.format(tmp=tmp_path), why.format(tmp=tmp_path)
    start = time.monotonic()
    result = run_forkhttpd("--app", "mymod:handler", "--bind", "127.0.0.1:0", flag, value,
                           cwd=APPS, timeout=30)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - start < 15  # not a crash loop that never ends
    line = assert_one_clean_line(result.stderr, f"{flag} {value}", why)
    assert "serving on" not in result.stderr, line
    check = run_forkhttpd("--check-config", "--app", "mymod:handler", flag, value, cwd=APPS)
    assert check.returncode == 2
    assert f"{flag} {value}: " in check.stderr and why in check.stderr
    assert "configuration check is successful" not in check.stdout


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can enter (pytest's tmp_path is its owner's alone)."""
    path = Path(tempfile.mkdtemp(prefix="forkhttpd-paths-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="--user needs root")
def test_paths_are_checked_as_the_workers_user(open_dir: Path) -> None:
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    log = private / "access.log"
    result = run_forkhttpd("--app", "mymod:handler", "--bind", "127.0.0.1:0", "--user",
                           "nobody", "--access-logfile", str(log), cwd=APPS, timeout=30)
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, f"--access-logfile {log}", f"directory {private}",
                          "cannot be entered by uid", "--user")
    static = run_forkhttpd("--check-config", "--app", "mymod:handler", "--user", "nobody",
                           "--static", f"/s={private}", cwd=APPS)
    assert static.returncode == 2
    assert f"--static /s={private}: not readable by uid" in static.stderr
    # As root itself the same paths are fine: the check is per user, not a blanket refusal.
    fine = run_forkhttpd("--check-config", "--app", "mymod:handler", "--access-logfile",
                         str(log), "--static", f"/s={private}", cwd=APPS)
    assert fine.returncode == 0, fine.stderr


def test_error_messages() -> None:
    doubled = run_forkhttpd("--bogus-flag", cwd=APPS)
    assert doubled.returncode == 2
    assert_one_clean_line(doubled.stderr, "unrecognized arguments: --bogus-flag")
    unrelated = run_forkhttpd("--log-config", "x.ini", cwd=APPS)
    assert unrelated.returncode == 2
    assert "did you mean" not in unrelated.stderr  # --config is another word, not a typo
    typo = run_forkhttpd("--worker", "2", cwd=APPS)
    assert typo.returncode == 2 and "did you mean --workers?" in typo.stderr
    bad_value = run_forkhttpd("--workers", "zero", cwd=APPS)
    assert bad_value.returncode == 2
    assert_one_clean_line(bad_value.stderr, "--workers")


def test_the_app_setting_is_named_in_app_errors(tmp_path: Path) -> None:
    (tmp_path / "numbers.py").write_text("x = 42\n")
    result = run_forkhttpd("--app", "numbers:x", "--bind", "127.0.0.1:0", cwd=tmp_path,
                           timeout=30)
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, "--app numbers:x: the app 42 is not callable")
    check = run_forkhttpd("--check-config", "--app", "numbers:x", cwd=tmp_path)
    assert check.returncode == 2
    assert "--app numbers:x: the app 42 is not callable" in check.stderr


def test_a_port_in_use_is_a_runtime_failure() -> None:
    busy = listening_socket()
    try:
        port = busy.getsockname()[1]
        result = run_forkhttpd("--app", "mymod:handler", "--bind", f"127.0.0.1:{port}",
                               cwd=APPS, timeout=30)
        assert result.returncode == 1
        assert_one_clean_line(result.stderr, "address already in use")
    finally:
        busy.close()


# -- --daemon: the launcher returns the failure and its reason within seconds ------------------

def _daemon(tmp_path: Path, *args: str, cwd: Path = APPS) -> tuple[int, str, float]:
    pidfile = tmp_path / "d.pid"
    start = time.monotonic()
    result = run_forkhttpd("-D", *args, cwd=cwd, timeout=60)
    took = time.monotonic() - start
    pid = read_pid(str(pidfile)) if pidfile.exists() else None
    # the daemon reports, then exits: give it a moment
    if pid is not None and not wait_until(lambda: not alive(pid), 10):
        kill_daemon(pid)
        raise AssertionError(f"a daemon was left running: {result.stderr}")
    assert "running in the background" not in result.stdout
    return result.returncode, result.stderr, took


def test_daemon_reports_every_kind_of_startup_failure(tmp_path: Path) -> None:
    pidfile = str(tmp_path / "d.pid")
    code, stderr, took = _daemon(tmp_path, "--app", "mymod:handler", "--bind", "127.0.0.1:0",
                                 "--access-logfile", f"{tmp_path}/missing/a.log",
                                 "--pid", pidfile)
    assert code == 2 and took < 15
    assert_one_clean_line(stderr, f"--access-logfile {tmp_path}/missing/a.log")

    code, stderr, took = _daemon(tmp_path, "--app", "mymod:handler", "--bind", "127.0.0.1:0",
                                 "--pid", f"{tmp_path}/missing/d.pid")
    assert code == 2 and took < 15
    assert_one_clean_line(stderr, f"--pid {tmp_path}/missing/d.pid")

    busy = listening_socket()
    try:
        code, stderr, took = _daemon(tmp_path, "--app", "mymod:handler", "--bind",
                                     f"127.0.0.1:{busy.getsockname()[1]}", "--pid", pidfile)
    finally:
        busy.close()
    assert code == 1 and took < 15
    assert_one_clean_line(stderr, "address already in use")

    # This one happens after the launcher detached: the daemon reports it on the ready pipe.
    (tmp_path / "numbers.py").write_text("x = 42\n")
    code, stderr, took = _daemon(tmp_path, "--app", "numbers:x", "--bind", "127.0.0.1:0",
                                 "--pid", pidfile, "--error-logfile",
                                 str(tmp_path / "error.log"), cwd=tmp_path)
    assert code == 2 and took < 30
    assert_one_clean_line(stderr, "--app numbers:x: the app 42 is not callable")
    code, stderr, took = _daemon(tmp_path, "--app", "raises_at_import:handler", "--bind",
                                 "127.0.0.1:0", "--pid", pidfile)
    assert code == 2 and took < 30
    assert "--app raises_at_import:handler: importing 'raises_at_import' raised" in stderr
