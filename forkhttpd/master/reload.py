"""A code generation's life as a state machine (loading -> starting -> rolling -> serving ->
retired, or failed / abandoned), the last reload's outcome and every log line of the life
cycle, as tables; pure data and one pure function, no I/O: must not import anything of
forkhttpd.

A generation is born LOADING when its zygote starts importing the app. The arbiter turns what
happens into an `Event` (the zygote said it loaded, it failed, it died; a worker of it became
ready; its workers keep dying as they start; its workers alone serve; a newer generation took
over; a newer SIGHUP or a stop dropped it), asks `transition(role, state, event)` for the
next state, the `Action`s to perform and the `Note`s to log, and performs them itself (it
alone forks, signals and notifies). What a transition does depends on the generation's
`Role`, which the arbiter reads off its own facts at the time of the event: the generation
that starts the server (its failure ends the start), the one the latest SIGHUP started (its
outcome is the reload's), or one that replaces the generation whose zygote died or failed
(it retries, quietly, with a backoff).

Once loaded, a generation is current (respawns come from it), but the generation it replaces
stands by, its zygote alive, until one of the new workers is ready: if the new workers cannot
start (they die as they start, WORKER_START_FAILURES in a row), the new generation fails and
the one standing by is current again, so a reload whose workers cannot start changes nothing.

The states say what the generation is; the words people read live in `MESSAGES` and
`RELOAD_TEXT`, so a message can change without touching a transition and the reverse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

__all__ = ["Action", "Event", "IllegalTransition", "MESSAGES", "Note", "Outcome", "RELOAD_TEXT",
           "ReloadStatus", "Role", "State", "Step", "TABLE", "WORKER_START_FAILURES",
           "transition"]

#: workers of a generation that die as they start, in a row and none of them ever ready,
#: before the generation is given up as one whose workers cannot start
WORKER_START_FAILURES = 5


class State(Enum):
    LOADING = "loading"  # its zygote imports the app
    STARTING = "starting"  # loaded and current: its first workers start; the generation it
    #                        replaces stands by until one of them is ready
    ROLLING = "rolling"  # a worker of it was ready: its workers come up, older ones leave
    SERVING = "serving"  # its workers alone serve, as many as wanted were ready
    RETIRED = "retired"  # a newer generation took over (or the master stops, or its zygote
    #                      died after it served): its zygote forks no more
    FAILED = "failed"  # its app could not be loaded, its workers could not start, or its
    #                    zygote died before it served
    ABANDONED = "abandoned"  # dropped while loading: a newer SIGHUP, a stop


class Event(Enum):
    LOADED = "loaded"  # the zygote imported the app ("R")
    LOAD_FAILED = "load failed"  # the zygote could not ("F")
    ZYGOTE_EXITED = "zygote exited"  # the master reaped its zygote
    PROVEN = "proven"  # one of its workers is ready
    WORKERS_FAIL = "workers fail"  # WORKER_START_FAILURES of its workers died as they started
    ROLLED = "rolled"  # its workers alone remain, as many as wanted ready
    SUPERSEDED = "superseded"  # a newer generation loaded and took over
    ABANDON = "abandon"  # a newer SIGHUP came while it loads
    STOP = "stop"  # TERM, INT or QUIT


class Role(Enum):
    STARTUP = "startup"  # the server does not serve yet: its failure ends the start
    RELOAD = "reload"  # started by the latest SIGHUP: its outcome is the reload's
    RESPAWN = "respawn"  # anything else: replaces a generation whose zygote is gone


class Action(Enum):
    TAKE_OVER = "take over"  # become current; the previous current one stands by if it
    #                          served, else it is SUPERSEDED
    RETIRE_PREVIOUS = "retire previous"  # the one standing by is SUPERSEDED
    FALL_BACK = "fall back"  # the one standing by is current again
    RESET_BACKOFF = "reset backoff"  # new code, new chances: no zygote or worker backoff
    CLOSE_ZYGOTE = "close zygote"  # close its command pipe: it forks what it was asked, exits
    KILL_ZYGOTE = "kill zygote"  # SIGKILL: its import is no longer wanted
    TERM_ZYGOTE = "term zygote"  # SIGTERM: the master stops
    DROP_PENDING = "drop pending"  # it no longer waits to take over
    ANNOUNCE_SERVING = "announce serving"  # the first time: READY=1, the daemon's parent told
    REPORT_RELOADED = "report reloaded"  # count it, READY=1 with the new STATUS
    REPORT_RELOAD_FAILED = "report reload failed"  # count it, READY=1, STATUS says why
    ABORT_STARTUP = "abort startup"  # the server cannot start: StartupError
    RETRY_LATER = "retry later"  # back off, then a new generation replaces it
    REPLACE = "replace"  # a new generation replaces it, at once


class Note(Enum):
    """A log line of the life cycle; the text is in MESSAGES."""

    STARTING = "starting"
    STARTING_QUIETLY = "starting quietly"
    SIGHUP = "sighup"
    SIGHUP_TOO_EARLY = "sighup too early"
    CONFIG_REJECTED = "config rejected"
    ABANDONING = "abandoning"
    RELOAD_LOADED = "reload loaded"
    RESPAWN_LOADED = "respawn loaded"
    RELOAD_FAILED = "reload failed"
    RELOAD_GAVE_UP = "reload gave up"
    RELOAD_KEEPS_SERVING = "reload keeps serving"
    RESPAWN_FAILED = "respawn failed"
    RESPAWN_FAILED_AGAIN = "respawn failed again"
    RESPAWN_KEEPS_SERVING = "respawn keeps serving"
    SERVING = "serving"
    RELOAD_COMPLETE = "reload complete"
    ZYGOTE_DIED = "zygote died"
    ILLEGAL = "illegal"


_INFO, _WARNING, _ERROR, _DEBUG = logging.INFO, logging.WARNING, logging.ERROR, logging.DEBUG

#: (level, str.format template) per note; the arbiter supplies the named facts.
MESSAGES: dict[Note, tuple[int, str]] = {
    Note.STARTING: (_INFO, "generation {number}: zygote {pid} is loading {app}"),
    Note.STARTING_QUIETLY: (_DEBUG, "generation {number}: zygote {pid} is loading {app}"),
    Note.SIGHUP: (_INFO, "SIGHUP: reloading"),
    Note.SIGHUP_TOO_EARLY: (_WARNING, "SIGHUP before the first generation serves: ignored"),
    Note.CONFIG_REJECTED: (_ERROR, "reload: configuration rejected, keeping the running one: "
                                   "{failure}"),
    Note.ABANDONING: (_INFO, "reload: abandoning generation {number}, still loading"),
    Note.RELOAD_LOADED: (_INFO, "reload: generation {number} loaded in {took:.1f}s; rolling "
                                "the workers over"),
    Note.RESPAWN_LOADED: (_INFO, "generation {number} loaded in {took:.1f}s; it replaces the "
                                 "workers"),
    Note.RELOAD_FAILED: (_ERROR, "reload failed: generation {number} cannot load the app: "
                                 "{failure}{traceback}"),
    Note.RELOAD_GAVE_UP: (_ERROR, "reload failed: generation {number}: {failure}"),
    Note.RELOAD_KEEPS_SERVING: (_ERROR, "reload failed; generation {current} keeps serving; "
                                        "the next SIGHUP tries again"),
    Note.RESPAWN_FAILED: (_ERROR, "generation {number} cannot load the app: {failure}"
                                  "{traceback}"),
    Note.RESPAWN_FAILED_AGAIN: (_ERROR, "generation {number}: the app still cannot load (the "
                                        "same error); next try in {backoff:.1f}s"),
    Note.RESPAWN_KEEPS_SERVING: (_ERROR, "the workers still running keep serving; next try in "
                                         "{backoff:.1f}s"),
    Note.SERVING: (_INFO, "serving on {addresses} with {workers} workers"),
    Note.RELOAD_COMPLETE: (_INFO, "reload complete: generation {number} serves"),
    Note.ZYGOTE_DIED: (_ERROR, "the zygote of generation {number} died ({how}); loading the "
                               "app anew"),
    Note.ILLEGAL: (_WARNING, "generation {number} ({state}): unexpected event {event}; "
                             "ignored"),
}


class ReloadStatus(Enum):
    NONE = "none"
    LOADING = "loading"
    ROLLING = "rolling"
    OK = "ok"
    FAILED = "failed"


#: what `forkhttpd status`, the status file and the notify summary say of the last reload
RELOAD_TEXT: dict[ReloadStatus, str] = {
    ReloadStatus.NONE: "none",
    ReloadStatus.LOADING: "loading",
    ReloadStatus.ROLLING: "rolling",
    ReloadStatus.OK: "ok: generation {number}",
    ReloadStatus.FAILED: "failed: {failure}",
}


@dataclass(frozen=True)
class Outcome:
    """The last reload: its status, its generation (0: none was started) and why it failed."""

    status: ReloadStatus = ReloadStatus.NONE
    generation: int = 0
    failure: str = ""

    def __str__(self) -> str:
        return RELOAD_TEXT[self.status].format(number=self.generation, failure=self.failure)


@dataclass(frozen=True)
class Step:
    """What one event does: the next state, what the arbiter logs (in order, first: a log
    line comes before the notification it explains), what it performs (in order), and the
    reload's new status (None: unchanged)."""

    state: State
    actions: tuple[Action, ...] = ()
    notes: tuple[Note, ...] = ()
    reload: ReloadStatus | None = None


