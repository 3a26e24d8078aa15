"""Worker supervision: observe() reads a worker through psutil, judge() decides what the
master should do, as a pure function; the only module that imports psutil, and it never
waits on a process (the arbiter is the one reaper) and never sends a signal itself."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

__all__ = ["ProcessInfo", "Sample", "Verdict", "children_info", "judge", "observe", "process_info",
           "watch"]

_MIB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    """What the kernel says about one worker right now."""

    alive: bool
    rss_mib: float = 0.0
    cpu_seconds: float = 0.0
    cpu_percent: float = 0.0
    status: str = ""


@dataclass(frozen=True)
class Verdict:
    """What to do with a worker: ok, recycle (graceful), alarm / abort / kill (escalating)."""

    action: str
    reason: str = ""


OK = Verdict("ok")


def watch(pid: int) -> psutil.Process | None:
    """A psutil handle made right after fork: its create time pins the PID's identity, so a
    recycled PID can never be mistaken for our worker."""
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def observe(process: psutil.Process | None) -> Sample:
    if process is None:
        return Sample(alive=False)
    try:
        with process.oneshot():
            if not process.is_running():
                return Sample(alive=False)
            memory = process.memory_info()
            times = process.cpu_times()
            status = process.status()
            percent = process.cpu_percent(None)
    except psutil.Error:
        return Sample(alive=False)
    if status == psutil.STATUS_ZOMBIE:
        return Sample(alive=False, status=status)
    return Sample(True, memory.rss / _MIB, times.user + times.system, percent, status)


def judge(*, now: float, last_beat: float, sample: Sample, timeout: float, max_rss: int,
          over_rss_since: float | None, timeout_stage: int, stage_since: float,
          grace: float) -> Verdict:
    """Decide, from facts only, what a worker needs.

    Heartbeat first: a worker whose loop has not beaten for `timeout` seconds is stuck; the
    answer escalates (alarm -> abort -> kill), `grace` seconds apart, and its reason is
    always "timeout", whatever the memory says. Then memory: over --max-rss the worker is
    recycled gracefully; at 1.5x, or over the limit for longer than the timeout, killed.
    """
    if not sample.alive:
        return OK  # the reaper will see it go
    if timeout > 0 and now - last_beat > timeout:
        if timeout_stage == 0:
            return Verdict("alarm", "timeout")
        if now - stage_since >= grace:
            return Verdict("abort" if timeout_stage == 1 else "kill", "timeout")
        return OK
    if max_rss > 0 and sample.rss_mib > max_rss:
        if sample.rss_mib >= 1.5 * max_rss:
            return Verdict("kill", "rss")
        patience = timeout if timeout > 0 else 30.0
        if over_rss_since is not None and now - over_rss_since > patience:
            return Verdict("kill", "rss")
        return Verdict("recycle", "rss")
    return OK


# -- for `forkhttpd status` (ops/control.py): a read-only look at a running master ---------------
@dataclass(frozen=True)
class ProcessInfo:
    """One process of a running server, as `forkhttpd status` shows it."""

    pid: int
    title: str
    started: float  # seconds since the epoch
    rss_mib: float
    user: str


def process_info(pid: int) -> ProcessInfo | None:
    """The title (setproctitle's), start time, memory and user of `pid`; None if it is gone."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return ProcessInfo(pid, " ".join(process.cmdline()).strip(),
                               process.create_time(), process.memory_info().rss / _MIB,
                               process.username())
    except (psutil.Error, KeyError):  # KeyError: a uid without a passwd entry
        return None


def children_info(pid: int) -> list[ProcessInfo]:
    """The direct children of `pid` (a master's zygotes and workers), oldest first."""
    try:
        children = psutil.Process(pid).children()
    except psutil.Error:
        return []
    found = [info for info in (process_info(child.pid) for child in children) if info]
    return sorted(found, key=lambda info: (info.started, info.pid))
