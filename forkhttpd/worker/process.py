"""One worker process after fork: signals, title, heartbeat, self-recycling, then the
connection loop; must not import interfaces, master, config or ops (and never forks or kills).

A worker never returns to its caller's code: `run_worker` ends the process with os._exit.

--hooks: post_fork runs once the worker's signals and logs are set, before its first request;
worker_exit as it leaves (after the loop on a graceful stop, in the handler on a fast one,
when its master is gone); worker_abort when the master's timeout alarm arrives, before the
handler is interrupted. A hook that raises is logged and the worker goes on.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any

from setproctitle import setproctitle

from ..protocol import Limits
from ..protocol.forwarded import Trust
from ..runtime import logs
from ..runtime import scoreboard as heartbeat
from ..runtime.hooks import Hooks, WorkerView, settings_view
from ..runtime.scoreboard import Meter, Slot
from ..runtime.signals import reset_signals
from .errors import HandlerTimeout
from .exchange import Adapter, Exchange
from .loop import ServeLoop, ServeOptions

__all__ = ["run_worker", "serve_options"]


def serve_options(settings: Any) -> ServeOptions:
    """The connection loop's options from the settings."""
    return ServeOptions(
        limits=Limits(
            max_request_line=settings.limit_request_line,
            max_header_fields=settings.limit_request_fields,
            max_header_field_size=settings.limit_request_field_size,
            max_body_size=settings.limit_request_body,
            require_host=not settings.allow_missing_host,
        ),
        keep_alive=settings.keep_alive,
        max_keepalive_requests=settings.max_keepalive_requests,
        header_timeout=settings.header_timeout,
        min_body_rate=settings.min_body_rate,
        health_path=settings.health_path,
        trust=Trust(settings.forwarded_allow_ips) if settings.forwarded_allow_ips else None,
        proxy_protocol=settings.proxy_protocol,
        tls=_tls_context(settings),
    )


def _tls_context(settings: Any) -> Any:
    if not settings.certfile:
        return None
    from .tls import loaded_context  # ssl only in workers that serve TLS

    return loaded_context(settings)


