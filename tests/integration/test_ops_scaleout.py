"""Scale-out on one host: --health-path answered by the worker (503 once draining, so a load
balancer takes the instance out) and --reuse-port (a second instance on the same port)."""

from __future__ import annotations

import http.client
import signal
import threading
import time

from .harness import StartServer, cmdline, free_port, run_forkhttpd


def test_health_path_is_answered_without_the_app(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--health-path", "/healthz")
    status, headers, body = server.request("GET", "/healthz")
    assert (status, body.strip()) == (200, b"ok")  # mymod would answer 404 for this path
    assert server.request("GET", "/hello")[2] == b"Hello world!"
    # Only the exact path: the app still gets its own URLs, even similar ones.
    assert server.request("GET", "/healthz/more")[0] == 404


def test_without_health_path_the_app_answers(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler")
    assert server.request("GET", "/healthz")[0] == 404


def test_health_fails_once_a_graceful_stop_began(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--health-path", "/healthz",
                          "--keep-alive", "10")
    probe = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    probe.request("GET", "/healthz")
    first = probe.getresponse()
    assert (first.status, first.read().strip()) == (200, b"ok")

    slow: list[int] = []

    def in_flight() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/sleep?s=1.5")
        slow.append(conn.getresponse().status)
        conn.close()

    client = threading.Thread(target=in_flight)
    client.start()
    time.sleep(0.3)
    server.send_signal(signal.SIGTERM)  # the drain begins
    time.sleep(0.3)
    probe.request("GET", "/healthz")  # same keep-alive connection, now draining
    second = probe.getresponse()
    assert second.status == 503
    assert second.getheader("connection", "").lower() == "close"
    second.read()
    probe.close()
    client.join(10)
    assert slow == [200]  # the request in flight finished
    assert server.proc.wait(20) == 0


def _pids_answering(port: int, count: int) -> set[int]:
    pids = set()
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/pid")
        response = conn.getresponse()
        assert response.status == 200
        pids.add(int(response.read()))
        conn.close()
    return pids


def test_reuse_port_lets_a_second_instance_start_before_the_first_stops(
        start_server: StartServer) -> None:
    port = free_port()
    bind = ("--bind", f"127.0.0.1:{port}", "--reuse-port")
    first = start_server("--app", "mymod:handler", *bind, bind_socket=False)
    second = start_server("--app", "mymod:handler", *bind, bind_socket=False)
    masters = {}
    for pid in _pids_answering(port, 60):
        with open(f"/proc/{pid}/stat") as handle:
            masters[pid] = int(handle.read().rsplit(")", 1)[1].split()[1])
    # The kernel spreads new connections over both instances' listeners.
    assert set(masters.values()) == {first.pid, second.pid}, masters
    assert first.stop() == 0
    assert "forkhttpd: master" in cmdline(second.pid)
    assert {p for p in _pids_answering(port, 20)} <= set(second.worker_pids())


def test_without_reuse_port_the_second_instance_is_refused(start_server: StartServer) -> None:
    port = free_port()
    start_server("--app", "mymod:handler", "--bind", f"127.0.0.1:{port}", bind_socket=False)
    result = run_forkhttpd("--app", "mymod:handler", "--bind", f"127.0.0.1:{port}",
                           timeout=20)
    assert result.returncode == 1  # in use: a runtime failure (docs/errors.md)
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr
