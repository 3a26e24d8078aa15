"""The basics, end to end on the real forkhttpd with several workers over real sockets: the
native handler API, returned values and errors, HTTP/1.0, the app spec forms, process titles,
stopping, workers exiting with their master, the default static app, startup mistakes, bind
forms and the embedded server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .harness import APPS, REPO, Server, StartServer, cmdline, wait_until


def test_native_handler_api_over_http(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "4")
    status, headers, body = server.request("GET", "/hello")
    assert (status, body) == (200, b"Hello world!")
    assert headers["content-length"] == "12"
    assert headers["server"] == "forkhttpd" and headers["date"].endswith("GMT")

    status, headers, body = server.request(
        "POST", "/echo/a%20b/c?x=1&y=two", body="h\u00e9llo".encode(),
        headers={"Content-Type": "text/plain", "X-Case": "Yes"})
    echoed = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert echoed["method"] == "POST"
    assert echoed["path"] == ["echo", "a b", "c"]
    assert echoed["query"] == {"x": "1", "y": "two"}
    assert echoed["protocol"] == "HTTP/1.1"
    assert echoed["data"] == "h\u00e9llo" and echoed["body_len"] == 6
    assert echoed["content_type"] == "text/plain"
    assert echoed["headers"]["x-case"] == "Yes"

    status, _, body = server.request("GET", "/echo")
    assert json.loads(body)["data"] == "" and json.loads(body)["path"] == ["echo"]


def test_returned_values_errors_and_statuses(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "2")
    status, headers, body = server.request("GET", "/text")
    assert (status, body, headers["content-type"]) == (200, b"plain text",
                                                      "text/plain; charset=utf-8")
    status, headers, body = server.request("GET", "/bytes")
    assert (body, headers["content-type"]) == (b"\x00\x01\xff", "application/octet-stream")
    assert json.loads(server.request("GET", "/list")[2]) == [1, 2, 3]
    status, _, body = server.request("GET", "/forbidden")
    assert (status, body) == (403, b"Forbidden Access\n")
    status, headers, body = server.request("GET", "/custom")
    assert (status, body, headers["server"], headers["x-thing"]) == (
        201, b"created", "custom-server", "yes")
    assert server.request("GET", "/nothing-here")[0] == 404

    status, _, body = server.request("GET", "/boom")
    assert status == 500 and b"secret" not in body and b"Traceback" not in body
    log = server.wait_for_log("secret internal detail")
    assert "Traceback" in log and "RuntimeError" in log
    # the worker lives on
    assert server.request("GET", "/hello")[0] == 200

    for path in ("/badheader", "/nulheader"):
        raw = server.raw(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert raw.startswith(b"HTTP/1.1 500"), raw
        assert b"Injected" not in raw and b"should never be sent" not in raw


def test_http10_and_every_response_closes_or_keeps_alive_correctly(
        start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler")
    raw = server.raw(b"GET /hello HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 200") or raw.startswith(b"HTTP/1.1 200")
    assert raw.endswith(b"Hello world!")


def test_pkg_mod_attr_and_factory_forms_and_chdir(start_server: StartServer,
                                                  tmp_path: Path) -> None:
    server = start_server("--app", "pkg.handlers:hello")
    assert server.request("GET", "/")[2] == b"hello from pkg.handlers"
    server = start_server("--app", "mymod:make_handler()", "--chdir", str(APPS), cwd=tmp_path)
    assert server.request("GET", "/")[2] == b"made by factory"


def test_process_titles_and_worker_count(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "4")
    master = cmdline(server.pid)
    assert "forkhttpd: master" in master and "mymod:handler" in master
    assert wait_until(lambda: len(server.worker_pids()) == 4)
    titles = sorted(cmdline(pid) for pid in server.worker_pids())
    assert all("forkhttpd: worker" in t for t in titles)
    numbers = {t.split("forkhttpd: worker ")[1].split()[0] for t in titles}
    assert len(numbers) == 4
    # requests are spread over several processes that all share one listening socket
    pids = {server.request("GET", "/pid")[2] for _ in range(40)}
    assert pids <= {str(p).encode() for p in server.worker_pids()} and len(pids) >= 1
    ps = subprocess.run(["ps", "-o", "args=", "-p", str(server.pid)], capture_output=True,
                        text=True)
    assert "forkhttpd: master" in ps.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_term_and_int_stop_everything_with_exit_code_0(start_server: StartServer,
                                                       signum: int) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "3")
    assert wait_until(lambda: len(server.worker_pids()) == 3)
    workers = server.worker_pids()
    assert server.stop(signum) == 0
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{p}") and
                                      "forkhttpd" in cmdline(p) for p in workers), 5)
    assert "Traceback" not in server.stderr


def test_workers_exit_when_the_master_dies(start_server: StartServer) -> None:
    server = start_server("--app", "mymod:handler", "--workers", "2")
    assert wait_until(lambda: len(server.worker_pids()) == 2)
    workers = server.worker_pids()
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait(5)
    started = time.monotonic()
    assert wait_until(lambda: not any("forkhttpd" in cmdline(p) for p in workers), 3)
    assert time.monotonic() - started < 1.5


def test_static_default_serves_the_current_directory(start_server: StartServer,
                                                     tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>home</h1>")
    (site / "style.css").write_text("b{}")
    (site / "data.zzz").write_text("zzz")
    (site / "dir").mkdir()
    (tmp_path / "outside.txt").write_text("top secret")
    os.symlink(tmp_path / "outside.txt", site / "leak")
    server = start_server(cwd=site)
    status, headers, body = server.request("GET", "/")
    assert (status, body) == (200, b"<h1>home</h1>")
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert server.request("GET", "/style.css")[1]["content-type"].startswith("text/css")
    status, headers, body = server.request("GET", "/data.zzz")
    assert headers["content-type"].startswith("text/plain") and body == b"zzz"
    assert server.request("GET", "/missing.html")[0] == 404
    head = server.request("HEAD", "/")
    assert head[0] == 200 and head[2] == b"" and head[1]["content-length"] == "13"
    for attack in ("/../outside.txt", "/%2e%2e/outside.txt", "/%2E%2E%2Foutside.txt",
                   "/dir/..%2f..%2foutside.txt", "//etc/passwd", "/leak", "/index.html%00",
                   "/..%5coutside.txt", f"/{tmp_path}/outside.txt"):
        status, _, body = server.request("GET", attack)
        assert status == 404 and b"secret" not in body, attack
    raw = server.raw(b"GET /../outside.txt HTTP/1.0\r\n\r\n")
    assert b"top secret" not in raw


@pytest.mark.parametrize(("args", "expected"), [
    (["--app", "nosuchmod:x"], "no module named 'nosuchmod'"),
    (["--app", "mymod:missing"], "has no attribute 'missing'"),
    (["--app", "raises_at_import:x"], "the app's own import-time failure"),
    (["--workers", "0"], "--workers: expected an integer >= 1, got '0'"),
    (["--bind", "nonsense"], "--bind: expected"),
])
def test_mistakes_give_one_clear_line_and_exit_2(args: list[str], expected: str,
                                                  tmp_path: Path) -> None:
    command = [sys.executable, "-m", "forkhttpd", *args]
    if "--bind" not in args:
        command += ["--bind", "127.0.0.1:0"]
    result = subprocess.run(command, cwd=APPS, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("forkhttpd: error:")
    if "raises_at_import:x" in args:
        assert "the app's traceback" in result.stderr and "raises_at_import.py" in result.stderr
    else:
        assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "forkhttpd", "--bind",
                                 f"127.0.0.1:{port}"], cwd=APPS, capture_output=True,
                                text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1  # a runtime failure, not a settings error (docs/errors.md)
    assert "address already in use" in result.stderr and "Traceback" not in result.stderr


def test_binds_by_address_ipv6_and_unix(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "s.sock"
    server = Server("--app", "mymod:handler", "--bind", f"127.0.0.1:{port}", "--bind",
                    "[::1]:0", "--bind", f"unix:{path}", bind_socket=False, log_dir=tmp_path)
    try:
        server.wait_ready()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
            assert sock.recv(4096).endswith(b"Hello world!")
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            sock.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
            assert sock.recv(4096).endswith(b"Hello world!")
        assert "[::1]:" in server.stderr
    finally:
        assert server.stop() == 0
    assert not path.exists()


def test_embedded_blocking_server_gives_back_umask_and_directory(tmp_path: Path) -> None:
    # HttpServer(block=True) makes the embedding script the master until it stops; the
    # umask and working directory the server set for itself are the script's again after.
    from .harness import free_port

    port = free_port()
    err = tmp_path / "embedded.err"
    with open(err, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(APPS / "embedded_state.py"), str(port), str(tmp_path)],
            stdout=subprocess.PIPE, stderr=log, start_new_session=True,
            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        wait_until(lambda: "serving on" in err.read_text() or proc.poll() is not None, 15)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            sock.settimeout(5)
            assert sock.recv(65536).endswith(b"embedded")
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert out.decode() == "after: umask 77, cwd restored True\n", err.read_text()