class _Worker:
    def __init__(self, adapter: Adapter, listeners: list[socket.socket], settings: Any,
                 slot: Slot, number: int, generation: int, master_pid: int,
                 app_label: str, hooks: Hooks | None = None) -> None:
        self.settings = settings
        self.hooks = hooks or Hooks()
        self.exit_hook_ran = False
        self.slot = slot
        self.number = number
        self.generation = generation
        self.master_pid = master_pid
        self.parent_at_fork = os.getppid()
        self.app_label = app_label
        self.started = time.monotonic()
        jitter = settings.max_requests_jitter
        lifetime = settings.max_worker_lifetime
        if settings.max_requests > 0 or lifetime > 0:
            import random  # only then: a worker without recycling imports no random
        self.max_requests = (settings.max_requests + random.randint(0, jitter)
                             if settings.max_requests > 0 else 0)
        self.lifetime = (lifetime + random.uniform(0, settings.max_worker_lifetime_jitter)
                         if lifetime > 0 else 0.0)
        self.recycle_asked = False
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.access = (logs.AccessLog(settings.access_logfile, settings.access_log_format)
                       if settings.access_logfile else None)
        # --max-rss, checked by the worker itself after a response (at most every 10 ms):
        # a fast leak would outgrow the master's samples and meet the 1.5x SIGKILL.
        self.max_rss_pages = settings.max_rss * 2**20 // os.sysconf("SC_PAGE_SIZE")
        self.statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC) \
            if self.max_rss_pages else -1
        self.next_rss_check = 0.0
        self.leaving = ""  # why the worker stops on its own ("rss"), when it does
        self.meter = Meter(slot)  # observability: per-request counters, flushed per tick
        self.loop = ServeLoop(listeners, adapter, serve_options(settings), self.tick,
                              self.wake_r,
                              self.on_response if self.access or self.max_rss_pages
                              else self.meter.response,
                              self.meter.begin)
        self.last_title = ""

    # -- signals: record and wake, nothing more (except the handler timeout) --------------
    def on_term(self, signum: int, frame: FrameType | None) -> None:
        # Graceful: stop accepting (after taking the backlog), finish what is in flight.
        # Only a flag: the loop and the exchange read it (a response head not yet written
        # says Connection: close, so its client moves elsewhere).
        self.loop.stop()
        self._wake()

    def on_quit(self, signum: int, frame: FrameType | None) -> None:
        self.slot.set_exit_reason(heartbeat.EXIT_REASONS.index("shutdown"))
        self.flush()
        self.call_exit_hook()
        os._exit(0)

    def on_usr1(self, signum: int, frame: FrameType | None) -> None:
        logs.ask_reopen()  # done by tick(), in the loop: never half-way through a write
        self._wake()

    def on_alarm(self, signum: int, frame: FrameType | None) -> None:
        # The master saw no heartbeat for --timeout: interrupt the handler (gently first).
        if self.hooks.has("worker_abort"):
            self.hooks.call("worker_abort", self.view())
        if self.loop.in_handler:
            raise HandlerTimeout(f"handler ran longer than --timeout {self.settings.timeout}s")

    def _wake(self) -> None:
        try:
            os.write(self.wake_w, b"!")
        except OSError:
            pass

    # -- the loop's callbacks ---------------------------------------------------------------
    def tick(self, now: float) -> None:
        slot = self.slot
        slot.beat(now)
        loop = self.loop
        self.flush()
        if logs.reopen_if_asked():  # flushed to the old file first, then reopened by name
            _dump_stacks_to_error_log()  # faulthandler follows the error log to its new file
            slot.reopened()  # what `forkhttpd reopen` waits for
        parent = os.getppid()
        if parent != self.master_pid and parent != self.parent_at_fork:
            logs.error_log.warning("master %d is gone; exiting", self.master_pid)
            slot.set_exit_reason(heartbeat.EXIT_REASONS.index("master-gone"))
            self.call_exit_hook()
            os._exit(0)
        if not self.recycle_asked:
            if self.max_requests and loop.requests >= self.max_requests:
                self.recycle_asked = True
                slot.want_recycle(heartbeat.EXIT_REASONS.index("max-requests"))
            elif self.lifetime and now - self.started >= self.lifetime:
                self.recycle_asked = True
                slot.want_recycle(heartbeat.EXIT_REASONS.index("lifetime"))
        state = "exiting" if loop.stopping else ("busy" if loop.conns else "idle")
        title = (f"forkhttpd: worker {self.number} gen {self.generation} [{self.app_label}] "
                 f"{state} {loop.requests} reqs")
        if title != self.last_title:
            setproctitle(title)
            self.last_title = title

    def on_response(self, exchange: Exchange) -> None:
        duration = self.meter.response(exchange)
        if self.max_rss_pages and exchange.start >= self.next_rss_check:
            near = self._check_rss() * 4 > self.max_rss_pages * 3  # past 3/4: every response
            self.next_rss_check = exchange.start + (0.0 if near else 0.01)
        if self.access is not None:
            self.access.log(exchange, duration)

    def flush(self) -> None:
        """Counters and state to the scoreboard, buffered access-log lines to their file."""
        loop = self.loop
        meter = self.meter
        meter.flush(len(loop.conns))
        meter.set_state(heartbeat.EXITING if loop.stopping else
                        heartbeat.READING if loop.reading() else
                        heartbeat.KEEPALIVE if loop.conns else heartbeat.IDLE)
        if self.access is not None:
            self.access.flush()

    def _check_rss(self) -> int:
        """Over --max-rss: leave gracefully, as on TERM (the master sees the slot's state
        turn to exiting and starts the successor at once). Returns the resident pages."""
        try:
            resident = int(os.pread(self.statm, 128, 0).split()[1])
        except (OSError, ValueError, IndexError):
            return 0
        if resident > self.max_rss_pages and not self.loop.stopping:
            logs.error_log.warning("worker %d: %d MiB > --max-rss %d; finishing and leaving",
                                   self.number, resident * os.sysconf("SC_PAGE_SIZE") >> 20,
                                   self.settings.max_rss)
            self.leaving = "rss"
            self.slot.set_exit_reason(heartbeat.EXIT_REASONS.index("rss"))
            self.loop.stop()
            self._wake()
        return resident

    def run(self) -> None:
        # USR1 held back while its handler changes: between reset (default: terminate) and
        # on_usr1, a log reopen relayed by the master would kill the worker.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        reset_signals()
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGINT, self.on_quit)
        signal.signal(signal.SIGQUIT, self.on_quit)
        signal.signal(signal.SIGUSR1, self.on_usr1)
        signal.signal(signal.SIGALRM, self.on_alarm)
        for ignored in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2):
            signal.signal(ignored, signal.SIG_IGN)
        signal.siginterrupt(signal.SIGALRM, True)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        logs.set_role(f"worker {self.number}")
        logs.reopen_logs()  # by name: the zygote's copy may be a file rotated since
        _dump_stacks_to_error_log()
        if self.hooks.has("post_fork"):
            self.hooks.call("post_fork", self.view())
        self.tick(time.monotonic())
        self.loop.run()
        self.flush()
        self.slot.set_state(heartbeat.EXITING)
        self.slot.set_exit_reason(heartbeat.EXIT_REASONS.index(self.leaving or "shutdown"))
        self.call_exit_hook()

    def view(self) -> WorkerView:
        """What a worker hook is told of this worker (runtime.hooks.WorkerView)."""
        return WorkerView(os.getpid(), self.number, self.generation, self.master_pid,
                          self.app_label, settings_view(self.settings))

    def call_exit_hook(self) -> None:
        """worker_exit, once, whichever way the worker leaves."""
        if not self.exit_hook_ran and self.hooks.has("worker_exit"):
            self.exit_hook_ran = True
            self.hooks.call("worker_exit", self.view())


def _dump_stacks_to_error_log() -> None:
    """faulthandler writes the stacks to the error log on SIGABRT (the master's timeout)."""
    try:
        faulthandler.enable(file=logs.error_fd(), all_threads=True)
    except (ValueError, OSError):
        pass


def run_worker(adapter: Adapter, listeners: list[socket.socket], settings: Any, slot: Slot,
               number: int, generation: int, master_pid: int, app_label: str,
               hooks: Hooks | None = None) -> None:
    """Serve until told to stop, then end the process (never returns)."""
    code = 0
    try:
        _Worker(adapter, listeners, settings, slot, number, generation, master_pid,
                app_label, hooks).run()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        logs.error_log.exception("worker %d crashed", number)
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - nothing left to report to
            pass
    os._exit(code)
