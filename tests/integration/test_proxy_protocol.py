"""The PROXY protocol over the real server: behind a real HAProxy (send-proxy-v2, started by the
test on loopback) and with raw v1/v2 bytes; LOCAL and UNKNOWN keep the real endpoints; a header
from an untrusted peer, no header, a truncated and an oversized header all end the connection,
and none holds the one worker; PROXY before TLS."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Server, StartServer, free_port, wait_until

V2 = b"\r\n\r\n\x00\r\nQUIT\n"
GET = b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def v2_tcp4(src: str, dst: str, sport: int, dport: int, command: int = 1) -> bytes:
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return V2 + bytes([0x20 | command, 0x11]) + struct.pack("!H", len(body)) + body


def v2_tcp6(src: str, dst: str, sport: int, dport: int) -> bytes:
    body = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!HH", sport, dport))
    return V2 + bytes([0x21, 0x21]) + struct.pack("!H", len(body)) + body


def exchange(server: Server, data: bytes, source: str = "127.0.0.1",
             timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout,
                                  source_address=(source, 0)) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def env_of(answer: bytes) -> dict[str, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:200]
    result: dict[str, Any] = json.loads(body)
    return result


@pytest.fixture
def proxied(start_server: StartServer) -> Server:
    return start_server("--app", "origin_apps:wsgi", "--interface", "wsgi",
                        "--proxy-protocol", "--forwarded-allow-ips", "127.0.0.1",
                        "--workers", "1", "--header-timeout", "2", "--defer-accept", "0")


def test_raw_v1_and_v2_headers(proxied: Server) -> None:
    env = env_of(exchange(proxied, b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\n" + GET))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("192.0.2.1", "5555")
    env = env_of(exchange(proxied, v2_tcp4("198.51.100.7", "192.0.2.2", 40000, 443) + GET))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("198.51.100.7", "40000")
    env = env_of(exchange(proxied, v2_tcp6("2001:db8::9", "2001:db8::1", 1234, 80) + GET))
    assert env["REMOTE_ADDR"] == "2001:db8::9"
    # the header and the request may arrive in pieces
    with socket.create_connection(("127.0.0.1", proxied.port), timeout=10) as sock:
        for piece in (b"PROXY TCP4 192.0.2.", b"3 192.0.2.2 1 2\r", b"\nGET /who HTTP/1.1\r\n",
                      b"Host: x\r\nConnection: close\r\n\r\n"):
            sock.sendall(piece)
            time.sleep(0.05)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert env_of(answer)["REMOTE_ADDR"] == "192.0.2.3"


def test_local_and_unknown_keep_the_real_peer(proxied: Server) -> None:
    env = env_of(exchange(proxied, v2_tcp4("0.0.0.0", "0.0.0.0", 0, 0, command=0) + GET))
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    env = env_of(exchange(proxied, b"PROXY UNKNOWN\r\n" + GET))
    assert env["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("data", [
    GET,  # no header at all
    b"PROXY TCP4 192.0.2.1 192.0.2.2 5555\r\n" + GET,  # malformed
    b"PROXY " + b"9" * 200,  # oversized v1: no CRLF within 107 bytes
    V2 + bytes([0x21, 0x11]) + struct.pack("!H", 60000),  # oversized v2 length
], ids=["none", "malformed", "oversized-v1", "oversized-v2"])
def test_bad_headers_close_at_once(proxied: Server, data: bytes) -> None:
    started = time.monotonic()
    assert exchange(proxied, data) == b""  # closed, no HTTP answer
    assert time.monotonic() - started < 1.5  # not at the 2 s header deadline


def test_untrusted_peer_is_closed(start_server: StartServer) -> None:
    server = start_server("--app", "origin_apps:wsgi", "--interface", "wsgi",
                          "--proxy-protocol", "--forwarded-allow-ips", "127.0.0.2")
    header = b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\n"
    assert exchange(server, header + GET, source="127.0.0.1") == b""
    env = env_of(exchange(server, header + GET, source="127.0.0.2"))
    assert env["REMOTE_ADDR"] == "192.0.2.1"


def test_truncated_header_does_not_hold_the_worker(proxied: Server) -> None:
    stuck = socket.create_connection(("127.0.0.1", proxied.port), timeout=10)
    stuck_v2 = socket.create_connection(("127.0.0.1", proxied.port), timeout=10)
    try:
        stuck.sendall(b"PROXY TCP4 192.0.2.1 ")
        stuck_v2.sendall(v2_tcp4("192.0.2.1", "192.0.2.2", 1, 2)[:20])
        time.sleep(0.2)
        started = time.monotonic()
        env = env_of(exchange(proxied, b"PROXY TCP4 192.0.2.9 192.0.2.2 9 80\r\n" + GET))
        assert env["REMOTE_ADDR"] == "192.0.2.9"
        assert time.monotonic() - started < 1.5
        for sock in (stuck, stuck_v2):  # the header deadline (2 s) closes them
            sock.settimeout(6)
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass
    finally:
        stuck.close()
        stuck_v2.close()


def test_proxy_header_before_tls(start_server: StartServer, tmp_path: Path) -> None:
    from .test_tls import make_cert

    cert, key = make_cert(tmp_path / "pki")
    server = start_server("--app", "origin_apps:wsgi", "--interface", "wsgi",
                          "--proxy-protocol", "--forwarded-allow-ips", "127.0.0.1",
                          "--certfile", str(cert), "--keyfile", str(key))
    context = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"PROXY TCP4 192.0.2.44 192.0.2.2 4444 443\r\n")
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(GET)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    env = env_of(answer)
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("192.0.2.44", "https")


# -- a real HAProxy in front ------------------------------------------------------------------

@pytest.fixture
def haproxy(tmp_path: Path, proxied: Server) -> Iterator[int]:
    binary = shutil.which("haproxy")
    if binary is None:
        pytest.skip("needs haproxy")
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"""
global
    maxconn 64
defaults
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend front
    bind 127.0.0.1:{port}
    default_backend forkhttpd
backend forkhttpd
    server one 127.0.0.1:{proxied.port} send-proxy-v2
""")
    check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        assert wait_until(listening, timeout=10), "haproxy did not start"
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: only what we started
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_behind_haproxy_send_proxy_v2(haproxy: int, proxied: Server) -> None:
    for source in ("127.0.0.3", "127.0.0.4"):
        conn = http.client.HTTPConnection("127.0.0.1", haproxy, timeout=10,
                                          source_address=(source, 0))
        try:
            conn.request("GET", "/through-haproxy")
            local_port = conn.sock.getsockname()[1]
            response = conn.getresponse()
            env = json.loads(response.read())
        finally:
            conn.close()
        assert response.status == 200
        # the client as HAProxy saw it, not HAProxy's own connection
        assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (source, str(local_port))
        assert env["PATH_INFO"] == "/through-haproxy"
    # and a client that skips HAProxy cannot pretend: no header, no answer
    assert exchange(proxied, GET) == b""
