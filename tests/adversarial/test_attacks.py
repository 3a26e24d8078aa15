"""Hostile clients against a real forkhttpd (2 workers): during and after each attack a
measuring client must keep being answered, and the workers' descriptors and memory must come
back to what they were before it (issue 19)."""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Callable

from integration.harness import wait_until

from .attacks import (
    HOSTILE_HEADS,
    RANGE_HEADS,
    connect,
    during,
    forking_handler,
    hanging_handler,
    held_connections,
    hostile_heads,
    leaking_handler,
    never_read,
    pipeline_flood,
    probe_after,
    read_until_close,
    slowloris_bodies,
    slowloris_heads,
    status_of,
)
from .conftest import Hostile, workers_usage

Start = Callable[..., Hostile]


def test_pipelining_flood_to_the_keep_alive_limit(hostile: Start) -> None:
    # issue 19 item 1: 40 bursts of 50 pipelined GETs on two connections; after 1000
    # answers (--max-keepalive-requests) each connection is closed, and the worker must
    # go on serving, not spin
    server = hostile()
    seen, probe, after = during(server.port, lambda: pipeline_flood(server.port))
    assert seen["answers per connection"] == [1000, 1000]
    assert probe.all_ok, probe.failures
    assert after.all_ok, after.failures
    assert server.same_workers(), "a worker had to be replaced"
    server.recovered()


def test_pipelining_flood_with_connection_close(hostile: Start) -> None:
    # the same with request 25 asking for the close: 26 answers, then the end
    server = hostile()
    seen, probe, after = during(server.port,
                                lambda: pipeline_flood(server.port, close_at=25))
    assert seen["answers per connection"] == [26, 26]
    assert probe.all_ok and after.all_ok, probe.failures + after.failures
    assert server.same_workers(), "a worker had to be replaced"
    server.recovered()


def test_slowloris_heads_are_cut_at_the_header_timeout(shared: Hostile) -> None:
    server = shared
    seen, probe, after = during(server.port,
                                lambda: slowloris_heads(server.port, 100, seconds=3.0))
    assert seen["still open at the end"] == 0, seen  # --header-timeout 2 ended every one
    assert set(seen["cut by the server"]) <= {"408", "closed"}, seen
    assert probe.all_ok and after.all_ok, probe.failures + after.failures
    server.recovered()


def test_slowloris_bodies_are_cut_below_the_minimum_rate(shared: Hostile) -> None:
    server = shared
    seen, probe, after = during(server.port,
                                lambda: slowloris_bodies(server.port, 2, seconds=4.0))
    assert seen["still open at the end"] == 0, seen
    assert set(seen["cut by the server"]) <= {"408", "closed"}, seen
    assert probe.all_ok and after.all_ok, probe.failures + after.failures
    assert server.same_workers()
    server.recovered()


def test_clients_that_never_read(shared: Hostile) -> None:
    # a 32 MiB streamed answer to a client that reads nothing holds a worker until the
    # send gives up (or --timeout): the other one serves, and nothing stays behind
    server = shared
    _, probe, after = during(server.port, lambda: never_read(server.port, 1, seconds=2.0))
    assert probe.all_ok and after.all_ok, probe.failures + after.failures
    server.recovered()


def test_many_connections_held_without_a_byte(shared: Hostile) -> None:
    server = shared
    seen, probe, after = during(server.port,
                                lambda: held_connections(server.port, 300, seconds=5.0))
    assert seen["opened"] == 300
    assert seen["closed by the server"] == 300, seen  # --header-timeout 2
    assert probe.all_ok and after.all_ok, probe.failures + after.failures
    assert server.same_workers()
    server.recovered()


