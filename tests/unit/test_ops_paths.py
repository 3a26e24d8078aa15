"""The path checks (config/paths.py) as pure judgements on a temporary tree: what each setting
needs, relative paths taken from --chdir, and permissions judged for another user by the mode
bits; no fork, no port."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from forkhttpd.config.paths import _Who, path_problems
from forkhttpd.config.settings import Mount, Settings
from forkhttpd.runtime.privileges import Identity
from forkhttpd.runtime.scoreboard import Scoreboard

STRANGER = Identity(uid=54321, gid=54321, user=None)


def settings(**values: object) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


def test_nothing_set_nothing_to_check() -> None:
    assert path_problems(Settings(), None) == []


def test_each_setting_names_itself(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    problems = path_problems(settings(
        access_logfile=str(tmp_path / "no" / "a.log"), error_logfile=str(tmp_path),
        pid=str(tmp_path / "no" / "x.pid"), routes=str(tmp_path / "file"),
        static=(Mount("/s", str(tmp_path / "none")),)), None)
    assert problems == [
        f"--error-logfile {tmp_path}: is a directory; expected a file",
        f"--access-logfile {tmp_path}/no/a.log: directory {tmp_path}/no does not exist",
        f"--pid {tmp_path}/no/x.pid: directory {tmp_path}/no does not exist",
        f"--static /s={tmp_path}/none: no such directory",
        f"--routes {tmp_path}/file: not a directory",
    ]


def test_streams_and_good_paths_pass(tmp_path: Path) -> None:
    (tmp_path / "static").mkdir()
    assert path_problems(settings(
        access_logfile="-", error_logfile="-", pid=str(tmp_path / "x.pid"),
        static=(Mount("/s", str(tmp_path / "static")),)), None) == []


def test_relative_paths_are_taken_from_chdir(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "site").mkdir()
    good = settings(chdir=str(tmp_path), access_logfile="logs/a.log",
                    static=(Mount("/s", "site"),))
    assert path_problems(good, None) == []
    bad = settings(chdir=str(tmp_path), access_logfile="nope/a.log")
    assert path_problems(bad, None) == [
        f"--access-logfile nope/a.log: directory {tmp_path}/nope does not exist"]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path is its owner's alone)."""
    path = Path(tempfile.mkdtemp(prefix="forkhttpd-paths-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_another_user_is_judged_by_the_mode_bits(open_dir: Path) -> None:
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    shared = open_dir / "shared"
    shared.mkdir(mode=0o755)
    who = _Who(STRANGER)
    assert not who.myself
    assert who.can(str(shared), os.R_OK | os.X_OK)
    assert not who.can(str(shared), os.W_OK)
    assert not who.can(str(private), os.X_OK)
    assert who.blocked_ancestor(str(private / "a.log")) == str(private)
    assert who.blocked_ancestor(str(shared / "a.log")) is None


def test_the_current_user_is_judged_by_the_kernel(tmp_path: Path) -> None:
    me = _Who(None)
    assert me.myself and me.can(str(tmp_path), os.W_OK)


@pytest.mark.skipif(os.geteuid() != 0, reason="--user needs root")
def test_logs_must_be_reachable_by_the_workers(open_dir: Path) -> None:
    (open_dir / "private").mkdir(mode=0o700)
    reachable = str(open_dir / "a.log")
    hidden = str(open_dir / "private" / "a.log")
    # root creates the file and hands it to the workers' user: reaching it is what matters
    assert path_problems(settings(access_logfile=reachable), STRANGER) == []
    assert path_problems(settings(access_logfile=hidden), STRANGER) == [
        f"--access-logfile {hidden}: directory {open_dir}/private cannot be entered by uid "
        "54321, the --user/--group the workers run as"]
    assert path_problems(settings(access_logfile=hidden), None) == []  # root itself can


def test_the_scoreboard_counts_reopens(tmp_path: Path) -> None:
    board = Scoreboard(4)
    slot = board.slot(2)
    assert board.reopens(2) == 0
    slot.reopened()
    slot.reopened()
    assert board.reopens(2) == 2 and board.reopens(1) == 0
    view = Scoreboard.inspect(f"/proc/self/fd/{board.fd}")  # as `forkhttpd reopen` reads it
    assert view.capacity == 4 and view.reopens(2) == 2
    slot.reopened()
    assert view.reopens(2) == 3  # shared pages: the reader sees the worker's writes
    board.claim(2, 99, 1, 1, 0.0, 0.0)
    assert board.reopens(2) == 0  # a new worker in the slot starts from zero
