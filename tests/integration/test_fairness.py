"""Fairness between connections, bounded in time: a worker never sits on idle keep-alive
connections or on slow clients while others wait (2 workers, this 2-core machine)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import pytest

from .harness import StartServer


def one_request(port: int, timeout: float = 5.0) -> float:
    """Latency of GET /hello on a NEW connection; raises on any failure."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"Hello world!"), data
    return time.monotonic() - started


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_fresh_connections_are_answered_while_keep_alive_clients_hammer(
        start_server: StartServer) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.fail("wrk is missing (Debian package wrk; .ci/run installs it)")
    server = start_server("--app", "mymod:handler", "--workers", "2")
    load = subprocess.Popen([wrk, "-t2", "-c64", "-d6s", f"http://127.0.0.1:{server.port}/hello"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)
        latencies = []
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            latencies.append(one_request(server.port))
            time.sleep(0.02)
    finally:
        output = load.communicate(timeout=20)[0]
    print(f"fresh connections under wrk -c64 keep-alive: n={len(latencies)} "
          f"p99={p99(latencies) * 1000:.1f} ms max={max(latencies) * 1000:.1f} ms")
    assert len(latencies) > 50
    assert p99(latencies) < 0.100, (p99(latencies), output)
    # and the keep-alive clients were all served too (no starvation among them)
    requests = int(output.split(" requests in ")[0].split()[-1])
    assert requests > 5000, output
    assert "Non-2xx" not in output and "Socket errors" not in output, output


def test_slowloris_connections_do_not_block_ordinary_requests(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "2", "--header-timeout", "20")
    slow: list[socket.socket] = []
    stop = threading.Event()

    def trickle() -> None:
        line = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        position = 0
        while not stop.is_set() and position < len(line):
            for sock in slow:
                try:
                    sock.send(line[position:position + 1])
                except OSError:
                    pass
            position += 1
            stop.wait(1.0)

    try:
        for _ in range(256):
            slow.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        latencies = []
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            latencies.append(one_request(server.port))
            time.sleep(0.02)
        stop.set()
        sender.join(5)
    finally:
        for sock in slow:
            sock.close()
    print(f"ordinary requests beside 256 slowloris connections: n={len(latencies)} "
          f"p99={p99(latencies) * 1000:.1f} ms max={max(latencies) * 1000:.1f} ms")
    assert len(latencies) > 50
    assert p99(latencies) < 0.5, p99(latencies)
