"""--reload's watch over the app's source files (as its zygote reports them) and the
--reload-extra-file files: says when a reload is due; it never reloads by itself, imports no
application code, and nothing of forkhttpd but the logs.

Linux's inotify, through ctypes, gives a descriptor the master's single select loop waits on
with its others; no thread, no dependency. (watchfiles would need a thread or its own loop in
a master that stays single-threaded, for a feature meant for a laptop.) Where inotify cannot
be had (not Linux, or the watch limit is reached) the files' mtimes are polled every
POLL_INTERVAL seconds instead.

Directories are watched, not files: an editor often saves by writing a new file and renaming
it over the old one, which would end a watch on the old file's inode. An event counts when
its name is a watched file of that directory. A save makes several events (create, write,
close, rename, attribute change); the reload is due once they have been quiet for DEBOUNCE
seconds, so one save is one reload, and prints one error when the new code is broken.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Iterable

from ..runtime import logs

__all__ = ["DEBOUNCE", "FileWatcher", "POLL_INTERVAL"]

log = logs.error_log

DEBOUNCE = 0.25  # seconds of quiet after the last event before the reload
POLL_INTERVAL = 0.5  # the fallback's pace
_LONGEST_WAIT = 2.0  # a reload is due this long after the first event, however busy

# <sys/inotify.h>
_IN_ATTRIB, _IN_CLOSE_WRITE = 0x4, 0x8
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_IGNORED, _IN_Q_OVERFLOW, _IN_ONLYDIR = 0x8000, 0x4000, 0x01000000
_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_MASK = (_IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE
         | _IN_DELETE | _IN_ONLYDIR)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name


def _inotify() -> tuple[ctypes.CDLL | None, int]:
    """(libc, an inotify descriptor), or (None, -1) when inotify cannot be had."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
    except (OSError, AttributeError):
        return None, -1
    return (libc, fd) if fd >= 0 else (None, -1)


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class FileWatcher:
    """Which files to watch (the app's, replaced per generation, and the extra ones) and
    whether one of them changed. `fileno()` is the descriptor to select on (-1 when
    polling); after select, `read(now)` takes the events, then `due(now)` says whether to
    reload now, and which files changed."""

    def __init__(self, extra: Iterable[str] = (), use_inotify: bool = True) -> None:
        self.extra = {os.path.realpath(path) for path in extra}
        self.app: set[str] = set()
        self.libc, self.fd = _inotify() if use_inotify else (None, -1)
        self.dirs: dict[str, int] = {}  # watched directory -> its watch descriptor
        self.by_wd: dict[int, str] = {}
        self.stamps: dict[str, tuple[int, int, int] | None] = {}  # polling only
        self.next_poll = 0.0
        self.first_event = 0.0
        self.last_event = 0.0
        self.changed: set[str] = set()
        self._watch()

    @property
    def files(self) -> set[str]:
        return self.app | self.extra

    def fileno(self) -> int:
        return self.fd

    def set_files(self, files: Iterable[str]) -> None:
        """The app's files, as a zygote that loaded reported them."""
        self.app = {os.path.realpath(path) for path in files}
        self._watch()

    def add_files(self, files: Iterable[str]) -> None:
        """Files a failed load reported: watched too, so that fixing them reloads."""
        self.app |= {os.path.realpath(path) for path in files}
        self._watch()

    def _watch(self) -> None:
        wanted = {os.path.dirname(path) for path in self.files}
        if self.libc is not None:
            for directory in sorted(wanted - set(self.dirs)):
                wd = int(self.libc.inotify_add_watch(self.fd, os.fsencode(directory), _MASK))
                if wd < 0:
                    code = ctypes.get_errno()
                    if code == errno.ENOENT:
                        continue  # a directory that went away: nothing there to watch
                    log.warning("--reload: cannot watch %s (%s); polling every %.1fs "
                                "instead", directory, os.strerror(code), POLL_INTERVAL)
                    self._fall_back_to_polling()
                    break
                self.dirs[directory] = wd
                self.by_wd[wd] = directory
            else:
                for directory in sorted(set(self.dirs) - wanted):
                    wd = self.dirs.pop(directory)
                    self.by_wd.pop(wd, None)
                    self.libc.inotify_rm_watch(self.fd, wd)
                return
        # polling: a new file's stamp is taken now, so that only later changes count
        self.stamps = {path: self.stamps[path] if path in self.stamps else _stamp(path)
                       for path in self.files}

    def _fall_back_to_polling(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.libc, self.fd = None, -1
        self.dirs.clear()
        self.by_wd.clear()
        self._watch()

    def _note(self, path: str, now: float) -> None:
        self.changed.add(path)
        if not self.first_event:
            self.first_event = now
        self.last_event = now

    def read(self, now: float) -> None:
        """Take the pending inotify events (call when fileno() is readable)."""
        if self.fd < 0:
            return
        for _ in range(64):  # bounded: a burst larger than this is read on the next turn
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                self._fall_back_to_polling()
                return
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size:offset + _EVENT.size + size].rstrip(b"\0")
                offset += _EVENT.size + size
                if mask & _IN_Q_OVERFLOW:  # events were lost: one of them may have counted
                    self._note(next(iter(sorted(self.files)), ""), now)
                    continue
                directory = self.by_wd.get(wd)
                if directory is None:
                    continue
                if mask & _IN_IGNORED:  # the directory itself is gone
                    self.dirs.pop(directory, None)
                    self.by_wd.pop(wd, None)
                    continue
                path = os.path.join(directory, os.fsdecode(name))
                if path in self.files:
                    self._note(path, now)

    def poll(self, now: float) -> None:
        """The fallback: compare the files' stamps, at most every POLL_INTERVAL."""
        if self.fd >= 0 or now < self.next_poll:
            return
        self.next_poll = now + POLL_INTERVAL
        for path in sorted(self.files):
            stamp = _stamp(path)
            if stamp != self.stamps.get(path):
                self.stamps[path] = stamp
                self._note(path, now)

    def due(self, now: float) -> list[str]:
        """The files that changed, once their events have settled; [] when no reload is due.
        Taking them resets the watch for the next change."""
        self.poll(now)
        if not self.changed or (now - self.last_event < DEBOUNCE
                                and now - self.first_event < _LONGEST_WAIT):
            return []
        changed = sorted(self.changed)
        self.changed.clear()
        self.first_event = self.last_event = 0.0
        return changed

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.libc = None
