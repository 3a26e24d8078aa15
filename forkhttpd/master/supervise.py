"""The master's watch over running workers: heartbeat timeouts (alarm, abort, kill), memory
limits, staggered recycles, graceful retirement and the one log line per worker exit, acted
on from supervision.judge()'s verdicts; a mixin of the Arbiter, part of the arbiter package
(the only place that signals workers); it never imports application code."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from ..runtime import logs
from ..runtime.scoreboard import Scoreboard
from .children import describe_status, send
from .health import Sample, judge, observe

__all__ = ["RECYCLES", "STAGGERED", "Supervising", "WorkerRecord", "exit_reason"]

log = logs.error_log

# Planned recycles are staggered: one starts only while no other worker of its generation
# is being recycled. Memory and timeout replacements never wait: waiting makes them worse.
STAGGERED = ("max-requests", "lifetime")
RECYCLES = STAGGERED + ("rss", "timeout")
_QUIET = ("reload", "shutdown", "max-requests", "lifetime", "ttou", "rss")  # logged at info
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE,
                  signal.SIGABRT}
_PLACEHOLDER_TIMEOUT = 10.0  # a zygote that never reports a worker it was asked for
_FAST_DEATH = 1.0  # a worker that dies this soon after its start, unasked, failed to start


@dataclass
class WorkerRecord:
    """What the master knows of one worker. Until the zygote reports the PID, the record is
    a placeholder whose pid is -(slot + 1)."""

    pid: int
    number: int
    generation: int
    slot: int
    spawned: float
    process: Any = None  # the psutil.Process made as soon as the PID is known
    ready: bool = False
    replacing: str = ""  # a recycle reason: a successor starts first, then it is retired
    retiring: str = ""  # the reason the master asked it to stop
    retire_signal: int = 0  # what it was sent (sent again once it is ready)
    retire_deadline: float = 0.0
    kill_reason: str = ""
    timeout_stage: int = 0  # 0 fine, 1 alarmed, 2 aborted, 3 killed
    stage_since: float = 0.0
    over_rss_since: float | None = None
    sample: Sample = field(default_factory=lambda: Sample(alive=True))


def exit_reason(asked: str, reported: str, status: int) -> str:
    """Why a worker ended: what the master asked for first, else what its status says.

    `reported` is the reason the worker wrote in its slot. A worker that ends on a signal the
    master did not send was killed ("signal"), unless the signal is a crash (SEGV, ABRT...);
    a non-zero exit is a crash; a clean exit after a TERM nobody here sent is "signal" too.
    """
    if asked:
        return asked
    if os.WIFSIGNALED(status):
        return "crash" if os.WTERMSIG(status) in _CRASH_SIGNALS else "signal"
    if reported in ("master-gone", "app-error", "rss"):
        return reported
    if os.waitstatus_to_exitcode(status) != 0:
        return "crash"
    return "signal" if reported == "shutdown" else "exit"


class Supervising:
    """Mixed into Arbiter: reads the scoreboard, asks judge(), signals workers."""

    settings: Any
    board: Scoreboard
    workers: dict[int, WorkerRecord]
    stopping: str
    watchful: bool  # a worker nears --max-rss: the master samples faster
    observer: Any  # status.Observer: counters, status server and file
    fast_failures: int
    last_fast_death: float
    spawn_not_before: float

    # -- the watch ------------------------------------------------------------------------
    def _supervise(self, now: float) -> None:
        settings = self.settings
        timeout = settings.timeout  # a worker beats as a request begins and 4x a second
        grace = min(5.0, max(1.0, settings.timeout / 2))
        near = settings.max_rss * 2 / 3 if settings.max_rss else float("inf")
        self.watchful = False
        for record in list(self.workers.values()):
            if record.pid <= 0:
                if now - record.spawned > _PLACEHOLDER_TIMEOUT:
                    log.warning("worker %d (gen %d) was never reported by its zygote; "
                                "giving up on it", record.number, record.generation)
                    self._forget_placeholder(record)
                continue
            view = self.board.read(record.slot)
            if not record.ready and view.state not in ("starting", "free"):
                record.ready = True
                if record.retire_signal:
                    # Sent just after its fork, the signal may have been lost: Python clears
                    # pending signals in a new child. Its handlers are in place now.
                    self._kill(record.pid, record.retire_signal)
            if self.fast_failures and record.ready and record.spawned > self.last_fast_death \
                    and now - record.spawned > 2 * _FAST_DEATH:
                self.fast_failures = 0  # one started since the last failure, and lives
            if record.retiring and now >= record.retire_deadline:
                log.warning("worker %d (pid %d) did not stop within %.0fs; SIGKILL",
                            record.number, record.pid, settings.graceful_timeout)
                self._kill(record.pid, signal.SIGKILL)
                record.retire_deadline = now + 5.0
                continue
            last_beat = self._last_beat(record, view.last_beat, now, timeout)
            if record.timeout_stage and now - last_beat <= timeout:
                # It beats again: the alarm interrupted its handler, which answered 503.
                # The worker may be left in a strange state; replace it, without waiting.
                record.timeout_stage = 0
                self._replace(record, "timeout", staggered=False)
            if view.wants_recycle:
                self._replace(record, view.exit_reason or "max-requests")
            record.sample = observe(record.process)
            if view.state == "exiting" and not record.retiring:
                self._leaving(record, view.exit_reason, now)
            if settings.max_rss and record.sample.rss_mib > settings.max_rss:
                record.over_rss_since = record.over_rss_since or now
            else:
                record.over_rss_since = None
            if record.sample.rss_mib > near and not record.retiring:
                self.watchful = True  # sample it often: a fast leak must not reach 1.5x
            verdict = judge(now=now, last_beat=last_beat, sample=record.sample,
                            timeout=timeout, max_rss=settings.max_rss,
                            over_rss_since=record.over_rss_since,
                            timeout_stage=record.timeout_stage,
                            stage_since=record.stage_since, grace=grace)
            self._act(record, verdict.action, verdict.reason, now, view.request_line)

    def _last_beat(self, record: WorkerRecord, beat: float, now: float,
                   timeout: float) -> float:
        """The slot's heartbeat, read again while it looks stale. A worker writes its beat
        with struct.pack_into, which zero-fills the block before it packs the fields, so a
        read can catch a zero (or a half-written value) in between; a stuck worker looks
        stale on every read, a torn read does not repeat."""
        for _ in range(3):
            if not timeout or now - beat <= timeout:
                break
            beat = max(beat, self.board.read(record.slot).last_beat)
        return beat

    def _act(self, record: WorkerRecord, action: str, reason: str, now: float,
             line: str = "") -> None:
        if action == "ok":
            return
        if action == "recycle":
            if not record.retiring:
                # Over --max-rss: finish the current request and go now; the successor
                # starts at once (waiting for it would let the worker grow further).
                log.warning("worker %d (pid %d) uses %.0f MiB > --max-rss %d; replacing it",
                            record.number, record.pid, record.sample.rss_mib,
                            self.settings.max_rss)
                self._retire(record, reason)
            return
        if action == "alarm":
            log.error("worker %d (pid %d) silent for more than %.1fs while serving %r; "
                      "interrupting its handler (SIGALRM)", record.number, record.pid,
                      self.settings.timeout, line)
            sig = signal.SIGALRM
        elif action == "abort":
            log.error("worker %d (pid %d) still silent; SIGABRT (its stack follows in the "
                      "error log)", record.number, record.pid)
            sig = signal.SIGABRT
        else:
            log.error("worker %d (pid %d): SIGKILL (reason=%s, rss %.0f MiB)", record.number,
                      record.pid, reason, record.sample.rss_mib)
            sig = signal.SIGKILL
        if action != "alarm":
            record.kill_reason = reason
        if reason == "timeout":
            record.timeout_stage += 1
            record.stage_since = now
        self._kill(record.pid, sig)

    # -- recycling and retiring -------------------------------------------------------------
    def _recycling(self, record: WorkerRecord) -> bool:
        """Is another worker of the same generation being recycled right now?"""
        return any(w is not record and w.generation == record.generation
                   and (w.replacing in RECYCLES or w.retiring in RECYCLES)
                   for w in self.workers.values())

    def _replace(self, record: WorkerRecord, reason: str, staggered: bool = True) -> None:
        """A recycle: its successor starts first (planning), then it is retired."""
        if record.replacing or record.retiring or (
                staggered and reason in STAGGERED and self._recycling(record)):
            return
        record.replacing = reason
        log.info("worker %d (pid %d) will be replaced (reason=%s)", record.number,
                 record.pid, reason)

    def _retire(self, record: WorkerRecord, reason: str, sig: int = signal.SIGTERM) -> None:
        """Ask a worker to stop: TERM finishes in-flight requests (QUIT: at once)."""
        if record.retiring:
            return
        record.retiring = reason
        record.retire_signal = sig
        record.kill_reason = record.kill_reason or reason
        record.retire_deadline = time.monotonic() + (
            self.settings.graceful_timeout if sig == signal.SIGTERM else 1.0)
        if record.pid > 0:
            self._kill(record.pid, sig)

    def _leaving(self, record: WorkerRecord, reported: str, now: float) -> None:
        """A worker stops on its own: over --max-rss by its own count, or on a TERM someone
        else sent. It counts as retiring from now, so its successor starts at once."""
        record.retiring = reported if reported == "rss" else "exit"
        record.retire_deadline = now + self.settings.graceful_timeout
        if reported == "rss":
            log.info("worker %d (pid %d) is over --max-rss %d by its own count; it finishes "
                     "and leaves", record.number, record.pid, self.settings.max_rss)

    def _child_exited(self, record: WorkerRecord, requests: int, reason: str,
                      how: str) -> None:
        """--hooks' child_exit (the Arbiter has the hooks)."""

    def _kill(self, pid: int, sig: int) -> None:
        send(pid, sig)

    def _forget_placeholder(self, record: WorkerRecord) -> None:
        if self.workers.get(record.pid) is record:
            del self.workers[record.pid]
            self.board.release(record.slot)

    # -- the end of a worker ----------------------------------------------------------------
    def _worker_exited(self, record: WorkerRecord, status: int, now: float) -> None:
        view = self.board.read(record.slot)
        self.board.release(record.slot)
        reason = exit_reason(record.kill_reason, view.exit_reason, status)
        quiet = reason in _QUIET and not os.WIFSIGNALED(status)
        how = describe_status(status)
        (log.info if quiet else log.warning)(
            "worker %d (pid %d, gen %d) exited: reason=%s, %s, served %d requests",
            record.number, record.pid, record.generation, reason, how, view.requests)
        self.observer.worker_exited(record, view, reason, how)
        self._child_exited(record, view.requests, reason, how)
        if reason in ("crash", "signal", "exit", "app-error") and not self.stopping and (
                not record.ready or now - record.spawned < _FAST_DEATH):
            # It could not even start: back off, so that a broken app never makes us spin.
            self.fast_failures += 1
            self.last_fast_death = now
            delay = min(5.0, 0.25 * 2 ** (self.fast_failures - 1)) if (
                self.fast_failures > 1) else 0.0
            self.spawn_not_before = now + delay
            if delay:
                log.error("workers die as they start (%d in a row); next start in %.1fs",
                          self.fast_failures, delay)