class IllegalTransition(Exception):
    """An event that cannot happen in that state (a bug, or a zygote that misbehaves)."""


_S, _E, _A, _N, _R = State, Event, Action, Note, ReloadStatus
_ROLES = tuple(Role)


def _all(step: Step) -> dict[Role, Step]:
    return {role: step for role in _ROLES}


def _by_role(startup: Step, reload: Step, respawn: Step) -> dict[Role, Step]:
    return {Role.STARTUP: startup, Role.RELOAD: reload, Role.RESPAWN: respawn}


_STOPPING = (_A.CLOSE_ZYGOTE, _A.TERM_ZYGOTE)
_ZYGOTE_LOST = (_A.CLOSE_ZYGOTE, _A.REPLACE)

#: (state, event) -> the step, per role. A pair that is missing is an illegal event. Late
#: words of a zygote already given up on (abandoned, failed) are legal and change nothing.
TABLE: dict[tuple[State, Event], dict[Role, Step]] = {
    # -- loading ---------------------------------------------------------------------------
    (_S.LOADING, _E.LOADED): _by_role(
        Step(_S.STARTING, (_A.TAKE_OVER, _A.RESET_BACKOFF)),
        Step(_S.STARTING, (_A.TAKE_OVER, _A.RESET_BACKOFF), (_N.RELOAD_LOADED,), _R.ROLLING),
        Step(_S.STARTING, (_A.TAKE_OVER, _A.RESET_BACKOFF), (_N.RESPAWN_LOADED,))),
    (_S.LOADING, _E.LOAD_FAILED): _by_role(
        Step(_S.FAILED, (_A.ABORT_STARTUP,)),
        Step(_S.FAILED, (_A.DROP_PENDING, _A.REPORT_RELOAD_FAILED),
             (_N.RELOAD_FAILED, _N.RELOAD_KEEPS_SERVING), _R.FAILED),
        Step(_S.FAILED, (_A.RETRY_LATER,))),  # RETRY_LATER picks its notes (same error?)
    (_S.LOADING, _E.ZYGOTE_EXITED): _by_role(  # died while loading: a failure too
        Step(_S.FAILED, (_A.ABORT_STARTUP,)),
        Step(_S.FAILED, (_A.DROP_PENDING, _A.REPORT_RELOAD_FAILED),
             (_N.RELOAD_FAILED, _N.RELOAD_KEEPS_SERVING), _R.FAILED),
        Step(_S.FAILED, (_A.RETRY_LATER,))),
    (_S.LOADING, _E.ABANDON): _all(
        Step(_S.ABANDONED, (_A.DROP_PENDING, _A.KILL_ZYGOTE), (_N.ABANDONING,))),
    # a respawn still loading when a reload's generation took over
    (_S.LOADING, _E.SUPERSEDED): _all(Step(_S.ABANDONED, (_A.DROP_PENDING, _A.KILL_ZYGOTE))),
    (_S.LOADING, _E.STOP): _all(Step(_S.ABANDONED, _STOPPING)),
    # -- starting: the generation it replaces stands by ------------------------------------
    (_S.STARTING, _E.PROVEN): _all(Step(_S.ROLLING, (_A.RETIRE_PREVIOUS,))),
    (_S.STARTING, _E.WORKERS_FAIL): _by_role(
        Step(_S.FAILED, (_A.CLOSE_ZYGOTE, _A.ABORT_STARTUP)),
        Step(_S.FAILED, (_A.FALL_BACK, _A.CLOSE_ZYGOTE, _A.REPORT_RELOAD_FAILED),
             (_N.RELOAD_GAVE_UP, _N.RELOAD_KEEPS_SERVING), _R.FAILED),
        Step(_S.FAILED, (_A.FALL_BACK, _A.CLOSE_ZYGOTE, _A.RETRY_LATER))),
    (_S.STARTING, _E.ZYGOTE_EXITED): _by_role(
        Step(_S.FAILED, (_A.REPLACE,), (_N.ZYGOTE_DIED,)),
        Step(_S.FAILED, (_A.FALL_BACK, _A.REPORT_RELOAD_FAILED),
             (_N.RELOAD_GAVE_UP, _N.RELOAD_KEEPS_SERVING), _R.FAILED),
        Step(_S.FAILED, (_A.FALL_BACK, _A.REPLACE), (_N.ZYGOTE_DIED,))),
    (_S.STARTING, _E.SUPERSEDED): _all(Step(_S.RETIRED, (_A.CLOSE_ZYGOTE,))),
    (_S.STARTING, _E.STOP): _all(Step(_S.RETIRED, _STOPPING)),
    # -- rolling ---------------------------------------------------------------------------
    (_S.ROLLING, _E.ROLLED): _by_role(
        Step(_S.SERVING, (_A.ANNOUNCE_SERVING,), (_N.SERVING,)),
        Step(_S.SERVING, (_A.REPORT_RELOADED,), (_N.RELOAD_COMPLETE,), _R.OK),
        Step(_S.SERVING)),
    (_S.ROLLING, _E.SUPERSEDED): _all(Step(_S.RETIRED, (_A.CLOSE_ZYGOTE,))),
    # Its workers keep serving; a new zygote loads the code anew and rolls them over.
    (_S.ROLLING, _E.ZYGOTE_EXITED): _all(Step(_S.FAILED, _ZYGOTE_LOST, (_N.ZYGOTE_DIED,))),
    (_S.ROLLING, _E.STOP): _all(Step(_S.RETIRED, _STOPPING)),
    # -- serving ---------------------------------------------------------------------------
    (_S.SERVING, _E.SUPERSEDED): _all(Step(_S.RETIRED, (_A.CLOSE_ZYGOTE,))),
    (_S.SERVING, _E.ZYGOTE_EXITED): _all(Step(_S.RETIRED, _ZYGOTE_LOST, (_N.ZYGOTE_DIED,))),
    (_S.SERVING, _E.STOP): _all(Step(_S.RETIRED, _STOPPING)),
    # -- the ends: a retired zygote exits once its pipe is closed; late words are ignored ---
    (_S.RETIRED, _E.ZYGOTE_EXITED): _all(Step(_S.RETIRED)),
    (_S.RETIRED, _E.SUPERSEDED): _all(Step(_S.RETIRED)),
    (_S.RETIRED, _E.STOP): _all(Step(_S.RETIRED, (_A.TERM_ZYGOTE,))),
    (_S.FAILED, _E.ZYGOTE_EXITED): _all(Step(_S.FAILED)),
    (_S.FAILED, _E.SUPERSEDED): _all(Step(_S.FAILED)),
    (_S.FAILED, _E.STOP): _all(Step(_S.FAILED, (_A.TERM_ZYGOTE,))),
    (_S.ABANDONED, _E.LOADED): _all(Step(_S.ABANDONED)),
    (_S.ABANDONED, _E.LOAD_FAILED): _all(Step(_S.ABANDONED)),
    (_S.ABANDONED, _E.ZYGOTE_EXITED): _all(Step(_S.ABANDONED)),
    (_S.ABANDONED, _E.STOP): _all(Step(_S.ABANDONED, (_A.TERM_ZYGOTE,))),
}


def transition(role: Role, state: State, event: Event) -> Step:
    """The step `event` takes a generation of `role` in `state` to; IllegalTransition when
    that event cannot happen there."""
    try:
        return TABLE[(state, event)][role]
    except KeyError:
        raise IllegalTransition(f"{event.value} while {state.value}") from None
