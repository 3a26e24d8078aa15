"""The shipped etc/nginx/forkhttpd.conf in a real nginx, in front of two forkhttpd instances on
loopback: each instance is restarted (TERM, start again) in turn while a client sends requests
without pause, and not one request fails through nginx."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .harness import APPS, REPO, Server, StartServer, free_port, wait_until

SHIPPED = REPO / "etc" / "nginx" / "forkhttpd.conf"
NGINX_APT = "apt-get install -y nginx-light (or nginx)"


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    assert found, f"nginx is missing: {NGINX_APT} (CI: add it to .ci/run)"
    return found


def _config(tmp: Path, front: int, upstreams: tuple[int, int]) -> Path:
    """The shipped server config with test ports, inside a minimal nginx.conf."""
    text = SHIPPED.read_text()
    for shipped, port in zip(("127.0.0.1:8001", "127.0.0.1:8002"), upstreams, strict=True):
        assert shipped in text
        text = text.replace(shipped, f"127.0.0.1:{port}")
    assert "listen 80;" in text
    text = text.replace("listen 80;", f"listen 127.0.0.1:{front};")
    text = text.replace("listen [::]:80;", "")
    (tmp / "forkhttpd.conf").write_text(text)
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / name).mkdir()
    main = tmp / "nginx.conf"
    main.write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/forkhttpd.conf;
}}
""")
    return main


def _fail_timeout() -> float:
    match = re.search(r"fail_timeout=(\d+)s", SHIPPED.read_text())
    assert match, "the shipped upstream sets fail_timeout"
    return float(match[1])


class Client(threading.Thread):
    """GET /pid through nginx, back to back on a keep-alive connection, counting outcomes."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.running = True
        self.total = 0
        self.failures: list[str] = []
        self.answered_by: set[int] = set()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while self.running:
            self.total += 1
            try:
                conn.request("GET", "/pid")
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    self.failures.append(f"{response.status} {body[:100]!r}")
                else:
                    self.answered_by.add(int(body))
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(repr(error))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.close()


@pytest.mark.slow
def test_restarting_instances_behind_nginx_loses_no_request(
        start_server: StartServer, tmp_path: Path) -> None:
    nginx = _nginx()
    ports = (free_port(), free_port())
    front = free_port()
    main = _config(tmp_path, front, ports)
    check = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(main)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr

    def instance(port: int) -> Server:
        return start_server("--app", "mymod:handler", "-w", "2", "--bind",
                            f"127.0.0.1:{port}", "--graceful-timeout", "10",
                            bind_socket=False, cwd=APPS)

    servers = [instance(port) for port in ports]
    proxy = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(main), "-g", "daemon off;"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    client = Client(front)
    try:
        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", front), timeout=1).close()
                return True
            except OSError:
                return False

        assert wait_until(up, 10), (tmp_path / "error.log").read_text()
        client.start()
        time.sleep(1.0)
        restarts = []
        for index, port in enumerate(ports):
            begin = time.monotonic()
            assert servers[index].stop() == 0  # TERM, wait for the master to exit
            servers[index] = instance(port)  # start again; wait until it serves
            restarts.append(time.monotonic() - begin)
            # A rolling deploy waits out nginx's fail_timeout before the next instance. nginx
            # counts it in whole seconds (ngx_time()), so a rest lasts up to 1 s longer; a
            # stopping instance refuses connections at once, so its rest starts right then.
            time.sleep(_fail_timeout() + 1.5)
        client.running = False
        client.join(15)
        assert not client.is_alive()
        errors = (tmp_path / "error.log").read_text()
        print(f"\nnginx restart test: {client.total} requests, {len(client.failures)} "
              f"failed; restarts took {', '.join(f'{r:.2f}s' for r in restarts)}; nginx "
              f"retried upstream errors {errors.count('while connecting to upstream')} "
              "times")
        assert client.failures == [], client.failures[:10]
        assert client.total > 200
        # The restarts were seen: nginx met refused connections and retried elsewhere.
        assert "Connection refused) while connecting to upstream" in errors
        # The restarted instances serve (directly: nginx may rest them for fail_timeout).
        for port in ports:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/hello")
            assert conn.getresponse().read() == b"Hello world!"
            conn.close()
    finally:
        client.running = False
        if proxy.poll() is None:
            proxy.send_signal(signal.SIGQUIT)  # nginx's graceful stop
            try:
                proxy.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proxy.pid, signal.SIGKILL)
                proxy.wait(5)
