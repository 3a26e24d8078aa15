"""Observability end to end: the status table (and --watch) and /status during a slow request,
/metrics through prometheus_client's parser (and promtool when installed), requests the
protocol refuses in the access log and the counters, the status port's strict parsing, the
JSON access log against hostile request lines, USR1 rotation under load, the stack of a worker
killed for a timeout, and systemd's STATUS= line."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

import forkhttpd

from .harness import REPO, Server, StartServer, wait_until

APP = ("--app", "observe_app:handler")


def status_port(log_text: str) -> int:
    match = re.search(r"status server on http://127\.0\.0\.1:(\d+)/", log_text)
    assert match, log_text
    return int(match[1])


def fetch(port: int, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        conn.close()


def metric_samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, kind, body = fetch(port, "/metrics")
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}


def status_cli(pidfile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "forkhttpd", "status", "--pid", str(pidfile),
                           *args], env=env, capture_output=True, text=True, timeout=10)


def in_background(server: Server, path: str) -> threading.Thread:
    def run() -> None:
        try:
            server.request("GET", path, timeout=20)
        except (OSError, http.client.HTTPException):
            pass  # a worker killed under the request
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_status_shows_the_slow_request_and_never_blocks_the_master(
        start_server: StartServer, tmp_path: Path) -> None:
    pidfile = tmp_path / "srv.pid"
    server = start_server(*APP, "--workers", "2", "--pid", str(pidfile),
                          "--status-bind", "127.0.0.1:0")
    port = status_port(server.stderr)
    # a client that connects to the status port and says nothing must not hold anything up
    silent = socket.create_connection(("127.0.0.1", port))
    try:
        slow = in_background(server, "/slow?s=4")
        shown: dict[str, Any] = {}

        def table_shows_it() -> bool:
            result = status_cli(pidfile)
            shown["table"] = result.stdout
            return result.returncode == 0 and " GET /slow?s=4 HTTP/1.1 for " in result.stdout
        assert wait_until(table_shows_it, timeout=3.5), shown
        row = next(line for line in shown["table"].splitlines() if "GET /slow" in line)
        assert " handling " in row and f" {server.pid}" not in row and "'" not in row
        assert re.search(r" 127\.0\.0\.1:\d+ +GET /slow", row), row
        assert f"master pid {server.pid}" in shown["table"]
        assert "generation 1" in shown["table"] and "listening on 127.0.0.1:" in shown["table"]

        snapshot = json.loads(status_cli(pidfile, "--json").stdout)
        busy = [w for w in snapshot["workers"] if w["state"] == "handling"]
        assert [w["request"] for w in busy] == ["GET /slow?s=4 HTTP/1.1"]
        assert re.fullmatch(r"127\.0\.0\.1:\d+", busy[0]["client"])
        assert busy[0]["rss_bytes"] > 1_000_000 and busy[0]["generation"] == 1
        assert snapshot["master"]["pid"] == server.pid and snapshot["age"] < 3

        status, kind, body = fetch(port, "/status")
        live = json.loads(body)
        assert status == 200 and kind == "application/json"
        busy = [w for w in live["workers"] if w["state"] == "handling"]
        assert busy and busy[0]["request"] == "GET /slow?s=4 HTTP/1.1"
        assert busy[0]["request_seconds"] > 0.1 and live["master"]["pid"] == server.pid
        assert {w["pid"] for w in live["workers"]} == set(server.worker_pids())
        # the master loop still runs: a signal is acted on, a request answered, at once
        server.send_signal(signal.SIGTTIN)
        server.wait_for_log("TTIN: 3 workers wanted", timeout=2)
        assert server.request("GET", "/")[0] == 200
        slow.join(10)
    finally:
        silent.close()
    assert fetch(port, "/nowhere")[0] == 404
    server.stop()
    assert not (tmp_path / "srv.status.json").exists()
    result = status_cli(pidfile)
    assert result.returncode == 3 and "not running" in result.stdout


def test_metrics_count_requests_exits_and_reloads(start_server: StartServer,
                                                  tmp_path: Path) -> None:
    server = start_server(*APP, "--workers", "1", "--max-requests", "4",
                          "--status-bind", "127.0.0.1:0")
    port = status_port(server.stderr)
    codes = [200, 201, 204, 302, 404, 404, 503, 200, 200]
    for code in codes:
        assert server.request("GET", f"/status?code={code}")[0] == code
    assert server.request("GET", "/boom")[0] == 500
    codes.append(500)
    deadline = time.monotonic() + 8
    while (server.stderr.count("exited: reason=max-requests") < 2
           and time.monotonic() < deadline):
        assert server.request("GET", "/status?code=200")[0] == 200  # until two recycles
        codes.append(200)
        time.sleep(0.05)
    server.send_signal(signal.SIGHUP)
    server.wait_for_log("exited: reason=reload")
    expected = {f"{n}xx": sum(1 for code in codes if code // 100 == n) for n in range(1, 6)}

    def counted() -> bool:
        samples = metric_samples(port)
        return all(samples[("forkhttpd_requests_total", (("status_class", k),))] == v
                   for k, v in expected.items())
    assert wait_until(counted, timeout=3), metric_samples(port)
    samples = metric_samples(port)
    assert samples[("forkhttpd_request_duration_seconds_count", ())] == len(codes)
    assert samples[("forkhttpd_request_duration_seconds_bucket", (("le", "+Inf"),))] == \
        len(codes)
    assert samples[("forkhttpd_request_duration_seconds_sum", ())] > 0
    assert samples[("forkhttpd_response_bytes_total", ())] > len(codes) * 50
    log = server.stderr
    exits = {reason: log.count(f"exited: reason={reason},")
             for reason in ("max-requests", "reload")}
    assert exits["max-requests"] >= 2 and sum(exits.values()) >= 3
    for reason, count in exits.items():
        assert samples[("forkhttpd_worker_restarts_total", (("reason", reason),))] == count
        assert samples[("forkhttpd_worker_exits_total", (("reason", reason),))] == count
    assert samples[("forkhttpd_worker_restarts_total", (("reason", "timeout"),))] == 0
    for code in set(codes):
        assert samples[("forkhttpd_responses_total", (("code", str(code)),))] == \
            codes.count(code)
    assert samples[("forkhttpd_reloads_total", (("result", "ok"),))] == 1
    assert samples[("forkhttpd_reloads_total", (("result", "failed"),))] == 0
    assert samples[("forkhttpd_generation", ())] == 2
    states = {labels[0][1]: value for (name, labels), value in samples.items()
              if name == "forkhttpd_workers"}
    assert sum(states.values()) == 1 and states["idle"] + states["keep-alive"] == 1
    rss = [value for (name, _), value in samples.items() if name == "forkhttpd_worker_rss_bytes"]
    assert len(rss) == 1 and rss[0] > 1_000_000
    assert samples[("forkhttpd_listen_backlog", (("listener", f"127.0.0.1:{server.port}"),))] \
        > 0


def test_json_access_log_survives_hostile_request_lines(start_server: StartServer,
                                                        tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    server = start_server(*APP, "--access-logfile", str(access), "--access-log-format", "json")
    hostile = [b'GET /"quoted"\\back\\"slash HTTP/1.1', b"GET /\xff\xfe\xc3(\xe2\x82 HTTP/1.1",
               b'GET /{"a":[1]}<script> HTTP/1.1', b"GET /\x01\x1b[31m HTTP/1.1"]
    for line in hostile:
        server.raw(line + b"\r\nHost: x\r\nUser-Agent: \"evil\"\t\xff\\\r\n"
                   b"Referer: a\\\"b\r\nConnection: close\r\n\r\n")
    assert wait_until(lambda: access.read_text().count("\n") >= 4, timeout=3)
    time.sleep(0.4)
    records = [json.loads(line) for line in access.read_bytes().decode("utf-8").splitlines()]
    # UTF-8 stays text; a byte that is not UTF-8 shows as \xNN text (ops: issue 17, item 3)
    assert [r["request"] for r in records] == [line.decode("utf-8", "backslashreplace")
                                               for line in hostile]
    for record in records[:3]:
        assert record["user_agent"] == '"evil"\t\\xff\\' and record["referer"] == 'a\\"b'
        assert record["status"] == 200
    refused = records[3]  # control bytes in the target: refused, logged with what is known
    assert (refused["status"], refused["user_agent"], refused["referer"]) == (400, "", "")
    for record in records:
        assert record["pid"] in server.worker_pids()
        assert record["peer"] == "127.0.0.1" and record["duration_us"] >= 0


def test_usr1_rotation_under_load_loses_nothing(start_server: StartServer, tmp_path: Path) -> None:
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    server = start_server(*APP, "--workers", "2", "--access-logfile", str(access),
                          "--access-log-format", "json", "--error-logfile", str(errors),
                          ready=False)
    assert wait_until(lambda: errors.exists() and "serving on" in errors.read_text(), 15)
    done: list[str] = []
    stop = threading.Event()

    def load(name: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        number = 0
        while not stop.is_set():
            path = f"/load/{name}-{number}"
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            done.append(path)
            number += 1
        conn.close()

    threads = [threading.Thread(target=load, args=(str(n),)) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.7)
    access.rename(tmp_path / "access.log.1")  # logrotate's create mode: rename, create, USR1
    errors.rename(tmp_path / "error.log.1")
    access.touch()
    errors.touch()
    server.send_signal(signal.SIGUSR1)
    time.sleep(0.7)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert server.request("GET", "/boom")[0] == 500  # a worker writes to the new error log
    assert server.stop() == 0

    logged = [json.loads(line)["request"].split()[1]
              for path in (tmp_path / "access.log.1", access)
              for line in path.read_text().splitlines()]
    loaded = [path for path in logged if path.startswith("/load/")]
    assert len(done) > 50
    assert sorted(loaded) == sorted(done)  # every request exactly once across the two files
    assert access.read_text() and (tmp_path / "access.log.1").read_text()
    new_errors = errors.read_text()
    prefix = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \[\d+\] "
                        r"\[(master|worker \d+)\] (INFO|WARNING|ERROR) ")
    assert all(prefix.match(line) for line in new_errors.splitlines()), new_errors
    assert re.search(r"\[worker \d+\] ERROR error handling 'GET /boom", new_errors)
    assert re.search(r"\[worker \d+\] ERROR RuntimeError: observability test error", new_errors)
    assert "[master] INFO stopped" in new_errors
    assert "observability test error" not in (tmp_path / "error.log.1").read_text()


def test_timeout_kill_logs_stack_and_request_and_counts_it(start_server: StartServer,
                                                           tmp_path: Path) -> None:
    errors, pidfile = tmp_path / "error.log", tmp_path / "srv.pid"
    server = start_server(*APP, "--workers", "1", "--timeout", "1", "--error-logfile",
                          str(errors), "--status-bind", "127.0.0.1:0", "--pid", str(pidfile),
                          ready=False)
    assert wait_until(lambda: errors.exists() and "serving on" in errors.read_text(), 15)
    port = status_port(errors.read_text())
    # a handler in Python code: interrupted, its stack logged with the request line
    assert server.request("GET", "/slow?s=30")[0] == 503
    log = errors.read_text()
    assert re.search(r"\[worker 1\] ERROR handler timed out on 'GET /slow\?s=30 HTTP/1\.1'",
                     log), log
    assert re.search(r"\[worker 1\] ERROR .*observe_app\.py\", line \d+, in handler", log)
    # a handler stuck where no alarm reaches: faulthandler's dump, then the kill
    # (the worker that recovered from the alarm is replaced too, also for reason=timeout)
    in_background(server, "/stuck")
    assert wait_until(lambda: "Fatal Python error: Aborted" in errors.read_text()
                      and "reason=timeout, signal SIGABRT" in errors.read_text(), timeout=15), \
        errors.read_text()
    log = errors.read_text()
    assert re.search(r"\[master\] ERROR worker \d+ \(pid \d+\) silent for more than 1\.0s "
                     r"while serving 'GET /stuck HTTP/1\.1'", log), log
    assert "Fatal Python error: Aborted" in log
    stack = log[log.index("Fatal Python error"):]
    assert "stuck_where_no_alarm_reaches" in stack and "observe_app.py" in stack
    assert log.index("stuck_where_no_alarm_reaches") < log.rindex("reason=timeout")
    samples = metric_samples(port)
    exits = samples[("forkhttpd_worker_restarts_total", (("reason", "timeout"),))]
    assert exits >= 1 and exits == errors.read_text().count("exited: reason=timeout")
    assert wait_until(lambda: "timeout 1" in status_cli(pidfile).stdout, timeout=3)
    assert server.request("GET", "/")[0] == 200  # replaced


def test_systemd_status_line(start_server: StartServer, tmp_path: Path) -> None:
    address = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(address)
    notify.settimeout(0.2)
    try:
        server = start_server(*APP, "--workers", "2", env={"NOTIFY_SOCKET": address})
        lines: list[str] = []

        def status_with_traffic() -> bool:
            server.request("GET", "/")
            try:
                lines.extend(notify.recv(4096).decode().splitlines())
            except TimeoutError:
                pass
            return any(re.fullmatch(r"STATUS=2 workers \(\d busy, \d idle\); [1-9][\d.]* req/s; "
                                    r"generation 1", line) for line in lines)
        assert wait_until(status_with_traffic, timeout=6), lines
        assert "READY=1" in lines
    finally:
        notify.close()


def test_combined_access_log_on_stdout(start_server: StartServer) -> None:
    server = start_server(*APP, "--access-logfile", "-")
    server.raw(b'GET /say"hi"\\\xff HTTP/1.1\r\nHost: x\r\nUser-Agent: t "q"\r\n'
               b"Referer: http://r/\r\nConnection: close\r\n\r\n")
    assert wait_until(lambda: "GET /say" in server.stdout, timeout=3)
    (line,) = server.stdout.splitlines()
    match = re.fullmatch(r'127\.0\.0\.1 - - \[[^]]+\] "GET /say\\"hi\\"\\\\\\xff HTTP/1\.1" 200 '
                         r'\d+ "http://r/" "t \\"q\\"" (\d+) (\d+)', line)
    assert match, line
    assert int(match[2]) in server.worker_pids()


def test_worker_states_idle_keep_alive_reading(start_server: StartServer) -> None:
    server = start_server(*APP, "--workers", "1", "--status-bind", "127.0.0.1:0")
    port = status_port(server.stderr)

    def state_is(wanted: str) -> bool:
        return [w["state"] for w in json.loads(fetch(port, "/status")[2])["workers"]] == [wanted]
    assert wait_until(lambda: state_is("idle"), timeout=3)
    kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    partial = socket.create_connection(("127.0.0.1", server.port))
    try:
        kept.request("GET", "/")
        assert kept.getresponse().read() == b"ok"
        assert wait_until(lambda: state_is("keep-alive"), timeout=3)
        partial.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert wait_until(lambda: state_is("reading"), timeout=3)
    finally:
        kept.close()
        partial.close()
    assert wait_until(lambda: state_is("idle"), timeout=3)


REFUSALS = [  # (what a client sends, the status, the request line the access log shows)
    (b"GET /\x01bad HTTP/1.1\r\nHost: x\r\n\r\n", 400, "GET /\\x01bad HTTP/1.1"),
    (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "GET /" + "a" * 195),
    (b"GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 400 + b"\r\n\r\n", 431,
     "GET /big HTTP/1.1"),
    (b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413, "POST /up HTTP/1.1"),
    (b"GET /two HTTP/2.0\r\nHost: x\r\n\r\n", 505, "GET /two HTTP/2.0"),
    (b"GET /late HTTP/1.1\r\nHost: x\r\n", 408, "GET /late HTTP/1.1"),  # never finished
]


def test_refused_requests_are_logged_and_counted(start_server: StartServer, tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    server = start_server(*APP, "--workers", "1", "--access-logfile", str(access),
                          "--status-bind", "127.0.0.1:0", "--limit-request-line", "200",
                          "--limit-request-field_size", "300", "--limit-request-body", "1000",
                          "--header-timeout", "1")
    port = status_port(server.stderr)
    assert server.request("GET", "/")[0] == 200
    for data, status, _line in REFUSALS:
        answer = server.raw(data)
        assert answer.startswith(b"HTTP/1.1 %d " % status), (data[:40], answer[:60])
    assert wait_until(lambda: access.read_text().count("\n") == 1 + len(REFUSALS), timeout=3), \
        access.read_text()
    durations = []
    for (_data, status, line), logged in zip(REFUSALS, access.read_text().splitlines()[1:],
                                             strict=True):
        match = re.fullmatch(r'127\.0\.0\.1 - - \[[^]]+\] "(.*)" (\d{3}) (\d+) "-" "-" (\d+) '
                             r'(\d+)', logged)
        assert match, logged
        assert (match[1], int(match[2])) == (line, status)
        # the size is the error body's bytes (Apache's %b), not the head's
        assert int(match[3]) > 10 and int(match[5]) in server.worker_pids()
        durations.append(int(match[4]))
    assert durations[-1] >= 900_000  # the 408 came after --header-timeout 1

    def counted() -> bool:
        samples = metric_samples(port)
        return samples[("forkhttpd_requests_total", (("status_class", "4xx"),))] == 5
    assert wait_until(counted, timeout=3), metric_samples(port)
    samples = metric_samples(port)
    assert samples[("forkhttpd_requests_total", (("status_class", "5xx"),))] == 1
    assert samples[("forkhttpd_request_duration_seconds_count", ())] == 1 + len(REFUSALS)
    for _data, status, _line in REFUSALS:
        assert samples[("forkhttpd_responses_total", (("code", str(status)),))] == 1
    assert samples[("forkhttpd_responses_total", (("code", "200"),))] == 1


def test_status_port_parses_like_every_other_port(start_server: StartServer) -> None:
    server = start_server(*APP, "--workers", "1", "--status-bind", "127.0.0.1:0")
    port = status_port(server.stderr)

    def raw(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(data)
            return b"".join(iter(lambda: sock.recv(65536), b""))
    assert raw(b"GET /status HTTP/1.1\n\n").startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert raw(b"GET /status HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")  # no Host
    assert raw(b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 414 ")
    answer = raw(b"DELETE /status HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET, HEAD\r\n" in answer
    answer = raw(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nConnection: close" in head
    assert json.loads(body)["master"]["pid"] == server.pid
    assert server.request("GET", "/")[0] == 200  # the master carried on


def test_master_process_metrics_and_build_info(start_server: StartServer) -> None:
    server = start_server(*APP, "--workers", "1", "--status-bind", "127.0.0.1:0")
    port = status_port(server.stderr)
    samples = metric_samples(port)
    fds = len(os.listdir(f"/proc/{server.pid}/fd"))
    assert abs(samples[("process_open_fds", ())] - fds) <= 2
    assert samples[("process_resident_memory_bytes", ())] > 5_000_000
    assert samples[("process_cpu_seconds_total", ())] > 0
    assert abs(samples[("process_start_time_seconds", ())] - time.time()) < 60
    builds = [labels for (name, labels), value in samples.items()
              if name == "forkhttpd_build_info" and value == 1]
    assert len(builds) == 1 and ("version", forkhttpd.__version__) in builds[0]
    if shutil.which("promtool") is not None:
        text = fetch(port, "/metrics")[2]
        result = subprocess.run(["promtool", "check", "metrics"], input=text,
                                capture_output=True, timeout=30)
        assert result.returncode == 0 and not result.stdout + result.stderr, result


def test_status_watch_refreshes_until_ctrl_c(start_server: StartServer, tmp_path: Path) -> None:
    pidfile = tmp_path / "srv.pid"
    server = start_server(*APP, "--workers", "1", "--pid", str(pidfile))
    assert wait_until(lambda: status_cli(pidfile).returncode == 0, timeout=5)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    watchers: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    for args in (["--watch", "0.2"], ["--json", "--watch", "0.2"]):
        out, err = tmp_path / f"watch{len(watchers)}.out", tmp_path / f"watch{len(watchers)}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            watchers.append((subprocess.Popen(
                [sys.executable, "-m", "forkhttpd", "status", "--pid", str(pidfile), *args],
                env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL), out, err))
    try:
        table, json_lines = watchers
        assert wait_until(lambda: table[1].read_text().count("forkhttpd master pid") >= 3, 10)
        assert wait_until(lambda: json_lines[1].read_text().count("\n") >= 3, 10)
        table[0].send_signal(signal.SIGINT)
        assert table[0].wait(10) == 0
        assert table[2].read_text() == ""  # no traceback
        frames = table[1].read_text()
        assert "\x1b[" not in frames and frames.count("WORKER") >= 3
        for line in json_lines[1].read_text().splitlines():
            assert json.loads(line)["master"]["pid"] == server.pid
        assert server.stop() == 0  # the master goes: the watch says so and ends
        assert json_lines[0].wait(10) == 3
        assert json_lines[1].read_text().endswith(
            f"forkhttpd is not running (master pid {server.pid} has exited)\n")
        assert json_lines[2].read_text() == ""
    finally:
        for process, _out, _err in watchers:
            if process.poll() is None:
                process.kill()
                process.wait(5)
    bad = status_cli(pidfile, "--watch", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "argument --watch: expected 0.1 to 86400 seconds, got 0" in bad.stderr
