"""The master's watch over running workers: heartbeat timeouts (alarm, abort, kill), memory
limits and staggered recycles, acted on from supervision.judge()'s verdicts; a mixin of the
Arbiter, part of the arbiter package (the only place that signals workers)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

from .. import logs
from ..supervision import judge, observe

if TYPE_CHECKING:
    from .master import WorkerRecord

__all__ = ["Supervising"]

log = logs.error_log


class Supervising:
    """Mixed into Arbiter: expects settings, board, workers and _kill()."""

    settings: Any
    board: Any
    workers: dict[int, WorkerRecord]

    def _kill(self, pid: int, sig: int) -> None:
        raise NotImplementedError

    def _supervise(self, now: float) -> None:
        settings = self.settings
        grace = min(5.0, max(1.0, settings.timeout / 2))
        for record in list(self.workers.values()):
            if record.pid <= 0:
                continue
            view = self.board.read(record.slot)
            if not record.ready and view.state not in ("starting", "free"):
                record.ready = True
            if record.retiring:
                if now >= record.retire_deadline:
                    log.warning("worker %d (pid %d) did not stop within %.0fs; killing it",
                                record.number, record.pid, settings.graceful_timeout)
                    self._kill(record.pid, signal.SIGKILL)
                    record.retire_deadline = now + 5.0
                continue
            if view.wants_recycle and not record.replacing:
                self._ask_replacement(record, view.exit_reason or "max-requests")
            if now - view.last_beat <= settings.timeout or settings.timeout <= 0:
                record.timeout_stage = 0
            record.sample = observe(record.process)
            rss = record.sample.rss_mib
            if settings.max_rss and rss > settings.max_rss:
                record.over_rss_since = record.over_rss_since or now
            else:
                record.over_rss_since = None
            verdict = judge(now=now, last_beat=view.last_beat, sample=record.sample,
                            timeout=settings.timeout, max_rss=settings.max_rss,
                            over_rss_since=record.over_rss_since,
                            timeout_stage=record.timeout_stage,
                            stage_since=record.stage_since, grace=grace)
            self._act(record, verdict.action, verdict.reason, now, view.request_line)

    def _act(self, record: WorkerRecord, action: str, reason: str, now: float,
             line: str) -> None:
        if action == "ok":
            return
        if action == "recycle":
            self._ask_replacement(record, reason)
            return
        if action == "alarm":
            log.error("worker %d (pid %d) silent for more than %.1fs while serving %r; "
                      "interrupting its handler", record.number, record.pid,
                      self.settings.timeout, line)
            sig = signal.SIGALRM
        elif action == "abort":
            log.error("worker %d (pid %d) still silent; SIGABRT (its stack follows in the "
                      "log)", record.number, record.pid)
            sig = signal.SIGABRT
        else:
            log.error("worker %d (pid %d): SIGKILL (reason=%s, rss %.0f MiB)", record.number,
                      record.pid, reason, record.sample.rss_mib)
            sig = signal.SIGKILL
        if action != "alarm":
            record.kill_reason = reason
        record.timeout_stage += 1
        record.stage_since = now
        self._kill(record.pid, sig)

    def _ask_replacement(self, record: WorkerRecord, reason: str) -> None:
        """A recycle: start a successor first; one per generation at a time (staggered)."""
        busy = any(w.replacing and w.generation == record.generation
                   for w in self.workers.values() if w is not record)
        if busy:
            return
        record.replacing = reason
        log.info("worker %d (pid %d) will be replaced (reason=%s)", record.number,
                 record.pid, reason)
