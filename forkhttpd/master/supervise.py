"""The master's workers and its watch over them: their records and scoreboard slots, heartbeat
timeouts (alarm, abort, kill), memory limits, staggered recycles, graceful retirement, the
backoff when workers die as they start, and the one log line per worker exit, acted on from
health.judge()'s verdicts; the arbiter's part that owns workers, in the master package (the
only place that signals workers); it never imports application code, and it never waits for
a process (the arbiter reaps) nor forks one (zygotes do)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..runtime import logs
from ..runtime.scoreboard import Scoreboard, SlotView
from .children import System, describe_status
from .health import Sample, judge, observe, watch

__all__ = ["Limits", "RECYCLES", "STAGGERED", "Supervisor", "WorkerRecord", "exit_reason"]

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




@dataclass(frozen=True)
class Limits:
    """The settings the watch reads, taken again from the settings at each reload."""

    timeout: float = 30.0
    graceful_timeout: float = 30.0
    max_rss: int = 0

    @classmethod
    def of(cls, settings: Any) -> Limits:
        return cls(settings.timeout, settings.graceful_timeout, settings.max_rss)


class Supervisor:
    """The workers, by PID (a placeholder's key is -(slot + 1) until its zygote tells the
    PID): reads the scoreboard, asks judge(), signals workers, and writes each one's exit."""

    def __init__(self, board: Scoreboard, system: System, limits: Limits,
                 on_exit: Callable[[WorkerRecord, SlotView, str, str, bool], None],
                 watch: Callable[[int], Any] = watch,
                 observe: Callable[[Any], Sample] = observe) -> None:
        self.board = board
        self.system = system
        self.watch = watch  # psutil, as health.py does it; a test's fake knows its workers
        self.observe = observe
        self.limits = limits
        self.on_exit = on_exit  # (record, slot, reason, how, died as it started)
        self.records: dict[int, WorkerRecord] = {}
        self.next_number = 1
        self.watchful = False  # a worker nears --max-rss: the master samples faster
        self.fast_failures = 0  # workers in a row that died as they started
        self.last_fast_death = 0.0
        self.spawn_not_before = 0.0
        self.early_exits: dict[int, int] = {}  # reaped before their zygote told their PID

    # -- counting ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[WorkerRecord]:
        return iter(list(self.records.values()))

    def live(self) -> int:
        return sum(1 for w in self.records.values() if w.pid > 0)

    def ready(self) -> int:
        return sum(1 for w in self.records.values() if w.ready and not w.retiring)

    def staying(self) -> int:
        return sum(1 for w in self.records.values() if not w.retiring)

    def others_than(self, generation: int) -> bool:
        return any(w.generation != generation for w in self.records.values())

    # -- a new worker -----------------------------------------------------------------------
    def claim(self, generation: int, now: float) -> WorkerRecord:
        """A slot and a placeholder record for a worker about to be forked."""
        slot = self.board.free_index({w.slot for w in self.records.values()})
        number = self.next_number
        self.next_number += 1
        self.board.claim(slot, 0, generation, number, now, time.time())
        record = WorkerRecord(-(slot + 1), number, generation, slot, now)
        self.records[record.pid] = record  # until the zygote tells the PID
        return record

    def forget(self, record: WorkerRecord) -> None:
        """Drop a placeholder that will never be filled, and free its slot."""
        if self.records.get(record.pid) is record:
            del self.records[record.pid]
            self.board.release(record.slot)

    def forget_generation(self, generation: int) -> None:
        for record in [w for w in self.records.values() if w.pid < 0
                       and w.generation == generation]:
            self.forget(record)

    def forked(self, generation: int, slot: int, pid: int, now: float, stopping: str) -> None:
        """A zygote says it forked the worker for `slot`: the placeholder gets its PID."""
        record = self.records.pop(-(slot + 1), None)
        if record is None:  # given up on; the worker must not live on untracked
            log.warning("unexpected worker pid %d from generation %d; stopping it", pid,
                        generation)
            self.system.signal(pid, signal.SIGTERM)
            return
        record.pid = pid
        record.process = self.watch(pid)  # its create time pins the PID's identity
        self.board.set_pid(slot, pid)
        self.records[pid] = record
        if record.retiring:  # asked to go (TTOU, stop) before its PID was known
            reason, record.retiring = record.retiring, ""
            self.retire(record, reason, now,
                        signal.SIGQUIT if stopping == "fast" else signal.SIGTERM)
        status = self.early_exits.pop(pid, None)
        if status is not None:  # it died before we heard of it, and was reaped already
            del self.records[pid]
            self.exited(record, status, now, stopping)

    # -- the watch ------------------------------------------------------------------------
    def supervise(self, now: float) -> None:
        limits = self.limits
        timeout = limits.timeout  # a worker beats as a request begins and 4x a second
        grace = min(5.0, max(1.0, limits.timeout / 2))
        near = limits.max_rss * 2 / 3 if limits.max_rss else float("inf")
        self.watchful = False
        for record in list(self.records.values()):
            if record.pid <= 0:
                if now - record.spawned > _PLACEHOLDER_TIMEOUT:
                    log.warning("worker %d (gen %d) was never reported by its zygote; "
                                "giving up on it", record.number, record.generation)
                    self.forget(record)
                continue
            view = self.board.read(record.slot)
            if not record.ready and view.state not in ("starting", "free"):
                record.ready = True
                if record.retire_signal:
                    # Sent just after its fork, the signal may have been lost: Python clears
                    # pending signals in a new child. Its handlers are in place now.
                    self.system.signal(record.pid, record.retire_signal)
            if self.fast_failures and record.ready and record.spawned > self.last_fast_death \
                    and now - record.spawned > 2 * _FAST_DEATH:
                self.fast_failures = 0  # one started since the last failure, and lives
            if record.retiring and now >= record.retire_deadline:
                log.warning("worker %d (pid %d) did not stop within %.0fs; SIGKILL",
                            record.number, record.pid, limits.graceful_timeout)
                self.system.signal(record.pid, signal.SIGKILL)
                record.retire_deadline = now + 5.0
                continue
            last_beat = self._last_beat(record, view.last_beat, now, timeout)
            if record.timeout_stage and now - last_beat <= timeout:
                # It beats again: the alarm interrupted its handler, which answered 503.
                # The worker may be left in a strange state; replace it, without waiting.
                record.timeout_stage = 0
                self.replace(record, "timeout", staggered=False)
            if view.wants_recycle:
                self.replace(record, view.exit_reason or "max-requests")
            record.sample = self.observe(record.process)
            if view.state == "exiting" and not record.retiring:
                self._leaving(record, view.exit_reason, now)
            if limits.max_rss and record.sample.rss_mib > limits.max_rss:
                record.over_rss_since = record.over_rss_since or now
            else:
                record.over_rss_since = None
            if record.sample.rss_mib > near and not record.retiring:
                self.watchful = True  # sample it often: a fast leak must not reach 1.5x
            verdict = judge(now=now, last_beat=last_beat, sample=record.sample,
                            timeout=timeout, max_rss=limits.max_rss,
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
                            self.limits.max_rss)
                self.retire(record, reason, now)
            return
        if action == "alarm":
            log.error("worker %d (pid %d) silent for more than %.1fs while serving %r; "
                      "interrupting its handler (SIGALRM)", record.number, record.pid,
                      self.limits.timeout, line)
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
        self.system.signal(record.pid, sig)

    # -- recycling and retiring -------------------------------------------------------------
    def _recycling(self, record: WorkerRecord) -> bool:
        """Is another worker of the same generation being recycled right now?"""
        return any(w is not record and w.generation == record.generation
                   and (w.replacing in RECYCLES or w.retiring in RECYCLES)
                   for w in self.records.values())

    def replace(self, record: WorkerRecord, reason: str, staggered: bool = True) -> None:
        """A recycle: its successor starts first (planning), then it is retired."""
        if record.replacing or record.retiring or (
                staggered and reason in STAGGERED and self._recycling(record)):
            return
        record.replacing = reason
        log.info("worker %d (pid %d) will be replaced (reason=%s)", record.number,
                 record.pid, reason)

    def retire(self, record: WorkerRecord, reason: str, now: float,
               sig: int = signal.SIGTERM) -> None:
        """Ask a worker to stop: TERM finishes in-flight requests (QUIT: at once)."""
        if record.retiring:
            return
        record.retiring = reason
        record.retire_signal = sig
        record.kill_reason = record.kill_reason or reason
        record.retire_deadline = now + (
            self.limits.graceful_timeout if sig == signal.SIGTERM else 1.0)
        if record.pid > 0:
            self.system.signal(record.pid, sig)

    def _leaving(self, record: WorkerRecord, reported: str, now: float) -> None:
        """A worker stops on its own: over --max-rss by its own count, or on a TERM someone
        else sent. It counts as retiring from now, so its successor starts at once."""
        record.retiring = reported if reported == "rss" else "exit"
        record.retire_deadline = now + self.limits.graceful_timeout
        if reported == "rss":
            log.info("worker %d (pid %d) is over --max-rss %d by its own count; it finishes "
                     "and leaves", record.number, record.pid, self.limits.max_rss)

    def murder(self, reason: str = "shutdown") -> None:
        """SIGKILL every worker still alive (a stop's deadline passed)."""
        for record in self.records.values():
            if record.pid > 0:
                log.warning("worker %d (pid %d) outlived the stop; SIGKILL", record.number,
                            record.pid)
                record.kill_reason = reason
                self.system.signal(record.pid, signal.SIGKILL)

    def reset_backoff(self) -> None:
        self.fast_failures = 0  # new code, new chances
        self.spawn_not_before = 0.0

    # -- the end of a worker ----------------------------------------------------------------
    def reaped(self, pid: int, status: int, now: float, stopping: str) -> bool:
        """A reaped child that is one of our workers: its exit written; False otherwise."""
        record = self.records.pop(pid, None)
        if record is None:
            return False
        self.exited(record, status, now, stopping)
        return True

    def stray(self, pid: int, status: int) -> None:
        """A worker whose PID its zygote has not told yet, or an orphan of the app's
        re-parented to us (we are a subreaper): remember a few, in case."""
        self.early_exits[pid] = status
        while len(self.early_exits) > 64:
            del self.early_exits[next(iter(self.early_exits))]

    def exited(self, record: WorkerRecord, status: int, now: float, stopping: str) -> None:
        view = self.board.read(record.slot)
        self.board.release(record.slot)
        reason = exit_reason(record.kill_reason, view.exit_reason, status)
        quiet = reason in _QUIET and not os.WIFSIGNALED(status)
        how = describe_status(status)
        (log.info if quiet else log.warning)(
            "worker %d (pid %d, gen %d) exited: reason=%s, %s, served %d requests",
            record.number, record.pid, record.generation, reason, how, view.requests)
        at_start = reason in ("crash", "signal", "exit", "app-error") and not stopping and (
            not record.ready or now - record.spawned < _FAST_DEATH)
        if at_start:
            # It could not even start: back off, so that a broken app never makes us spin.
            self.fast_failures += 1
            self.last_fast_death = now
            delay = min(5.0, 0.25 * 2 ** (self.fast_failures - 1)) if (
                self.fast_failures > 1) else 0.0
            self.spawn_not_before = now + delay
            if delay:
                log.error("workers die as they start (%d in a row); next start in %.1fs",
                          self.fast_failures, delay)
        self.on_exit(record, view, reason, how, at_start)
