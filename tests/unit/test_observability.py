"""The scoreboard's counters (codes, refusals, client), the master's snapshot, /metrics (checked
with prometheus_client's parser and promtool when installed), the status table and --watch,
the status file and the status endpoint (through forkhttpd.protocol); no fork, no port."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forkhttpd.master import metrics, status, status_cli, status_file
from forkhttpd.master.health import Sample
from forkhttpd.master.snapshot import Tally, collect, master_process
from forkhttpd.master.status_http import StatusServer
from forkhttpd.protocol import ProtocolError, ServerConnection
from forkhttpd.runtime import logs
from forkhttpd.runtime import scoreboard as heartbeat
from forkhttpd.runtime.scoreboard import Meter, Scoreboard, count_refusal


def exchange(status_code: int, size: int, seconds_ago: float) -> Any:
    return SimpleNamespace(status=status_code, bytes_sent=size,
                           start=time.monotonic() - seconds_ago)


# -- the scoreboard ------------------------------------------------------------------------
def test_meter_counts_reach_the_slot_only_on_flush() -> None:
    board = Scoreboard(4)
    board.claim(2, 1234, 3, 9, time.monotonic(), time.time())
    meter = Meter(board.slot(2))
    meter.begin("GET /slow HTTP/1.1", 100.0, ("127.0.0.1", 40404))
    view = board.read(2)
    assert view.last_beat == 100.0  # a request that begins is a heartbeat
    assert (view.pid, view.generation, view.number) == (1234, 3, 9)
    assert (view.state, view.request_line, view.request_start, view.client) == (
        "handling", "GET /slow HTTP/1.1", 100.0, "127.0.0.1:40404")
    assert meter.response(exchange(200, 100, 0.0005)) < 1000
    meter.response(exchange(404, 50, 0.003))
    meter.response(exchange(503, 10, 20.0))
    assert board.read(2).state == "keep-alive" and board.read(2).requests == 0
    assert board.read(2).codes() == {}
    meter.flush(5)
    view = board.read(2)
    assert (view.requests, view.bytes_sent, view.connections) == (3, 160, 5)
    counters = view.counters
    assert counters[heartbeat.CLASS0:heartbeat.CLASS0 + 5] == (0, 1, 0, 1, 1)
    assert view.codes() == {200: 1, 404: 1, 503: 1}
    buckets = counters[heartbeat.BUCKET0:]
    assert len(buckets) == len(heartbeat.BUCKETS) + 1
    assert buckets[0] == 1 and buckets[heartbeat.BUCKETS.index(5_000)] == 1 and buckets[-1] == 1
    assert counters[heartbeat.DURATION_SUM] >= 20_000_000
    # another slot is untouched, and a claim starts clean
    assert board.read(1).requests == 0 and board.read(3).state == "free"
    board.claim(2, 0, 4, 10, 0.0, 0.0)
    assert board.read(2).requests == 0 and board.read(2).state == "starting"
    assert board.read(2).codes() == {} and board.read(2).client == ""


def test_codes_keep_their_place_and_the_rest_count_as_other() -> None:
    board = Scoreboard(1)
    meter = Meter(board.slot(0))
    meter.response(exchange(404, 1, 0.0))
    meter.flush(0)
    first = board.read(0).code_table
    meter.response(exchange(200, 1, 0.0))  # a lower code seen later: placed after 404
    meter.flush(0)
    table = board.read(0).code_table
    assert table[0] == first[0] == 404 and table[1] == 200
    distinct = list(range(200, 200 + heartbeat.CODE_PLACES + 5))
    for code in distinct:
        meter.response(exchange(code, 1, 0.0))
    meter.flush(0)
    codes = board.read(0).codes()
    assert sum(codes.values()) == 2 + len(distinct)
    assert len(codes) == heartbeat.CODE_PLACES and heartbeat.OTHER_CODE in codes
    assert codes[404] == 1 and codes[200] == 2
    assert sum(board.read(0).counters[heartbeat.CLASS0:heartbeat.CLASS0 + 5]) == 2 + len(
        distinct)


def test_request_line_and_client_are_bounded_and_never_fail() -> None:
    board = Scoreboard(1)
    meter = Meter(board.slot(0))
    meter.begin("GET /" + "x" * 500 + " HTTP/1.1", 1.0)
    assert board.read(0).request_line == "GET /" + "x" * 195 and board.read(0).client == ""
    meter.begin("GET /\u20ac\xff HTTP/1.1", 2.0, ("::1", 8080, 0, 0))
    assert board.read(0).request_line == "GET /?\xff HTTP/1.1"
    assert board.read(0).client == "[::1]:8080"
    meter.begin("POST / HTTP/1.0", 3.0, "")  # AF_UNIX: no address
    assert (board.read(0).request_line, board.read(0).client) == ("POST / HTTP/1.0", "")


def test_the_dead_slot_writers_are_gone() -> None:
    slot = Scoreboard(1).slot(0)
    for name in ("counts", "write_counters", "request_begins"):
        assert not hasattr(slot, name)


def test_a_refusal_is_counted_like_a_response() -> None:
    board = Scoreboard(1)
    meter = Meter(board.slot(0))
    assert Meter.current is meter
    duration = count_refusal(431, 120, time.monotonic() - 0.02)
    assert 20_000 <= duration < 10_000_000
    meter.refused(400, 80, time.monotonic())
    meter.response(exchange(200, 10, 0.0))
    meter.flush(0)
    view = board.read(0)
    assert (view.requests, view.bytes_sent) == (3, 210)
    assert view.codes() == {431: 1, 400: 1, 200: 1}
    assert view.counters[heartbeat.CLASS0 + 3] == 2
    assert sum(view.counters[heartbeat.BUCKET0:]) == 3


def test_the_protocol_keeps_a_refused_request_line_for_the_log() -> None:
    cases = [(b"GET /x HTTP/9.9\r\nHost: a\r\n\r\n", 505, "GET /x HTTP/9.9"),
             (b"GET /\x01 HTTP/1.1\r\n\r\n", 400, "GET /\x01 HTTP/1.1"),
             (b"GET /a HTTP/1.1\nHost: a\n\n", 400, "GET /a HTTP/1.1"),
             (b"GET /" + b"y" * 9000, 414, "GET /" + "y" * 8185)]
    for data, code, line in cases:
        proto = ServerConnection()
        proto.receive_data(data)
        with pytest.raises(ProtocolError) as caught:
            proto.next_event()
        assert (caught.value.status, caught.value.request_line) == (code, line)
    proto = ServerConnection()
    proto.receive_data(b"GET /partial HT")
    proto.next_event()
    error = ProtocolError(408, "request head not received in time")
    proto.error_response(error)
    assert error.request_line == "GET /partial HT"


def test_log_refusal_writes_one_access_line(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    access = logs.AccessLog(str(path))
    try:
        logs.log_refusal(("10.0.0.7", 5000), 'GET /"\x1b[2J HTTP/1.1', 400,
                         b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"x" * 96, 1500)
        logs.log_refusal(("10.0.0.8", 5001), "", 408, b"", 10_000_000)
        access.flush()
    finally:
        access.close()
    first, second = path.read_text().splitlines()
    assert first.startswith('10.0.0.7 - - [') and '"GET /\\"\\x1b[2J HTTP/1.1" 400 96 ' in first
    assert second.startswith("10.0.0.8 - - [") and '] "-" 408 - "-" "-" 10000000 ' in second
    logs.log_refusal(("10.0.0.9", 1), "GET / HTTP/1.1", 400, b"x", 1)  # no access log: no-op
    assert path.read_text().count("\n") == 2


# -- the snapshot and its renderings ---------------------------------------------------------
class FakeArbiter:
    """The attributes snapshot.collect reads from the real Arbiter."""

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
        self.meters: list[Meter] = []

    def add(self, slot: int, pid: int, number: int) -> Any:
        record = SimpleNamespace(pid=pid, number=number, generation=2, slot=slot, retiring="",
                                 replacing="", sample=Sample(True, 30.5, 1.25, 12.0))
        self.board.claim(slot, pid, 2, number, time.monotonic(), time.time())
        self.workers[pid] = record
        return record


def busy_arbiter(pidfile: str | None = None) -> tuple[FakeArbiter, Tally]:
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
    second.refused(400, 5, time.monotonic())
    second.flush(1)
    second.begin('GET /slow?"x"\x1b[31m HTTP/1.1', time.monotonic() - 2.5, ("10.1.2.3", 4567))
    arbiter.meters = [first, second]
    scratch = Scoreboard(1)
    gone = Meter(scratch.slot(0))
    for _ in range(7):
        gone.response(exchange(200, 1, 0.01))
    gone.flush(3)
    tally = Tally()
    tally.worker_exited(1, 99, 1, "timeout", "signal SIGKILL", scratch.read(0).counters,
                        time.time(), scratch.read(0).codes())
    tally.worker_exited(0, 98, 1, "max-requests", "exit code 0",
                        tuple([0] * heartbeat.COUNTERS), time.time())
    tally.worker_exited(2, 97, 1, "shutdown", "exit code 0", tuple([0] * heartbeat.COUNTERS),
                        time.time())
    tally.reloaded(True)
    return arbiter, tally


def test_collect_sums_live_and_gone_workers() -> None:
    arbiter, tally = busy_arbiter()
    snapshot = collect(arbiter, tally)
    json.dumps(snapshot)  # plain data
    requests = snapshot["requests"]
    assert requests["total"] == 4 + 2 + 7
    assert requests["by_class"] == {"1xx": 0, "2xx": 9, "3xx": 1, "4xx": 2, "5xx": 1}
    assert requests["by_code"] == {"200": 9, "301": 1, "400": 1, "404": 1, "500": 1}
    assert requests["bytes_sent"] == 4000 + 15 + 7
    assert snapshot["states"] == {"idle": 1, "handling": 1}
    slow = snapshot["workers"][1]
    assert slow["request"] == 'GET /slow?"x"\x1b[31m HTTP/1.1' and slow["client"] == \
        "10.1.2.3:4567"
    assert 2.4 < slow["request_seconds"] < 10
    assert snapshot["workers"][0]["request"] is None and snapshot["workers"][0]["client"] is None
    assert slow["rss_bytes"] == int(30.5 * 1024 * 1024) and slow["cpu_seconds"] == 1.25
    assert snapshot["exits"] == {"timeout": 1, "max-requests": 1, "shutdown": 1}
    assert snapshot["reloads"] == {"ok": 1, "failed": 0}
    master = snapshot["master"]
    assert master["generation"] == 2 and 64 < master["uptime"] < 100
    assert master["forkhttpd_version"] and master["python_version"].count(".") == 2


def test_master_process_figures_are_this_process() -> None:
    figures = master_process()
    assert figures["rss_bytes"] > 1_000_000 and figures["virtual_bytes"] >= figures["rss_bytes"]
    times = os.times()
    assert 0 < figures["cpu_seconds"] <= times.user + times.system + 0.01
    with open(os.devnull) as extra:
        assert master_process()["open_fds"] == figures["open_fds"] + 1
        assert extra.fileno() > 0
    assert figures["max_fds"] is None or figures["max_fds"] >= figures["open_fds"]


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def by_label(family: Any, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in family.samples}


def test_metrics_survive_prometheus_parsing() -> None:
    arbiter, tally = busy_arbiter()
    text = metrics.render_metrics(collect(arbiter, tally))
    found = families(text)
    assert by_label(found["forkhttpd_requests"], "status_class") == {
        "1xx": 0, "2xx": 9, "3xx": 1, "4xx": 2, "5xx": 1}
    assert by_label(found["forkhttpd_responses"], "code") == {
        "200": 9, "301": 1, "400": 1, "404": 1, "500": 1}
    histogram = found["forkhttpd_request_duration_seconds"]
    assert histogram.type == "histogram"
    buckets = [s for s in histogram.samples if s.name.endswith("_bucket")]
    values = [s.value for s in buckets]
    assert values == sorted(values) and buckets[-1].labels["le"] == "+Inf"
    count = next(s.value for s in histogram.samples if s.name.endswith("_count"))
    assert count == values[-1] == 13
    states = by_label(found["forkhttpd_workers"], "state")
    assert states["idle"] == 1 and states["handling"] == 1 and sum(states.values()) == 2
    restarts = by_label(found["forkhttpd_worker_restarts"], "reason")
    assert restarts["timeout"] == 1 and restarts["max-requests"] == 1 and restarts["rss"] == 0
    assert "shutdown" not in restarts and "ttou" not in restarts
    exits = by_label(found["forkhttpd_worker_exits"], "reason")
    assert exits["shutdown"] == 1 and exits["ttou"] == 0 and exits["timeout"] == 1
    rss = by_label(found["forkhttpd_worker_rss_bytes"], "pid")
    assert rss == {"101": int(30.5 * 1024 * 1024), "102": int(30.5 * 1024 * 1024)}
    assert by_label(found["forkhttpd_reloads"], "result") == {"ok": 1, "failed": 0}
    assert found["forkhttpd_generation"].samples[0].value == 2
    (build,) = found["forkhttpd_build_info"].samples
    assert build.value == 1 and build.labels["version"] and build.labels["python"]
    assert found["process_cpu_seconds"].type == "counter"
    assert found["process_cpu_seconds"].samples[0].value > 0
    assert found["process_resident_memory_bytes"].samples[0].value > 1_000_000
    assert found["process_open_fds"].samples[0].value >= 3
    assert found["process_start_time_seconds"].samples[0].value == pytest.approx(
        time.time() - 65, abs=5)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_metrics_pass_promtool() -> None:
    arbiter, tally = busy_arbiter()
    text = metrics.render_metrics(collect(arbiter, tally))
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_metric_labels_are_escaped() -> None:
    arbiter, tally = busy_arbiter()
    tally.worker_exited(3, 5, 1, 'odd "reason"\\\n', "?", tuple([0] * heartbeat.COUNTERS), 0.0)
    found = families(metrics.render_metrics(collect(arbiter, tally)))
    reasons = {s.labels["reason"] for s in found["forkhttpd_worker_restarts"].samples}
    assert 'odd "reason"\\\n' in reasons


def test_table_and_summary() -> None:
    arbiter, tally = busy_arbiter()
    snapshot = collect(arbiter, tally, rps=12.5)
    table = status_cli.render_table(snapshot)
    rows = table.splitlines()
    header = next(i for i, row in enumerate(rows) if row.lstrip().startswith("WORKER"))
    assert len(rows) == header + 3
    assert rows[header].split()[-2:] == ["CLIENT", "REQUEST"]
    busy = rows[header + 2]
    assert "handling" in busy
    assert re.search(r' 10\.1\.2\.3:4567 +GET /slow\?"x"\\x1b\[31m HTTP/1\.1 for 2\.5s$', busy)
    assert "'" not in busy and "\x1b" not in table
    assert not rows[header + 1].endswith(" ")
    assert "generation 2" in rows[0] and "timeout 1" in table and "12.5 req/s" in table
    line = status.summary(snapshot)
    assert line == ("2 workers (1 busy, 1 idle); 12.5 req/s; generation 2; "
                    "last reload: ok: generation 2")
    assert json.loads(status_cli.render_json(snapshot, compact=True)) == json.loads(
        status_cli.render_json(snapshot))
    assert status_cli.render_json(snapshot, compact=True).count("\n") == 1


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    assert status_cli.printable('GET /a?b="c" HTTP/1.1') == 'GET /a?b="c" HTTP/1.1'
    assert status_cli.printable("GET /\x1b]0;x\x07\\\xff\u20ac") == \
        "GET /\\x1b]0;x\\x07\\\\\\xff\\u20ac"


# -- --watch --------------------------------------------------------------------------------
class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_watch_repeats_until_ctrl_c_then_exits_0() -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds
        if len(slept) == 3:
            raise KeyboardInterrupt

    def frame(out: Any) -> int:
        clock[0] += 0.5  # rendering takes time: the period still holds
        out.write(f"frame at {clock[0]:.1f}\n")
        return 0

    for tty in (False, True):
        clock[0], slept[:] = 100.0, []
        out = FakeTerminal(tty)
        assert status_cli.watch(frame, 2.0, out, clock=lambda: clock[0], sleep=sleep) == 0
        assert slept == [1.5, 1.5, 1.5]
        text = out.getvalue()
        assert text.count("frame at") == 3
        assert text.count(status_cli.CLEAR) == (3 if tty else 0)


def test_watch_stops_with_the_code_of_a_frame_that_fails() -> None:
    codes = iter([0, 0, 3])
    out = FakeTerminal(False)
    assert status_cli.watch(lambda out: next(codes), 0.1, out, sleep=lambda s: None) == 3


# -- the status file ------------------------------------------------------------------------
def test_status_file_round_trip(tmp_path: Path) -> None:
    pidfile = tmp_path / "app.pid"
    assert status_file.status_path(str(pidfile)) == str(tmp_path / "app.status.json")
    with pytest.raises(status_file.NotRunning, match="no status file"):
        status_file.read_status(str(pidfile))
    arbiter, tally = busy_arbiter(str(pidfile))
    observer = status.Observer(arbiter)
    observer.tally = tally
    observer.step([], [], time.monotonic())
    path = tmp_path / "app.status.json"
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    shown = status_file.read_status(str(pidfile))
    assert shown["workers"][1]["state"] == "handling" and shown["age"] < 5
    assert shown["master"]["pid"] == os.getpid()
    assert [p.name for p in tmp_path.iterdir()] == ["app.status.json"]  # no temporary left
    pidfile.write_text("1\n")  # another master's file
    with pytest.raises(status_file.NotRunning, match="names pid 1"):
        status_file.read_status(str(pidfile))
    pidfile.write_text(f"{os.getpid()}\n")
    assert status_file.read_status(str(pidfile))
    path.write_text('{"half": ')
    with pytest.raises(status_file.NotRunning, match="cannot read"):
        status_file.read_status(str(pidfile))
    path.write_text('{"master": {}}')
    with pytest.raises(status_file.NotRunning, match="cannot read"):
        status_file.read_status(str(pidfile))
    observer.close()
    assert not path.exists()


def test_requests_per_second_from_the_periodic_pass() -> None:
    arbiter, tally = busy_arbiter()
    observer = status.Observer(arbiter)
    now = time.monotonic()
    observer.step([], [], now)
    meter = arbiter.meters[0]
    for _ in range(30):
        meter.response(exchange(200, 1, 0.0))
    meter.flush(0)
    observer.step([], [], now + 2.0)
    assert observer.rps == pytest.approx(15.0)


# -- the status endpoint --------------------------------------------------------------------
class Endpoint:
    """A StatusServer whose clients are socketpairs: the test holds the client ends."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # never accepts
        self.paths: list[str] = []
        self.server = StatusServer(self.listener, self.answer)
        self.now = 1000.0

    def answer(self, path: str) -> tuple[int, str, bytes]:
        self.paths.append(path)
        if path == "/boom":
            raise RuntimeError("a bug in a status page")
        return 200, "application/json", b'{"you asked": "%s"}' % path.encode()

    def client(self) -> socket.socket:
        ours, theirs = socket.socketpair()
        assert self.server.adopt(theirs, self.now)
        ours.settimeout(2)
        return ours

    def turn(self) -> None:
        """One pass of the master's loop: every fd is offered (the server must cope with
        an fd that is not really ready: it never blocks)."""
        self.server.step(set(self.server.read_fds()), set(self.server.write_fds()), self.now)

    def exchange(self, request: bytes) -> bytes:
        sock = self.client()
        sock.sendall(request)
        self.turn()
        self.turn()
        sock.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
        self.turn()
        sock.close()
        return answer


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = Endpoint()
    yield served
    served.server.close()


