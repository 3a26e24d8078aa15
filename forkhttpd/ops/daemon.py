"""Classic daemon mode (-D/--daemon): python-daemon's DaemonContext detaches the master, and a
ready pipe makes the launching command exit 0 only once the workers serve, or non-zero with
the reason when startup fails (unicorn's way); must not import the master or worker packages, and
never forks by itself: the double fork is DaemonContext's.

How the launching process waits: DaemonContext's first fork ends the parent with os._exit(0)
at once. An os.register_at_fork(after_in_parent=...) hook runs in that parent right after the
fork, before the exit: there the launcher reads the ready pipe and exits with the daemon's
verdict instead. Every other fork (the second one, the master's own) leaves the hook inert.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time
from typing import IO, Any

from .pidfile import PidFile

__all__ = ["ReadyPipe", "detach", "refuse_under_service_manager"]

_READY = b"ready"
_FAILED = b"failed"
# How long the launcher waits for a word from the daemon (systemd's TimeoutStartSec in the
# shipped unit): a failure is reported at once, this only bounds a start that hangs.
READY_TIMEOUT = 90.0


def refuse_under_service_manager(environ: dict[str, str] | os._Environ[str]) -> str | None:
    """Why --daemon must not run here, or None. Under systemd (NOTIFY_SOCKET set) the service
    manager tracks the process it started; a daemon would leave it behind and its readiness
    and reload notifications would come from a PID systemd does not know."""
    if environ.get("NOTIFY_SOCKET"):
        return ("--daemon is refused because NOTIFY_SOCKET is set: a service manager "
                "(systemd, Type=notify) runs forkhttpd and keeps it in the background itself; "
                "detaching would hide the master from it. Drop --daemon (and daemon = true) "
                "in the unit's configuration.")
    return None


class ReadyPipe:
    """The daemon's word to the launching command: ready, or failed with an exit code."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        self.launcher = os.getpid()
        self.detached = False
        os.register_at_fork(after_in_parent=self._in_parent, after_in_child=self._in_child)

    # -- the launching process ----------------------------------------------------------
    def _in_parent(self) -> None:
        if os.getpid() != self.launcher or self.detached:
            return
        os.close(self.write_fd)  # now only the daemon side holds it: EOF means it died
        code = self.wait_verdict()
        os._exit(code)

    def wait_verdict(self) -> int:
        """Block until the daemon reports; print failures; return the launcher's exit code."""
        data = b""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                    print(f"forkhttpd: error: the daemon did not report ready within "
                          f"{READY_TIMEOUT:g}s; it may still be starting in the background: "
                          "see the error log (--error-logfile)", file=sys.stderr)
                    return 1
                chunk = os.read(self.read_fd, 65536)
            except InterruptedError:
                continue
            except KeyboardInterrupt:
                print("forkhttpd: stopped waiting; the daemon may still be starting",
                      file=sys.stderr)
                return 130
            if not chunk:
                break
            data += chunk
        head, _, text = data.partition(b"\n")
        words = head.split()
        if words[:1] == [_READY]:
            pid = words[1].decode() if len(words) > 1 else "?"
            print(f"forkhttpd: running in the background as pid {pid}"
                  + (f", serving on {text.decode(errors='replace').strip()}" if text else ""))
            return 0
        if words[:1] == [_FAILED]:
            code = int(words[1]) if len(words) > 1 and words[1].isdigit() else 1
            sys.stderr.write(text.decode(errors="replace"))
            sys.stderr.flush()
            return code or 1
        print("forkhttpd: error: the daemon exited during startup without saying why; "
              "see the error log (--error-logfile)", file=sys.stderr)
        return 1

    # -- the daemon ---------------------------------------------------------------------
    def _in_child(self) -> None:
        if self.detached and self.write_fd >= 0:
            # A child of the master (zygote, worker): only the master reports.
            try:
                os.close(self.write_fd)
            except OSError:
                pass
            self.write_fd = -1

    def ready(self, addresses: str = "") -> None:
        self._say(f"ready {os.getpid()}\n{addresses}")

    def failed(self, code: int, text: str) -> None:
        self._say(f"failed {code}\n{text.rstrip()}\n")

    def _say(self, message: str) -> None:
        if self.write_fd < 0:
            return
        try:
            os.write(self.write_fd, message.encode("utf-8", "replace")[:60000])
        except OSError:
            pass
        finally:
            os.close(self.write_fd)
            self.write_fd = -1


def _log_stream(path: str | None) -> IO[str] | None:
    if not path or path == "-":
        return None
    return open(path, "a", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115


def detach(settings: Any, listeners: list[socket.socket], pidfile: PidFile | None,
           pipe: ReadyPipe) -> None:
    """Become the daemon. Returns in the daemon only; the launcher exits inside (see above).

    The working directory stays the current one (after --chdir), so `--app mymod:app`
    finds mymod.py as in the foreground. stderr goes to --error-logfile when it is a file,
    so tracebacks that bypass logging are not lost; otherwise to /dev/null.
    """
    stderr = _log_stream(settings.error_logfile)
    import daemon  # python-daemon, only when --daemon is asked for (keeps workers small)

    context = daemon.DaemonContext(
        working_directory=os.getcwd(),
        umask=settings.umask,
        detach_process=True,  # always: -D means detach, even when started by init
        files_preserve=[*listeners, pipe.write_fd],
        signal_map={},  # the arbiter installs its own handlers
        stdout=None,
        stderr=stderr,
        pidfile=pidfile,
    )
    try:
        context.open()
    finally:
        pipe.detached = True
        if stderr is not None:
            stderr.close()  # fd 2 is a duplicate of it now
