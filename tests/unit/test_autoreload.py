"""--reload's pieces: which files are the app's (interfaces.sources) and the master's watch
over them (master.autoreload), with inotify and with the polling fallback. The clock is the
test's: `due(now)` is given the times."""

from __future__ import annotations

import os
import select
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import forkhttpd
from forkhttpd.config.settings import SettingsError, load_settings
from forkhttpd.interfaces.sources import app_source_files, excluded_dirs, files_in_traceback
from forkhttpd.master.autoreload import DEBOUNCE, POLL_INTERVAL, FileWatcher


def module(name: str, path: str | None) -> types.ModuleType:
    mod = types.ModuleType(name)
    if path is not None:
        mod.__file__ = path
    return mod


def test_app_files_are_those_outside_python_and_forkhttpd(tmp_path: Path) -> None:
    app = tmp_path / "web.py"
    app.write_text("")
    (tmp_path / "lib").mkdir()
    helper = tmp_path / "lib" / "helper.py"
    helper.write_text("")
    modules = [module("web", str(app)), module("lib.helper", str(helper)),
               module("ext", str(tmp_path / "ext.cpython-311-x86_64-linux-gnu.so")),
               module("builtin", None), os, forkhttpd, sys.modules["pytest"]]
    assert app_source_files(modules, excluded_dirs()) == [str(helper), str(app)]


def test_excluded_dirs_cover_the_standard_library_and_forkhttpd() -> None:
    excluded = excluded_dirs()
    assert app_source_files([os, forkhttpd], excluded) == []
    assert os.sep not in excluded


def test_files_named_by_a_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    caller = tmp_path / "app.py"
    caller.write_text("import broken\n")
    text = (f'Traceback (most recent call last):\n  File "{caller}", line 1, in <module>\n'
            f'    import broken\n  File "{os.__file__}", line 3\n'
            f'  File "{broken}", line 1\n    def f(:\n          ^\nSyntaxError: bad\n'
            f'  File "{tmp_path / "gone.py"}", line 2\n')
    assert files_in_traceback(text, excluded_dirs()) == [str(caller), str(broken)]


def test_reload_settings() -> None:
    settings = load_settings(["--reload", "--reload-extra-file", "conf.toml"], {})
    assert settings.reload and settings.reload_extra_file == (os.path.abspath("conf.toml"),)
    with pytest.raises(SettingsError, match="FORKHTTPD_RELOAD: expected one of 1, 0"):
        load_settings([], {"FORKHTTPD_RELOAD": "sometimes"})


@pytest.fixture(params=["inotify", "polling"])
def watcher(request: pytest.FixtureRequest) -> Iterator[FileWatcher]:
    watch = FileWatcher(use_inotify=request.param == "inotify")
    if request.param == "inotify" and watch.fileno() < 0:
        pytest.skip("no inotify here")
    yield watch
    watch.close()


def settle(watch: FileWatcher, now: float) -> list[str]:
    """Read what the kernel queued (inotify) or poll once (polling, at `now` plus an
    interval), then ask once the debounce is over."""
    if watch.fileno() >= 0:
        ready, _, _ = select.select([watch.fileno()], [], [], 1.0)
        if ready:
            watch.read(now)
    else:
        assert watch.due(now + POLL_INTERVAL) == []  # seen now, due once quiet
    return watch.due(now + POLL_INTERVAL + DEBOUNCE)


def bump(path: Path, text: str) -> None:
    """Write `text` and move the mtime on, so polling sees it even within one clock tick."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_a_save_of_a_watched_file_is_one_change(tmp_path: Path, watcher: FileWatcher) -> None:
    app, other = tmp_path / "app.py", tmp_path / "notes.txt"
    app.write_text("x = 1\n")
    other.write_text("")
    watcher.set_files([str(app)])
    assert watcher.due(100.0) == []
    bump(other, "unwatched\n")
    assert settle(watcher, 100.0) == []
    bump(app, "x = 2\n")
    assert settle(watcher, 101.0) == [str(app)]
    assert watcher.due(105.0) == []  # taken: the next change is a new one


def test_the_change_waits_for_quiet(tmp_path: Path, watcher: FileWatcher) -> None:
    app = tmp_path / "app.py"
    app.write_text("x = 1\n")
    watcher.set_files([str(app)])
    bump(app, "x = 2\n")
    if watcher.fileno() >= 0:
        select.select([watcher.fileno()], [], [], 1.0)
        watcher.read(200.0)
        assert watcher.due(200.0 + DEBOUNCE / 2) == []  # events still settling
        assert watcher.due(200.0 + DEBOUNCE) == [str(app)]
    else:
        watcher.poll(200.0)
        assert watcher.due(200.0) == []
        assert watcher.due(200.0 + DEBOUNCE) == [str(app)]


def test_a_file_replaced_by_rename_counts(tmp_path: Path, watcher: FileWatcher) -> None:
    app = tmp_path / "app.py"
    app.write_text("x = 1\n")
    watcher.set_files([str(app)])
    new = tmp_path / ".app.py.swp"
    new.write_text("x = 3\n")
    os.utime(new, ns=(0, app.stat().st_mtime_ns + 10**9))
    os.replace(new, app)  # as editors save
    assert settle(watcher, 300.0) == [str(app)]
    bump(app, "x = 4\n")  # and the watch survives the replaced inode
    assert settle(watcher, 310.0) == [str(app)]


def test_extra_files_stay_when_the_app_files_change(tmp_path: Path) -> None:
    extra = tmp_path / "conf.toml"
    extra.write_text("")
    first, second = tmp_path / "a.py", tmp_path / "b.py"
    watch = FileWatcher([str(extra)], use_inotify=False)
    watch.set_files([str(first)])
    watch.set_files([str(second)])
    assert watch.files == {str(extra), str(second)}
    watch.add_files([str(first)])
    assert watch.files == {str(extra), str(first), str(second)}
    watch.close()
