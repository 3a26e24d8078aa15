"""The arbiter's verbs, driven in-process with fake zygotes, workers and clock
(fake_master.py): the signal table, TTIN/TTOU, USR1, config reloads, stops, a hung worker,
and the bookkeeping of workers whose PID comes late."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from fake_master import Captured, Rig, capture_log, exited

from forkhttpd.config.settings import load_settings
from forkhttpd.master.arbiter import SIGNALS, Arbiter
from forkhttpd.master.health import Sample


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


def test_the_signal_table_names_the_arbiter_s_verbs() -> None:
    assert set(SIGNALS) == {signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT,
                            signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1}
    assert all(callable(getattr(Arbiter, name)) for name in SIGNALS.values())


def test_ttin_and_ttou_change_the_worker_count(rig: Rig, log: Captured) -> None:
    rig.step(signal.SIGTTIN)
    rig.run(3)
    assert rig.arbiter.num_workers == 3 and len(rig.live_workers()) == 3
    assert "TTIN: 3 workers wanted" in log
    rig.step(signal.SIGTTOU)
    rig.step(signal.SIGTTOU)
    rig.step(signal.SIGTTOU)  # never fewer than one
    rig.run(3)
    assert rig.arbiter.num_workers == 1 and len(rig.live_workers()) == 1
    assert rig.arbiter.observer.tally.exits.get("ttou") == 2


def test_usr1_is_passed_to_zygotes_and_workers(rig: Rig) -> None:
    rig.step(signal.SIGUSR1)
    for pid in [rig.zygotes[1].pid] + [w.pid for w in rig.live_workers()]:
        assert rig.system.signals_to(pid) == [signal.SIGUSR1]


def test_sighup_before_serving_is_ignored(log: Captured) -> None:
    rig = Rig()
    try:
        rig.arbiter.start()
        rig.step(signal.SIGHUP)
        assert "SIGHUP before the first generation serves: ignored" in log
        assert list(rig.zygotes) == [1] and rig.arbiter.last_reload == "none"
    finally:
        rig.close()


def test_a_rejected_config_changes_nothing(log: Captured) -> None:
    def reread() -> Any:
        raise ValueError("workers: expected an integer")

    rig = Rig(reread=reread)
    try:
        rig.serve()
        rig.step(signal.SIGHUP)
        assert rig.arbiter.last_reload == "failed: workers: expected an integer"
        assert list(rig.zygotes) == [1]  # no generation was started
        assert ("reload: configuration rejected, keeping the running one: workers: expected "
                "an integer") in log
        assert rig.notified("STATUS=reload failed: workers: expected an integer")
        assert rig.arbiter.observer.tally.reloads == {"ok": 0, "failed": 1}
    finally:
        rig.close()


def test_a_reloaded_config_applies_to_the_next_generation(log: Captured) -> None:
    new = load_settings(["--workers", "3", "--timeout", "9"], {})
    rig = Rig(reread=lambda: new)
    try:
        rig.serve()
        rig.step(signal.SIGHUP)
        assert rig.arbiter.num_workers == 3 and rig.arbiter.crew.limits.timeout == 9.0
        assert "reload: new values for workers, timeout" in log
        rig.load(2)
        rig.run(10)
        assert rig.arbiter.last_reload == "ok: generation 2"
        assert len(rig.live_workers()) == 3 and rig.generations_serving() == {2}
    finally:
        rig.close()


def test_term_drains_then_exits_zero(rig: Rig, log: Captured) -> None:
    pids = [w.pid for w in rig.live_workers()]
    assert rig.step(signal.SIGTERM) is None
    assert all(rig.system.signals_to(pid) == [signal.SIGTERM] for pid in pids)
    assert rig.step() == 0
    assert "graceful stop: 2 workers" in log and "stopped" in log
    assert rig.system.signals_to(rig.zygotes[1].pid) == [signal.SIGTERM]
    assert rig.arbiter.gens.all[1].zygote_pid == 0  # reaped before the master returns


def test_a_fast_stop_kills_what_outlives_it(rig: Rig, log: Captured) -> None:
    stuck = rig.live_workers()[0]
    rig.workers[stuck.pid].alive = False  # ignores every signal: it never exits by itself
    rig.step(signal.SIGINT)
    assert signal.SIGQUIT in rig.system.signals_to(stuck.pid)
    code = None
    for _ in range(10):
        code = rig.step(seconds=0.5)
        if code is not None:
            break
    assert code == 0
    assert signal.SIGKILL in rig.system.signals_to(stuck.pid)
    assert f"worker 1 (pid {stuck.pid}) outlived the stop; SIGKILL" in log


def test_a_hung_worker_is_alarmed_aborted_then_killed(rig: Rig, log: Captured) -> None:
    rig.arbiter.crew.observe = lambda process: Sample(alive=True, rss_mib=20.0)
    hung = rig.live_workers()[0]
    hung.beating = False
    signals: list[int] = []
    for _ in range(200):  # 40 s of the fake clock
        rig.step()
        signals = [s for s in rig.system.signals_to(hung.pid) if s != signal.SIGUSR1]
        if signal.SIGKILL in signals:
            break
    assert signals == [signal.SIGALRM, signal.SIGABRT, signal.SIGKILL]
    rig.run(3)
    assert rig.arbiter.observer.tally.exits.get("timeout") == 1
    assert len(rig.live_workers()) == 2 and hung not in rig.live_workers()


def test_a_worker_reaped_before_its_pid_was_told_is_still_accounted(rig: Rig) -> None:
    rig.step(signal.SIGTTIN)  # a third worker is asked for
    zygote = rig.zygotes[1]
    rig.system.clock += 0.2
    rig._fork_asked(zygote)  # the zygote forks it and says so ...
    newcomer = zygote.forked[-1]
    newcomer.alive = False
    rig.system.exits.append((newcomer.pid, exited(1)))  # ... but it dies before we read that
    rig.arbiter.tick([], [])  # reaped first: unknown yet, remembered
    assert newcomer.pid in rig.arbiter.crew.early_exits
    rig.arbiter.tick([], rig.system.readable())  # then its PID arrives
    assert newcomer.pid not in rig.arbiter.crew.records
    assert rig.arbiter.observer.tally.exits.get("crash") == 1


def test_a_placeholder_never_filled_is_given_up_and_its_worker_stopped(rig: Rig,
                                                                      log: Captured) -> None:
    rig.zygotes[1].loaded = False  # the zygote stops answering
    rig.step(signal.SIGTTIN)
    for _ in range(60):  # 12 s
        rig.step()
    assert "worker 3 (gen 1) was never reported by its zygote; giving up on it" in log
    rig.zygotes[1].loaded = True  # ... and answers at last: one worker too many
    rig.run(3)
    [stopped] = [w for w in rig.zygotes[1].forked if signal.SIGTERM in
                 rig.system.signals_to(w.pid)]
    assert f"unexpected worker pid {stopped.pid} from generation 1; stopping it" in log
    assert len(rig.live_workers()) == 3 and len(rig.arbiter.crew.records) == 3


def test_no_attribute_is_declared_twice() -> None:
    """The arbiter and its parts each own their state: no name in two of them."""
    rig = Rig()
    try:
        arbiter = rig.arbiter
        own = set(vars(arbiter))
        crew, gens = set(vars(arbiter.crew)), set(vars(arbiter.gens))
        shared = {"system", "board"}  # the parts are handed the same kernel and scoreboard
        assert not (own & crew) - shared and not (own & gens) - shared
        assert not (crew & gens) - shared
        assert not dataclasses.is_dataclass(arbiter)
    finally:
        rig.close()