def head_and_body(answer: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def test_endpoint_answers_get_and_head(endpoint: Endpoint) -> None:
    lines, body = head_and_body(endpoint.exchange(
        b"GET /metrics?x=1 HTTP/1.1\r\nHost: status\r\n\r\n"))
    assert lines[0] == b"HTTP/1.1 200 OK" and body == b'{"you asked": "/metrics"}'
    assert b"Content-Type: application/json" in lines and b"Cache-Control: no-store" in lines
    assert b"Connection: close" in lines and b"Content-Length: 25" in lines
    lines, body = head_and_body(endpoint.exchange(b"HEAD /status HTTP/1.0\r\n\r\n"))
    assert lines[0] == b"HTTP/1.1 200 OK" and b"Content-Length: 24" in lines and body == b""
    assert endpoint.paths == ["/metrics", "/status"]
    assert not endpoint.server.clients  # each closed after its answer and the client's EOF


@pytest.mark.parametrize(("request_bytes", "status"), [
    pytest.param(b"GET /status HTTP/1.1\n\n", 400, id="bare-LF"),
    pytest.param(b"GET /status HTTP/1.1\r\n\r\n", 400, id="no-Host"),
    pytest.param(b"GET /status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two-Hosts"),
    pytest.param(b"GET /status HTTP/3.0\r\nHost: a\r\n\r\n", 505, id="version"),
    pytest.param(b"GET /" + b"s" * 3000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, id="long-line"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 3000 + b"\r\n\r\n", 431,
                 id="long-field"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999\r\n\r\n", 413,
                 id="big-body"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n", 400, id="CL-and-TE"),
])
def test_endpoint_parses_strictly(endpoint: Endpoint, request_bytes: bytes,
                                  status: int) -> None:
    lines, body = head_and_body(endpoint.exchange(request_bytes))
    assert lines[0].startswith(b"HTTP/1.1 %d " % status) and b"Connection: close" in lines
    assert body and b"\n" not in body[:-1]  # a short reason, one line
    assert endpoint.paths == []


def test_endpoint_other_methods_and_failures(endpoint: Endpoint) -> None:
    lines, body = head_and_body(endpoint.exchange(
        b"POST /status HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"))
    assert lines[0] == b"HTTP/1.1 405 Method Not Allowed" and b"Allow: GET, HEAD" in lines
    assert body == b"GET or HEAD only\n"
    lines, body = head_and_body(endpoint.exchange(b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert lines[0] == b"HTTP/1.1 500 Internal Server Error" and body == b"internal error\n"


def test_endpoint_waits_for_a_head_in_pieces_and_answers_once(endpoint: Endpoint) -> None:
    sock = endpoint.client()
    for piece in (b"GET /st", b"atus HTTP/1.1\r\nHo", b"st: a\r\n", b"\r\nGET /again HTTP/1.1"
                  b"\r\nHost: a\r\n\r\n"):
        endpoint.turn()
        assert endpoint.paths == []
        sock.sendall(piece)
    endpoint.turn()
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'"/status"}')
    assert sock.recv(10) == b""  # the server's FIN: one request per connection
    sock.sendall(b"more bytes the server drops")
    endpoint.turn()
    assert endpoint.paths == ["/status"] and endpoint.server.clients  # lingering to EOF
    sock.close()
    endpoint.turn()
    assert not endpoint.server.clients


def test_endpoint_lets_slow_clients_go_at_the_deadline(endpoint: Endpoint) -> None:
    silent = endpoint.client()
    partial = endpoint.client()
    partial.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
    endpoint.turn()
    assert len(endpoint.server.clients) == 2
    endpoint.now += endpoint.server.DEADLINE
    endpoint.turn()
    assert not endpoint.server.clients
    assert silent.recv(100) == b"" and partial.recv(100) == b""
    silent.close()
    partial.close()


def test_endpoint_limits_open_connections(endpoint: Endpoint) -> None:
    held = [endpoint.client() for _ in range(endpoint.server.MAX_CLIENTS)]
    ours, theirs = socket.socketpair()
    assert not endpoint.server.adopt(theirs, endpoint.now)
    assert ours.recv(10) == b""  # closed at once
    assert len(endpoint.server.clients) == endpoint.server.MAX_CLIENTS
    for sock in [ours, *held]:
        sock.close()


def test_endpoint_reads_a_body_of_many_tiny_chunks_in_one_turn(endpoint: Endpoint) -> None:
    body = b"1\r\nx\r\n" * 300 + b"0\r\n\r\n"
    lines, _body = head_and_body(endpoint.exchange(
        b"GET /status HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body))
    assert lines[0] == b"HTTP/1.1 200 OK" and endpoint.paths == ["/status"]