def test_a_thousand_hostile_heads_get_4xx_and_leak_nothing(shared: Hostile) -> None:
    # issue 19 items 3 and 7: oversized numbers and fields, a Range with 5,000 digits on
    # a static file (it leaked the opened file before), duplicate Transfer-Encoding
    server = shared
    heads = {**HOSTILE_HEADS, **RANGE_HEADS}
    rounds = -(-1000 // len(heads))  # at least 1,000 requests
    seen, probe, after = during(server.port,
                                lambda: hostile_heads(server.port, heads, rounds=rounds))
    expected = {
        "5,000-digit Content-Length": "400", "5,000-digit chunk size": "400",
        "5,000-digit minor version": "400", "5,000-digit Host port": "400",
        "5,000-digit Expect": "417", "5,000-digit If-Modified-Since": "200",
        "20 KB field line": "431", "500 field lines": "431", "20 KB request line": "414",
        "TE twice": "400", "5,000-digit Range start": "416",
        "5,000-digit Range suffix": "206",
    }
    assert {name: dict(counts) for name, counts in seen.items()} == {
        name: {status: rounds} for name, status in expected.items()}
    assert probe.all_ok and after.all_ok, probe.failures + after.failures
    assert server.same_workers()
    assert "Traceback" not in server.log
    server.recovered()


def test_a_forked_child_does_not_hold_the_client(hostile: Start) -> None:
    # issue 19 item 4: the handler forks a child that keeps the socket for 4 s; the HTTP/1.0
    # client of the streamed answer must see its end (the close) long before that
    server = hostile()
    seen = forking_handler(server.port, hold=4.0)
    assert seen["status"] == 200 and seen["body complete"], seen
    assert seen["end of response after s"] < 2.0, seen
    assert probe_after(server.port).all_ok


def test_hanging_handlers_are_interrupted_at_the_timeout(shared: Hostile) -> None:
    # two handlers hang: at --timeout (3 s) each is interrupted and answered 503, and the
    # workers serve on; 8 s leaves room for one worker having taken both, one after the other
    server = shared
    seen = hanging_handler(server.port, 2, seconds=8.0)
    assert [answer[:4] for answer in seen["answers"]] == ["503 ", "503 "], seen
    after = probe_after(server.port)
    assert after.all_ok, after.failures
    server.recovered()


def test_a_leaking_handler_is_recycled_by_max_rss(hostile: Start) -> None:
    # 30 MiB kept per request; --max-rss 50 replaces a worker after its second one, so no
    # worker ever holds more than the limit plus one request's leak for long
    server = hostile("--max-rss", "50")
    seen, probe, after = during(server.port, lambda: leaking_handler(server.port, 4, mib=30))
    assert seen["statuses"] == {"200": 4}
    assert probe.all_ok and after.all_ok, probe.failures + after.failures
    assert not server.same_workers(), "no worker was recycled"
    server.server.wait_for_log("max-rss", timeout=5)
    limit_kib = (50 + 30) * 1024
    assert wait_until(lambda: len(workers_usage(server.server)) == 2 and all(
        rss <= limit_kib for _, rss in workers_usage(server.server).values()), timeout=8)
    fds_before = max(fds for fds, _ in server.baseline.values())
    assert all(fds <= fds_before for fds, _ in workers_usage(server.server).values())


def test_descriptor_exhaustion_backs_off(hostile: Start) -> None:
    # issue 19 item 2: with 128 descriptors per process and 300 held connections, accept()
    # fails with EMFILE; the worker must not spin logging it, and must recover by itself
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))  # inherited by the server only
    try:
        server = hostile()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    before = server.log.count("accept failed")
    held_connections(server.port, 300, seconds=2.5)
    failures = server.log.count("accept failed") - before
    assert failures < 20, f"{failures} 'accept failed' lines in 2.5 s"
    after = probe_after(server.port)
    assert after.all_ok, after.failures
    server.recovered()


def test_heartbeat_continues_while_a_body_is_read(hostile: Start) -> None:
    # issue 19 item 6: 400 KB at ~100 KB/s (far above --min-body-rate) takes longer than
    # --timeout (3 s); the upload must be answered, not cut with 503
    server = hostile()
    total = 400_000

    with connect(server.port, 15) as sock:
        sock.sendall(b"POST /body HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % total)
        sent = 0
        while sent < total:
            piece = min(10_000, total - sent)
            try:
                sock.sendall(b"x" * piece)
            except OSError:
                break
            sent += piece
            time.sleep(0.1)
        raw = read_until_close(sock, 5)
    assert status_of(raw) == 200 and raw.endswith(b"\r\n\r\n400000\n"), raw[:200]
    assert server.same_workers()


def test_pipelined_bodies_at_every_split_point_stay_in_step(shared: Hostile) -> None:
    # two pipelined POSTs and a GET, cut into two writes at every byte: always 3 answers,
    # in order, never a desync
    server = shared
    data = (b"POST /body HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
            b"POST /body HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n"
            b"GET /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    for cut in range(0, len(data), 11):
        with connect(server.port) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(data[:cut])
            sock.sendall(data[cut:])
            raw = read_until_close(sock, 5)
        assert raw.count(b"HTTP/1.1 200 ") == 3, (cut, raw[:300])
        assert raw.endswith(b"ok\n") and b"\r\n\r\n5\n" in raw and b"\r\n\r\n3\n" in raw
    server.recovered()


def test_many_clients_at_once_all_get_answers(shared: Hostile) -> None:
    # 40 clients each sending 25 keep-alive requests at the same time, next to the probe
    server = shared
    answered: list[int] = []

    def client() -> None:
        with connect(server.port, 10) as sock:
            count = 0
            for _ in range(25):
                sock.sendall(b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n")
                data = b""
                while not data.endswith(b"ok\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                count += data.count(b"HTTP/1.1 200 ")
            answered.append(count)

    def attack() -> dict[str, int]:
        threads = [threading.Thread(target=client, daemon=True) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        return {"answered": sum(answered)}

    seen, probe, after = during(server.port, attack)
    assert seen["answered"] == 1000
    assert probe.all_ok and after.all_ok, probe.failures + after.failures
    server.recovered()
