"""Pure planning for the master: given the workers it has, which to start and which to retire
so that N ready workers of the current generation serve and capacity never dips; imports
nothing from forkhttpd and performs no system call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Plan", "plan_workers"]


class WorkerFacts(Protocol):
    pid: int
    generation: int
    spawned: float
    ready: bool
    replacing: str
    retiring: str


@dataclass(frozen=True)
class Plan:
    spawn: int
    retire: tuple[tuple[int, str], ...]  # (pid, reason)


def plan_workers(workers: Sequence[WorkerFacts], current: int, wanted: int) -> Plan:
    """What to do now.

    - Workers of the current generation that are neither retiring nor being replaced count
      toward `wanted`; the shortfall is spawned, a surplus (TTOU) retired, newest first.
    - Workers of older generations, and workers marked for replacement (a recycle), are
      retired only while enough other ready workers remain: a ready one goes only when the
      ready count without it is still >= wanted; one that never became ready goes at once.
    """
    active = [w for w in workers if not w.retiring]
    counting = [w for w in active if w.generation == current and not w.replacing]
    retire: list[tuple[int, str]] = []
    spawn = max(0, wanted - len(counting))
    if len(counting) > wanted:
        surplus = sorted(counting, key=lambda w: (w.ready, -w.spawned))
        for record in surplus[: len(counting) - wanted]:
            retire.append((record.pid, "ttou"))
    retired = {pid for pid, _ in retire}
    ready_total = sum(1 for w in active if w.ready and w.pid not in retired)
    outgoing = sorted((w for w in active if w.generation != current or w.replacing),
                      key=lambda w: w.spawned)
    for record in outgoing:
        reason = record.replacing or "reload"
        if not record.ready:
            retire.append((record.pid, reason))
        elif ready_total - 1 >= wanted:
            retire.append((record.pid, reason))
            ready_total -= 1
    # Outgoing ready workers may also stay while the new ones come up; they count toward
    # capacity in the meantime, which is why none is retired before its successor is ready.
    return Plan(spawn, tuple(retire))
