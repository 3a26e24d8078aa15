"""A generation's life and the reload: reload.py's table on its own, then the real Arbiter
driven in-process through it with fake zygotes and workers (fake_master.py): no fork, no
signal, no sleep, a fake clock."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from fake_master import Captured, Rig, capture_log, exited, killed

from forkhttpd.master.arbiter import StartupError
from forkhttpd.master.reload import (
    MESSAGES,
    RELOAD_TEXT,
    TABLE,
    Action,
    Event,
    IllegalTransition,
    Note,
    Outcome,
    ReloadStatus,
    Role,
    State,
    transition,
)

S, E = State, Event

# -- the machine's table --------------------------------------------------------------------
#: every (state, event) that can happen; any other pair is refused
LEGAL = {
    (S.LOADING, E.LOADED), (S.LOADING, E.LOAD_FAILED), (S.LOADING, E.ZYGOTE_EXITED),
    (S.LOADING, E.ABANDON), (S.LOADING, E.SUPERSEDED), (S.LOADING, E.STOP),
    (S.STARTING, E.PROVEN), (S.STARTING, E.WORKERS_FAIL), (S.STARTING, E.ZYGOTE_EXITED),
    (S.STARTING, E.SUPERSEDED), (S.STARTING, E.STOP),
    (S.ROLLING, E.ROLLED), (S.ROLLING, E.SUPERSEDED), (S.ROLLING, E.ZYGOTE_EXITED),
    (S.ROLLING, E.STOP),
    (S.SERVING, E.SUPERSEDED), (S.SERVING, E.ZYGOTE_EXITED), (S.SERVING, E.STOP),
    (S.RETIRED, E.ZYGOTE_EXITED), (S.RETIRED, E.SUPERSEDED), (S.RETIRED, E.STOP),
    (S.FAILED, E.ZYGOTE_EXITED), (S.FAILED, E.SUPERSEDED), (S.FAILED, E.STOP),
    (S.ABANDONED, E.LOADED), (S.ABANDONED, E.LOAD_FAILED), (S.ABANDONED, E.ZYGOTE_EXITED),
    (S.ABANDONED, E.STOP),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("event", list(Event))
@pytest.mark.parametrize("state", list(State))
def test_every_state_and_event_is_a_step_or_refused(state: State, event: Event,
                                                    role: Role) -> None:
    if (state, event) not in LEGAL:
        with pytest.raises(IllegalTransition, match=event.value):
            transition(role, state, event)
        return
    step = transition(role, state, event)
    assert isinstance(step.state, State)
    assert all(isinstance(a, Action) for a in step.actions)
    assert all(note in MESSAGES for note in step.notes)
    if role is not Role.RELOAD:
        assert step.reload is None  # only the latest SIGHUP's generation is the reload
    if state in (S.RETIRED, S.FAILED, S.ABANDONED):
        assert step.state is state  # the ends stay ends: late words change nothing
        assert set(step.actions) <= {Action.TERM_ZYGOTE}


def test_the_table_holds_exactly_the_legal_pairs_for_every_role() -> None:
    assert set(TABLE) == LEGAL
    assert all(set(steps) == set(Role) for steps in TABLE.values())


def test_a_reload_s_life_reads_loading_starting_rolling_serving_retired() -> None:
    role, state, seen = Role.RELOAD, S.LOADING, []
    for event in (E.LOADED, E.PROVEN, E.ROLLED, E.SUPERSEDED):
        step = transition(role, state, event)
        state = step.state
        seen.append((state, step.reload))
    assert seen == [(S.STARTING, ReloadStatus.ROLLING), (S.ROLLING, None),
                    (S.SERVING, ReloadStatus.OK), (S.RETIRED, None)]
    assert transition(role, S.STARTING, E.PROVEN).actions == (Action.RETIRE_PREVIOUS,)
    assert transition(role, S.LOADING, E.LOADED).actions[0] is Action.TAKE_OVER


def test_what_a_failure_does_depends_on_the_role() -> None:
    assert transition(Role.STARTUP, S.LOADING, E.LOAD_FAILED).actions == (
        Action.ABORT_STARTUP,)
    reload = transition(Role.RELOAD, S.LOADING, E.LOAD_FAILED)
    assert (reload.state, reload.reload) == (S.FAILED, ReloadStatus.FAILED)
    assert Action.REPORT_RELOAD_FAILED in reload.actions
    assert Action.TAKE_OVER not in reload.actions  # the old generation stays current
    assert transition(Role.RESPAWN, S.LOADING, E.LOAD_FAILED).actions == (
        Action.RETRY_LATER,)
    # a zygote that dies while loading is a failure like any other
    for role in Role:
        assert transition(role, S.LOADING, E.ZYGOTE_EXITED) == transition(
            role, S.LOADING, E.LOAD_FAILED)


def test_messages_and_texts_are_apart_from_the_states() -> None:
    assert set(MESSAGES) == set(Note)
    assert set(RELOAD_TEXT) == set(ReloadStatus)
    assert str(Outcome()) == "none"
    assert str(Outcome(ReloadStatus.LOADING, 3)) == "loading"
    assert str(Outcome(ReloadStatus.ROLLING, 3)) == "rolling"
    assert str(Outcome(ReloadStatus.OK, 3)) == "ok: generation 3"
    assert str(Outcome(ReloadStatus.FAILED, 3, "ImportError: x")) == "failed: ImportError: x"


# -- the arbiter through it, with fakes --------------------------------------------------
@pytest.fixture
def log() -> Iterator[Captured]:
    yield from capture_log()


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig(workers=2)
    try:
        rig.serve()
        yield rig
    finally:
        rig.close()


def test_start_serves_once_n_workers_are_ready(log: Captured) -> None:
    rig = Rig(workers=3)
    try:
        rig.arbiter.start()
        rig.step()
        assert rig.state(1) == "loading" and not rig.arbiter.serving
        assert rig.arbiter.crew.records == {}  # nothing is forked before the app loaded
        rig.load(1)
        rig.run(4)
        assert rig.arbiter.serving and rig.state(1) == "serving"
        assert len(rig.live_workers()) == 3
        assert "serving on  with 3 workers" in log
        [ready] = [lines for lines in rig.system.notified if "READY=1" in lines]
        assert ready[1] == f"MAINPID={rig.arbiter.pid}" and ready[2].startswith("STATUS=")
        assert rig.arbiter.last_reload == "none"
        assert rig.system.titles[-1] == "forkhttpd: master [app:app] gen 1 serving workers 3"
    finally:
        rig.close()


def test_a_broken_app_at_startup_ends_the_start() -> None:
    rig = Rig()
    try:
        rig.arbiter.start()
        rig.fail(1, "ImportError: no module named app", "Traceback (most recent call last)")
        with pytest.raises(StartupError) as caught:
            rig.step()
        assert str(caught.value) == "ImportError: no module named app"
        assert caught.value.details == "Traceback (most recent call last)"
    finally:
        rig.close()


def test_a_good_reload_rolls_over_without_losing_capacity(rig: Rig, log: Captured) -> None:
    old = {w.pid for w in rig.live_workers()}
    rig.step(signal.SIGHUP)
    assert rig.arbiter.last_reload == "loading" and rig.state(2) == "loading"
    assert rig.notified("RELOADING=1")
    assert rig.system.titles[-1].endswith("gen 1 reloading workers 2")
    rig.step()
    assert rig.generations_serving() == {1}  # nothing happens before generation 2 loaded
    rig.load(2)
    rig.step()
    assert rig.arbiter.last_reload == "rolling" and rig.state(2) == "starting"
    assert rig.arbiter.current is rig.arbiter.gens.all[2]  # the respawns come from it
    # generation 1 stands by, its zygote alive, until a worker of generation 2 is ready
    assert rig.arbiter.gens.previous is rig.arbiter.gens.all[1] and rig.state(1) == "serving"
    assert rig.zygotes[1].cmd_w not in rig.system.closed
    rig.step()  # generation 2's workers are forked
    rig.step()  # ... and ready
    assert rig.state(2) == "rolling" and rig.state(1) == "retired"
    assert rig.zygotes[1].cmd_w in rig.system.closed  # generation 1 forks no more
    rig.run(10)
    assert rig.arbiter.last_reload == "ok: generation 2" and rig.state(2) == "serving"
    assert rig.generations_serving() == {2} and len(rig.live_workers()) == 2
    assert all(rig.system.signals_to(pid) == [signal.SIGTERM] for pid in old)
    assert min(rig.ready_history) >= 2  # never fewer ready workers than wanted
    assert rig.state(1) == "forgotten"  # its zygote exited, its pipe drained
    assert rig.arbiter.observer.tally.reloads == {"ok": 1, "failed": 0}
    assert "reload: generation 2 loaded in 0.4s; rolling the workers over" in log
    assert log.count("reload complete: generation 2 serves") == 1
    assert rig.system.notified[-1][0] == "READY=1"
    assert rig.system.titles[-1].endswith("gen 2 serving workers 2")


def test_a_reload_that_cannot_import_keeps_the_old_generation(rig: Rig, log: Captured
                                                               ) -> None:
    old = {w.pid for w in rig.live_workers()}
    rig.step(signal.SIGHUP)
    rig.fail(2, "ImportError: broken", "Traceback...\nImportError: broken\n")
    rig.run(5)
    assert rig.arbiter.last_reload == "failed: ImportError: broken"
    assert rig.arbiter.current is rig.arbiter.gens.all[1] and rig.arbiter.gens.pending is None
    assert {w.pid for w in rig.live_workers()} == old
    assert all(not rig.system.signals_to(pid) for pid in old)  # untouched
    assert rig.state(2) == "forgotten"
    assert rig.arbiter.observer.tally.reloads == {"ok": 0, "failed": 1}
    assert rig.notified("STATUS=reload failed: ImportError: broken")
    assert ("reload failed: generation 2 cannot load the app: ImportError: broken\n"
            "the app's traceback:\nTraceback...\nImportError: broken") in log.lines
    assert "reload failed; generation 1 keeps serving; the next SIGHUP tries again" in log
    # a later SIGHUP tries again, and may succeed
    rig.step(signal.SIGHUP)
    rig.load(3)
    rig.run(10)
    assert rig.arbiter.last_reload == "ok: generation 3"
    assert rig.generations_serving() == {3}


def test_a_zygote_that_dies_while_loading_fails_the_reload(rig: Rig) -> None:
    rig.step(signal.SIGHUP)
    rig.zygote_exits(2, killed(signal.SIGSEGV))
    rig.run(3)
    assert rig.arbiter.last_reload == ("failed: the zygote died while loading the app "
                                       "(signal SIGSEGV)")
    assert rig.generations_serving() == {1}


def test_a_reload_during_a_load_abandons_the_first(rig: Rig, log: Captured) -> None:
    rig.step(signal.SIGHUP)
    rig.step(signal.SIGHUP)
    assert rig.state(2) in ("abandoned", "forgotten")
    assert rig.system.signals_to(rig.zygotes[2].pid) == [signal.SIGKILL]
    assert "reload: abandoning generation 2, still loading" in log
    assert rig.arbiter.gens.pending is rig.arbiter.gens.all[3]
    rig.load(2)  # too late: its last words change nothing
    rig.run(2)
    assert rig.generations_serving() == {1} and rig.arbiter.last_reload == "loading"
    rig.load(3)
    rig.run(10)
    assert rig.arbiter.last_reload == "ok: generation 3"
    assert rig.generations_serving() == {3} and min(rig.ready_history) >= 2
    assert "unexpected event" not in log


def test_a_reload_during_a_roll_ends_on_the_latest_code(rig: Rig, log: Captured) -> None:
    rig.step(signal.SIGHUP)
    rig.load(2)
    rig.step()
    rig.step()  # generation 2's first workers are forked, generation 1 still serves
    assert rig.arbiter.last_reload == "rolling"
    rig.step(signal.SIGHUP)
    assert rig.arbiter.last_reload == "loading"
    rig.load(3)
    rig.step()
    assert rig.state(1) in ("retired", "forgotten")
    assert rig.arbiter.current is rig.arbiter.gens.all[3]
    assert rig.arbiter.gens.previous is rig.arbiter.gens.all[2]  # it stands by
    rig.step()
    rig.step()
    assert rig.state(2) == "retired" and rig.state(3) == "rolling"
    assert rig.zygotes[2].cmd_w in rig.system.closed  # generation 2 forks no more
    rig.run(12)
    assert rig.state(2) == "forgotten" and not rig.zygotes[2].alive
    assert rig.arbiter.last_reload == "ok: generation 3"
    assert rig.generations_serving() == {3} and min(rig.ready_history) >= 2
    assert "reload complete: generation 2" not in log  # superseded before it completed
    assert log.count("reload complete: generation 3 serves") == 1
    assert rig.arbiter.observer.tally.reloads == {"ok": 1, "failed": 0}


def test_a_worker_dying_mid_roll_is_replaced_from_the_new_generation(rig: Rig) -> None:
    rig.step(signal.SIGHUP)
    rig.load(2)
    rig.step()
    rig.step()
    new = [w for w in rig.live_workers() if w.generation == 2]
    old = [w for w in rig.live_workers() if w.generation == 1]
    assert new and old
    rig.worker_exits(new[0].pid, killed(signal.SIGSEGV))  # a new one, as it starts
    rig.worker_exits(old[0].pid, exited(1))  # an old one, still serving
    rig.step()
    assert rig.arbiter.crew.fast_failures == 1  # the new one died as it started
    assert rig.arbiter.last_reload == "rolling"
    rig.run(12)
    assert rig.arbiter.last_reload == "ok: generation 2"
    assert rig.generations_serving() == {2} and len(rig.live_workers()) == 2
    assert len(rig.zygotes[1].forked) == 2  # generation 1 forked nothing after the reload
    reasons = rig.arbiter.observer.tally.exits
    assert reasons.get("crash", 0) >= 1


def test_term_during_a_roll_stops_everything(rig: Rig, log: Captured) -> None:
    rig.step(signal.SIGHUP)
    rig.load(2)
    rig.step()
    rig.step()
    live = [w.pid for w in rig.live_workers()]
    assert {1, 2} <= rig.generations_serving()
    rig.step(signal.SIGTERM)
    assert rig.arbiter.stopping == "graceful" and rig.notified("STOPPING=1")
    assert rig.state(1) in ("retired", "forgotten") and rig.state(2) == "retired"
    assert all(signal.SIGTERM in rig.system.signals_to(pid) for pid in live)
    assert signal.SIGTERM in rig.system.signals_to(rig.zygotes[2].pid)
    codes = [rig.step() for _ in range(3)]
    assert 0 in codes
    assert not rig.live_workers()
    assert rig.arbiter.last_reload == "rolling"  # it never completed
    assert "reload complete" not in log and "stopped" in log
    assert rig.system.titles[-1].endswith("stopping workers 0")


def test_term_during_a_load_abandons_it(rig: Rig, log: Captured) -> None:
    rig.step(signal.SIGHUP)
    rig.step(signal.SIGTERM)
    assert rig.state(2) in ("abandoned", "forgotten")
    rig.load(2)  # its zygote's last word, too late
    codes = [rig.step() for _ in range(3)]
    assert 0 in codes and "unexpected event" not in log
    assert not any(w.generation == 2 for w in rig.workers.values())


def test_a_serving_generation_s_dead_zygote_is_replaced_quietly(rig: Rig, log: Captured
                                                                ) -> None:
    rig.zygote_exits(1, killed(signal.SIGKILL))
    rig.step()
    assert "the zygote of generation 1 died (signal SIGKILL); loading the app anew" in log
    assert rig.arbiter.gens.all[2].state is State.LOADING  # a replacement, at once
    rig.load(2)
    rig.run(10)
    assert "generation 2 loaded in 0.2s; it replaces the workers" in log
    assert rig.generations_serving() == {2} and min(rig.ready_history) >= 2
    assert rig.arbiter.last_reload == "none"  # no reload was asked for


def test_a_replacement_that_cannot_load_retries_with_a_backoff(rig: Rig, log: Captured
                                                               ) -> None:
    rig.zygote_exits(1, killed(signal.SIGKILL))
    rig.step()
    rig.fail(2, "ImportError: gone")
    rig.step()
    assert "generation 2 cannot load the app: ImportError: gone" in log
    assert "the workers still running keep serving; next try in 0.5s" in log
    assert rig.notified("STATUS=cannot load the app: ImportError: gone")
    assert 3 not in rig.zygotes  # not before the backoff
    rig.step(seconds=0.6)
    rig.fail(3, "ImportError: gone")
    rig.step()
    assert "generation 3: the app still cannot load (the same error); next try in 1.0s" in log
    assert rig.generations_serving() == {1}  # the old workers keep serving
    rig.step(seconds=1.1)
    rig.load(4)
    rig.run(10)
    assert rig.generations_serving() == {4} and rig.arbiter.zygote_backoff == 0.0


def test_an_illegal_event_from_a_zygote_is_refused_and_logged(rig: Rig, log: Captured
                                                              ) -> None:
    rig.load(1)  # a second "R" from a generation that serves
    rig.step()
    assert "generation 1 (serving): unexpected event loaded; ignored" in log
    assert rig.state(1) == "serving" and rig.arbiter.current is rig.arbiter.gens.all[1]


# -- a generation whose workers cannot start ------------------------------------------------
def test_a_reload_whose_workers_cannot_start_fails_and_the_old_generation_serves_on(
        rig: Rig, log: Captured) -> None:
    old = {w.pid for w in rig.live_workers()}
    rig.step(signal.SIGHUP)
    rig.zygotes[2].workers_healthy = False  # it loads, but every worker dies as it starts
    rig.load(2)
    for _ in range(60):  # 12 s of the fake clock: the spawns back off in between
        rig.step()
        if rig.state(2) in ("failed", "forgotten"):
            break
    assert rig.state(2) in ("failed", "forgotten")
    # given up after five deaths (two start at a time), not respawned for ever
    assert 5 <= len(rig.zygotes[2].forked) <= 6
    failure = "its workers exit as they start (exit code 1, 5 in a row)"
    assert rig.arbiter.last_reload == f"failed: {failure}"
    assert rig.notified(f"STATUS=reload failed: {failure}")
    assert f"reload failed: generation 2: {failure}" in log
    assert "reload failed; generation 1 keeps serving; the next SIGHUP tries again" in log
    assert rig.arbiter.observer.tally.reloads == {"ok": 0, "failed": 1}
    assert rig.arbiter.current is rig.arbiter.gens.all[1] and rig.state(1) == "serving"
    assert {w.pid for w in rig.live_workers()} == old  # untouched all along
    assert all(not rig.system.signals_to(pid) for pid in old)
    assert rig.zygotes[1].cmd_w not in rig.system.closed
    assert rig.zygotes[2].cmd_w in rig.system.closed
    # generation 1's zygote still forks: a worker that dies now is replaced from it
    rig.worker_exits(sorted(old)[0], killed(signal.SIGKILL))
    rig.run(5)
    assert len(rig.live_workers()) == 2 and rig.generations_serving() == {1}
    assert len(rig.zygotes[1].forked) == 3
    # and a reload with working code succeeds
    rig.step(signal.SIGHUP)
    rig.load(3)
    rig.run(12)
    assert rig.arbiter.last_reload == "ok: generation 3" and rig.generations_serving() == {3}


def test_a_first_generation_whose_workers_cannot_start_ends_the_start() -> None:
    rig = Rig()
    try:
        rig.arbiter.start()
        rig.zygotes[1].workers_healthy = False
        rig.load(1)
        with pytest.raises(StartupError) as caught:
            for _ in range(60):
                rig.step()
        assert str(caught.value) == "its workers exit as they start (exit code 1, 5 in a row)"
        assert rig.zygotes[1].cmd_w in rig.system.closed
    finally:
        rig.close()


def test_a_replacement_whose_workers_cannot_start_backs_off(rig: Rig, log: Captured) -> None:
    rig.zygote_exits(1, killed(signal.SIGKILL))  # no generation to fall back to
    rig.step()
    rig.zygotes[2].workers_healthy = False
    rig.load(2)
    for _ in range(60):
        rig.step()
        if 3 in rig.zygotes:
            break
    assert rig.state(2) in ("failed", "forgotten")
    assert "generation 2 cannot load the app: its workers exit as they start" in log
    assert rig.generations_serving() >= {1}  # generation 1's workers still serve
    rig.load(3)
    rig.run(12)
    assert rig.generations_serving() == {3}


def test_a_worker_that_starts_once_proves_the_generation() -> None:
    """Deaths after one of its workers was ready are the supervisor's (backoff), never a
    failed generation: the app can start."""
    rig = Rig()
    try:
        rig.serve()
        for worker in rig.live_workers():
            worker.healthy = False  # all die now, long after they started
        rig.run(30)
        assert rig.state(1) == "serving" and rig.arbiter.current is rig.arbiter.gens.all[1]
    finally:
        rig.close()
