"""The master's pure decisions: which workers to start or retire, and what a worker needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forkhttpd.master.health import Sample, Verdict, judge
from forkhttpd.master.planning import plan_workers


@dataclass
class W:
    pid: int
    generation: int
    spawned: float
    ready: bool = True
    replacing: str = ""
    retiring: str = ""


def test_spawns_the_shortfall() -> None:
    assert plan_workers([], 1, 4).spawn == 4
    plan = plan_workers([W(1, 1, 0), W(2, 1, 1)], 1, 4)
    assert plan.spawn == 2 and plan.retire == ()


def test_ttou_retires_the_newest_surplus() -> None:
    plan = plan_workers([W(1, 1, 0), W(2, 1, 1), W(3, 1, 2)], 1, 2)
    assert plan.spawn == 0 and plan.retire == ((3, "ttou"),)


def test_reload_keeps_capacity_until_new_workers_are_ready() -> None:
    old = [W(1, 1, 0), W(2, 1, 1)]
    # new generation 2 just started: spawn 2, retire nobody yet
    plan = plan_workers(old, 2, 2)
    assert plan.spawn == 2 and plan.retire == ()
    # one new worker ready: one old worker may go
    plan = plan_workers(old + [W(3, 2, 5), W(4, 2, 6, ready=False)], 2, 2)
    assert plan.spawn == 0 and plan.retire == ((1, "reload"),)
    # both ready: both old go
    plan = plan_workers(old + [W(3, 2, 5), W(4, 2, 6)], 2, 2)
    assert plan.retire == ((1, "reload"), (2, "reload"))


def test_recycle_starts_the_successor_first() -> None:
    workers = [W(1, 1, 0, replacing="max-requests"), W(2, 1, 1)]
    plan = plan_workers(workers, 1, 2)
    assert plan.spawn == 1 and plan.retire == ()
    plan = plan_workers(workers + [W(3, 1, 5)], 1, 2)
    assert plan.spawn == 0 and plan.retire == ((1, "max-requests"),)


def test_unready_outgoing_workers_go_at_once() -> None:
    plan = plan_workers([W(1, 1, 0, ready=False)], 2, 1)
    assert plan.retire == ((1, "reload"),) and plan.spawn == 1


ALIVE = Sample(alive=True, rss_mib=50)


def verdict(**overrides: Any) -> Verdict:
    facts: dict[str, Any] = dict(now=100.0, last_beat=99.9, sample=ALIVE, timeout=30.0, max_rss=0,
                 over_rss_since=None, timeout_stage=0, stage_since=0.0, grace=2.0)
    facts.update(overrides)
    return judge(**facts)


def test_healthy_worker_is_left_alone() -> None:
    assert verdict().action == "ok"
    assert verdict(sample=Sample(alive=False)).action == "ok"


def test_timeout_escalates_alarm_abort_kill_and_says_timeout() -> None:
    assert verdict(last_beat=60.0) .action == "alarm"
    assert verdict(last_beat=60.0, timeout_stage=1, stage_since=99.0).action == "ok"
    stage2 = verdict(last_beat=60.0, timeout_stage=1, stage_since=97.0)
    assert (stage2.action, stage2.reason) == ("abort", "timeout")
    stage3 = verdict(last_beat=60.0, timeout_stage=2, stage_since=97.0,
                     sample=Sample(alive=True, rss_mib=5000), max_rss=10)
    assert (stage3.action, stage3.reason) == ("kill", "timeout")  # never "out of memory"
    assert verdict(last_beat=0.0, timeout=0).action == "ok"  # --timeout 0: never


def test_rss_recycles_then_kills() -> None:
    over = Sample(alive=True, rss_mib=90)
    assert (verdict(sample=over, max_rss=80).action, verdict(sample=over, max_rss=80).reason) \
        == ("recycle", "rss")
    assert verdict(sample=Sample(alive=True, rss_mib=120), max_rss=80).action == "kill"
    assert verdict(sample=over, max_rss=80, over_rss_since=50.0).action == "kill"
    assert verdict(sample=over, max_rss=100).action == "ok"


def test_placeholders_count_and_ttou_takes_the_unready_first() -> None:
    # a placeholder (PID not reported yet) is a worker on its way: no second spawn for it
    workers = [W(101, 1, 0), W(-3, 1, 5, ready=False)]
    assert plan_workers(workers, 1, 2).spawn == 0
    assert plan_workers(workers, 1, 1).retire == ((-3, "ttou"),)


def test_a_roll_never_dips_below_the_wanted_ready_count() -> None:
    old = [W(1, 1, 0), W(2, 1, 1), W(3, 1, 2)]
    for ready_new in range(4):
        new = [W(10 + n, 2, 10 + n, ready=n < ready_new) for n in range(3)]
        plan = plan_workers(old + new, 2, 3)
        retired = {pid for pid, _ in plan.retire}
        still_ready = sum(1 for w in old + new if w.ready and w.pid not in retired)
        assert still_ready >= 3 and len(retired) == ready_new


def test_retiring_workers_are_not_counted_again() -> None:
    workers = [W(1, 1, 0, retiring="rss"), W(2, 1, 1)]
    plan = plan_workers(workers, 1, 2)
    assert plan.spawn == 1 and plan.retire == ()


def exited(code: int = 0, signum: int = 0) -> int:
    """A wait status as os.waitpid returns it."""
    return signum if signum else code << 8


def test_exit_reasons() -> None:
    import signal

    from forkhttpd.master.supervise import exit_reason

    assert exit_reason("timeout", "", exited(signum=signal.SIGABRT)) == "timeout"
    assert exit_reason("reload", "shutdown", exited(0)) == "reload"
    assert exit_reason("", "", exited(signum=signal.SIGKILL)) == "signal"  # kill -9, OOM
    assert exit_reason("", "", exited(signum=signal.SIGSEGV)) == "crash"
    assert exit_reason("", "", exited(3)) == "crash"
    assert exit_reason("", "shutdown", exited(0)) == "signal"  # a TERM we did not send
    assert exit_reason("", "master-gone", exited(0)) == "master-gone"
    assert exit_reason("", "", exited(0)) == "exit"


class _Board:
    """Reads of one slot's heartbeat, in order (the last one repeats)."""

    def __init__(self, *beats: float) -> None:
        self.beats = list(beats)

    def read(self, index: int) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(last_beat=self.beats.pop(0) if len(self.beats) > 1
                               else self.beats[0])


def test_a_torn_heartbeat_read_is_read_again() -> None:
    from forkhttpd.master.children import System
    from forkhttpd.master.supervise import Limits, Supervisor, WorkerRecord

    watch = Supervisor(_Board(0.0), System(), Limits(), lambda *exit: None)  # type: ignore[arg-type]
    record = WorkerRecord(pid=10, number=1, generation=1, slot=0, spawned=0.0)
    # the first read caught the block zero-filled by the worker's pack_into
    watch.board = _Board(99.9)  # type: ignore[assignment]
    assert watch._last_beat(record, 0.0, now=100.0, timeout=30.0) == 99.9
    # a stuck worker looks stale on every read
    watch.board = _Board(50.0)  # type: ignore[assignment]
    assert watch._last_beat(record, 50.0, now=100.0, timeout=30.0) == 50.0
    # --timeout 0: nothing is read again
    watch.board = _Board()  # type: ignore[assignment]
    assert watch._last_beat(record, 0.0, now=100.0, timeout=0.0) == 0.0
