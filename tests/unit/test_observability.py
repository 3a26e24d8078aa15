"""The scoreboard's counters, the master's snapshot, /metrics (checked with prometheus_client's
parser), the status table, the status file and the non-blocking status server; no fork."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forkhttpd.master import metrics, status
from forkhttpd.master.health import Sample
from forkhttpd.runtime import scoreboard as heartbeat
from forkhttpd.runtime.scoreboard import Meter, Scoreboard


def exchange(status_code: int, size: int, seconds_ago: float) -> Any:
    return SimpleNamespace(status=status_code, bytes_sent=size,
                           start=time.monotonic() - seconds_ago)


def test_meter_counts_reach_the_slot_only_on_flush() -> None:
    board = Scoreboard(4)
    board.claim(2, 1234, 3, 9, time.monotonic(), time.time())
    meter = Meter(board.slot(2))
    meter.begin("GET /slow HTTP/1.1", 100.0)
    view = board.read(2)
    assert view.last_beat == 100.0  # a request that begins is a heartbeat
    assert (view.pid, view.generation, view.number) == (1234, 3, 9)
    assert (view.state, view.request_line, view.request_start) == (
        "handling", "GET /slow HTTP/1.1", 100.0)
    assert meter.response(exchange(200, 100, 0.0005)) < 1000
    meter.response(exchange(404, 50, 0.003))
    meter.response(exchange(503, 10, 20.0))
    assert board.read(2).state == "keep-alive" and board.read(2).requests == 0
    meter.flush(5)
    view = board.read(2)
    assert (view.requests, view.bytes_sent, view.connections) == (3, 160, 5)
    counters = view.counters
    assert counters[heartbeat.CLASS0:heartbeat.CLASS0 + 5] == (0, 1, 0, 1, 1)
    buckets = counters[heartbeat.BUCKET0:]
    assert len(buckets) == len(heartbeat.BUCKETS) + 1
    assert buckets[0] == 1 and buckets[heartbeat.BUCKETS.index(5_000)] == 1 and buckets[-1] == 1
    assert counters[heartbeat.DURATION_SUM] >= 20_000_000
    # another slot is untouched, and a claim starts clean
    assert board.read(1).requests == 0 and board.read(3).state == "free"
    board.claim(2, 0, 4, 10, 0.0, 0.0)
    assert board.read(2).requests == 0 and board.read(2).state == "starting"


def test_request_line_is_truncated_and_never_fails() -> None:
    board = Scoreboard(1)
    meter = Meter(board.slot(0))
    meter.begin("GET /" + "x" * 500 + " HTTP/1.1", 1.0)
    assert board.read(0).request_line == "GET /" + "x" * 195
    meter.begin("GET /\u20ac\xff HTTP/1.1", 2.0)
    assert board.read(0).request_line == "GET /?\xff HTTP/1.1"
    board.slot(0).request_begins("POST / HTTP/1.0", 3.0)
    assert board.read(0).request_line == "POST / HTTP/1.0"


class FakeArbiter:
    """The attributes status.collect reads from the real Arbiter."""

    def __init__(self, board: Scoreboard, pidfile: str | None = None) -> None:
        self.board = board
        self.pid = os.getpid()
        self.started = time.monotonic() - 65
        self.current = SimpleNamespace(number=2)
        self.app_label = 'app:"quoted"'
        self.num_workers = 2
        self.stopping = ""
        self.last_reload = "ok: generation 2"
        self.listeners: list[socket.socket] = []
        self.settings = SimpleNamespace(pid=pidfile, status_bind=None)
        self.workers: dict[int, Any] = {}

    def add(self, slot: int, pid: int, number: int) -> Any:
        record = SimpleNamespace(pid=pid, number=number, generation=2, slot=slot, retiring="",
                                 replacing="", sample=Sample(True, 30.5, 1.25, 12.0))
        self.board.claim(slot, pid, 2, number, time.monotonic(), time.time())
        self.workers[pid] = record
        return record


def busy_arbiter(pidfile: str | None = None) -> tuple[FakeArbiter, metrics.Tally]:
    board = Scoreboard(8)
    arbiter = FakeArbiter(board, pidfile)
    arbiter.add(0, 101, 1)
    arbiter.add(1, 102, 2)
    first, second = Meter(board.slot(0)), Meter(board.slot(1))
    for code in (200, 200, 301, 404):
        first.response(exchange(code, 1000, 0.002))
    first.flush(1)
    first.set_state(heartbeat.IDLE)
    second.response(exchange(500, 10, 0.2))
    second.flush(1)
    second.begin('GET /slow?"x" HTTP/1.1', time.monotonic() - 2.5)
    arbiter.meters = [first, second]  # type: ignore[attr-defined]
    scratch = Scoreboard(1)
    gone = Meter(scratch.slot(0))
    for _ in range(7):
        gone.response(exchange(200, 1, 0.01))
    gone.flush(3)
    tally = metrics.Tally()
    tally.worker_exited(1, 99, 1, "timeout", "signal SIGKILL", scratch.read(0).counters,
                        time.time())
    tally.worker_exited(0, 98, 1, "max-requests", "exit code 0",
                        tuple([0] * heartbeat.COUNTERS), time.time())
    tally.reloaded(True)
    return arbiter, tally


def test_collect_sums_live_and_gone_workers() -> None:
    arbiter, tally = busy_arbiter()
    snapshot = status.collect(arbiter, tally)
    json.dumps(snapshot)  # plain data
    requests = snapshot["requests"]
    assert requests["total"] == 4 + 1 + 7
    assert requests["by_class"] == {"1xx": 0, "2xx": 9, "3xx": 1, "4xx": 1, "5xx": 1}
    assert requests["bytes_sent"] == 4000 + 10 + 7
    assert snapshot["states"] == {"idle": 1, "handling": 1}
    slow = snapshot["workers"][1]
    assert slow["request"] == 'GET /slow?"x" HTTP/1.1' and 2.4 < slow["request_seconds"] < 10
    assert snapshot["workers"][0]["request"] is None
    assert slow["rss_bytes"] == int(30.5 * 1024 * 1024) and slow["cpu_seconds"] == 1.25
    assert snapshot["exits"] == {"timeout": 1, "max-requests": 1}
    assert snapshot["reloads"] == {"ok": 1, "failed": 0}
    assert snapshot["master"]["generation"] == 2 and 64 < snapshot["master"]["uptime"] < 100


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_metrics_survive_prometheus_parsing() -> None:
    arbiter, tally = busy_arbiter()
    text = metrics.render_metrics(status.collect(arbiter, tally))
    found = families(text)
    requests = {s.labels["status_class"]: s.value for s in found["forkhttpd_requests"].samples}
    assert requests == {"1xx": 0, "2xx": 9, "3xx": 1, "4xx": 1, "5xx": 1}
    histogram = found["forkhttpd_request_duration_seconds"]
    assert histogram.type == "histogram"
    buckets = [s for s in histogram.samples if s.name.endswith("_bucket")]
    values = [s.value for s in buckets]
    assert values == sorted(values) and buckets[-1].labels["le"] == "+Inf"
    count = next(s.value for s in histogram.samples if s.name.endswith("_count"))
    assert count == values[-1] == 12
    states = {s.labels["state"]: s.value for s in found["forkhttpd_workers"].samples}
    assert states["idle"] == 1 and states["handling"] == 1 and sum(states.values()) == 2
    restarts = {s.labels["reason"]: s.value
                for s in found["forkhttpd_worker_restarts"].samples}
    assert restarts["timeout"] == 1 and restarts["max-requests"] == 1 and restarts["rss"] == 0
    rss = {s.labels["pid"]: s.value for s in found["forkhttpd_worker_rss_bytes"].samples}
    assert rss == {"101": int(30.5 * 1024 * 1024), "102": int(30.5 * 1024 * 1024)}
    reloads = {s.labels["result"]: s.value for s in found["forkhttpd_reloads"].samples}
    assert reloads == {"ok": 1, "failed": 0}
    assert found["forkhttpd_generation"].samples[0].value == 2


def test_metric_labels_are_escaped() -> None:
    arbiter, tally = busy_arbiter()
    tally.worker_exited(3, 5, 1, 'odd "reason"\\\n', "?", tuple([0] * heartbeat.COUNTERS), 0.0)
    found = families(metrics.render_metrics(status.collect(arbiter, tally)))
    reasons = {s.labels["reason"] for s in found["forkhttpd_worker_restarts"].samples}
    assert 'odd "reason"\\\n' in reasons


def test_table_and_summary() -> None:
    arbiter, tally = busy_arbiter()
    snapshot = status.collect(arbiter, tally, rps=12.5)
    table = status.render_table(snapshot)
    rows = table.splitlines()
    header = next(i for i, row in enumerate(rows) if row.lstrip().startswith("WORKER"))
    assert len(rows) == header + 3
    assert "handling" in rows[header + 2] and "'GET /slow?\"x\" HTTP/1.1' for 2." in table
    assert "generation 2" in rows[0] and "timeout 1" in table and "12.5 req/s" in table
    line = metrics.summary(snapshot)
    assert line == ("2 workers (1 busy, 1 idle); 12.5 req/s; generation 2; "
                    "last reload: ok: generation 2")


def test_status_file_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pidfile = tmp_path / "app.pid"
    assert status.status_path(str(pidfile)) == str(tmp_path / "app.status.json")
    assert status.main(["--pid", str(pidfile)]) == status.EXIT_NOT_RUNNING
    arbiter, tally = busy_arbiter(str(pidfile))
    observer = status.Observer(arbiter)
    observer.tally = tally
    observer.step([], [], time.monotonic())
    path = tmp_path / "app.status.json"
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert status.read_status(str(pidfile))["workers"][1]["state"] == "handling"
    capsys.readouterr()
    assert status.main(["--pid", str(pidfile)]) == 0
    assert "GET /slow" in capsys.readouterr().out
    assert status.main(["--pid", str(pidfile), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["master"]["pid"] == os.getpid() and shown["age"] < 5
    pidfile.write_text("1\n")  # another master's file
    with pytest.raises(status.NotRunning, match="names pid 1"):
        status.read_status(str(pidfile))
    pidfile.write_text(f"{os.getpid()}\n")
    assert status.read_status(str(pidfile))
    observer.close()
    assert not path.exists()


def test_requests_per_second_from_the_periodic_pass() -> None:
    arbiter, tally = busy_arbiter()
    observer = status.Observer(arbiter)
    now = time.monotonic()
    observer.step([], [], now)
    meter = arbiter.meters[0]  # type: ignore[attr-defined]
    for _ in range(30):
        meter.response(exchange(200, 1, 0.0))
    meter.flush(0)
    observer.step([], [], now + 2.0)
    assert observer.rps == pytest.approx(15.0)


def serve_for(server: status.StatusServer, seconds: float) -> None:
    """Drive the server as the master does: select with a short timeout, then step."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readable, writable, _ = select.select(server.read_fds(), server.write_fds(), [], 0.05)
        server.step(set(readable), set(writable), time.monotonic())


def test_status_server_answers_while_slow_clients_hang_on() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = status.StatusServer(
        listener, lambda path: (200, "text/plain", f"you asked {path}".encode()))
    server.DEADLINE = 0.6
    silent = socket.create_connection(("127.0.0.1", port))
    partial = socket.create_connection(("127.0.0.1", port))
    partial.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
    answers: list[bytes] = []

    def client(request: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            answers.append(b"".join(iter(lambda: sock.recv(4096), b"")))

    threads = [threading.Thread(target=client, args=(r,)) for r in (
        b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", b"HEAD /status HTTP/1.0\r\n\r\n",
        b"POST /status HTTP/1.1\r\n\r\n")]
    for thread in threads:
        thread.start()
    try:
        serve_for(server, 0.3)
        for thread in threads:
            thread.join(2)
        assert sorted(a.split(b"\r\n")[0] for a in answers) == [
            b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 405 Method Not Allowed"]
        assert any(a.endswith(b"you asked /metrics") for a in answers)
        assert any(b"Content-Length: 17" in a and a.endswith(b"\r\n\r\n") for a in answers)
        serve_for(server, 0.6)  # past the deadline: the slow ones are let go
        assert not server.clients
        silent.settimeout(1)
        partial.settimeout(1)
        assert silent.recv(100) == b"" and partial.recv(100) == b""
    finally:
        silent.close()
        partial.close()
        server.close()


def test_status_server_limits_open_connections() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    server = status.StatusServer(listener, lambda path: (200, "text/plain", b"ok"))
    held = [socket.create_connection(listener.getsockname()) for _ in range(
        server.MAX_CLIENTS + 4)]
    try:
        serve_for(server, 0.3)
        assert len(server.clients) == server.MAX_CLIENTS
    finally:
        for sock in held:
            sock.close()
        server.close()
