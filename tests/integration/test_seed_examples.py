"""The seeds' documented programs run under forkhttpd with only their import changed (issue
15): picohttp's three examples, pyhttp's servers, VSHS's main.py and routes, and the
BaseHTTPServer documentation's and tutorial's programs. They use their seed's fixed ports
(80, 8080, 8765, 8888, 8000), some on every interface; we talk to them over loopback only."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .harness import APPS, REPO, cmdline, wait_until
from .harness import _children_of as _children

EXAMPLES = APPS / "seed_examples"


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


class Example:
    """One seed program, run as `python EXAMPLE.py` in `cwd`, in a session of its own."""

    def __init__(self, name: str, port: int, cwd: Path, ready: str | None = "serving on"
                 ) -> None:
        if not port_free(port):
            pytest.fail(f"port {port} is taken on this machine; the seed's example needs it")
        self.port = port
        self.err = cwd / f"{name.replace('/', '_')}.err"
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(EXAMPLES / f"{name}.py")], cwd=cwd, stdout=err,
                stderr=subprocess.STDOUT, start_new_session=True, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 15
        while not (self.output.count(ready) if ready else self.listening()):
            assert self.proc.poll() is None, self.output
            assert time.monotonic() < deadline, self.output
            time.sleep(0.05)

    @property
    def output(self) -> str:
        return self.err.read_text(errors="replace")

    def listening(self) -> bool:
        """The port is in LISTEN state (read from /proc: a probe connection would be a
        request to a program that counts them)."""
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as rows:
                    for row in rows.readlines()[1:]:
                        local, state = row.split()[1], row.split()[3]
                        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == self.port:
                            return True
            except OSError:
                continue
        return False

    def request(self, method: str, path: str, body: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return self.response(method, path, body, headers)[::2]

    def response(self, method: str, path: str, body: str | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            fields = {name.lower(): value for name, value in response.getheaders()}
            return response.status, fields, response.read()
        finally:
            conn.close()

    def workers(self) -> list[int]:
        """Worker processes under the program (which is the master)."""
        return [pid for pid in map(int, _children(self.proc.pid))
                if cmdline(pid).startswith("forkhttpd: worker ")]

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(20)
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_minimal_example_serves_the_current_directory(tmp_path: Path) -> None:
    shutil.copy(APPS / "site" / "index.html", tmp_path / "index.html")
    (tmp_path / "notes.txt").write_text("notes")
    (tmp_path / ".env").write_text("SECRET=1")
    example = Example("minimal", 80, tmp_path)
    try:
        assert example.request("GET", "/") == (200, b"<h1>index</h1>\n")
        assert example.request("GET", "/notes.txt") == (200, b"notes")
        assert example.request("GET", "/nope")[0] == 404
        assert example.request("GET", "/.env")[0] == 404  # staticResource hides dot files
        assert example.request("GET", "/%2eenv")[0] == 404
    finally:
        assert example.stop() == 0


def test_words_example(tmp_path: Path) -> None:
    example = Example("words", 8080, tmp_path)
    try:
        assert example.request("GET", "/hello") == (200, b"Hello world!")
        assert example.request("GET", "/goodbye") == (200, b"Goodbye cruel world")
        assert example.request("GET", "/other") == (404, b"I don't know what to say")
    finally:
        assert example.stop() == 0


def test_rest_example_keeps_its_data_in_a_file(tmp_path: Path) -> None:
    example = Example("rest", 8765, tmp_path)
    try:
        assert example.request("GET", "/") == (200, b"{}")
        assert example.request("PUT", "/apple", "red")[0] == 200
        assert example.request("PUT", "/pear", "green")[0] == 200
        assert example.request("GET", "/apple") == (200, b"red")
        assert json.loads(example.request("GET", "/")[1]) == {"apple": "red", "pear": "green"}
        assert example.request("DELETE", "/pear")[0] == 200
        assert example.request("GET", "/pear")[0] == 404
        assert example.request("DELETE", "/pear")[0] == 404
        assert example.request("PUT", "/")[0] == 400
        assert example.request("POST", "/x")[0] == 501
    finally:
        assert example.stop() == 0
    assert json.loads((tmp_path / "test.json").read_text()) == {"apple": "red"}
    # a restart loads the saved data, as in the seed
    example = Example("rest", 8765, tmp_path)
    try:
        assert example.request("GET", "/apple") == (200, b"red")
    finally:
        assert example.stop() == 0


# ---- http.server (the BaseHTTPServer documentation and tutorial) -------------------------

def test_http_server_run_answers_as_the_bare_handler_does(tmp_path: Path) -> None:
    # BaseHTTPRequestHandler has no do_GET: http.server answers 501, and so does forkhttpd
    example = Example("httpserver_run", 8000, tmp_path)
    try:
        status, body = example.request("GET", "/")
        assert status == 501 and b"Unsupported method (" in body and b"GET" in body
        assert example.request("POST", "/x", "data")[0] == 501
        assert len(example.workers()) == 1  # pre-forked: the program is the master
    finally:
        assert example.stop() == 0


def test_http_server_handle_request_serves_in_the_program_itself(tmp_path: Path) -> None:
    # handle_request() is socketserver's: one request in this process, no workers, and the
    # loop's condition is checked between requests
    example = Example("httpserver_run_while_true", 8000, tmp_path, ready=None)
    try:
        for _ in range(3):
            assert example.request("GET", "/")[0] == 501
        assert example.proc.wait(10) == 0
        assert "run_while_true returned" in example.output
        assert "serving on" not in example.output
    finally:
        example.stop()


def test_http_server_tutorial_program(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<p>tutorial page</p>")
    (tmp_path / "notes.txt").write_text("not html")
    example = Example("httpserver_tutorial", 8000, tmp_path)
    try:
        assert "http server is running..." in example.output
        status, headers, body = example.response("GET", "/page.html")
        assert (status, headers["content-type"], body) == (
            200, "text/html", b"<p>tutorial page</p>")
        assert example.request("GET", "/notes.txt")[0] == 404
        assert example.request("GET", "/missing.html")[0] == 404
        # the handler's own log lines, as http.server writes them
        assert wait_until(lambda: '"GET /page.html HTTP/1.1" 200' in example.output)
        assert example.workers()
    finally:
        assert example.stop() == 0


# ---- pyhttp -------------------------------------------------------------------------------

def _pyhttp_site(root: Path) -> None:
    (root / "sub").mkdir()
    (root / "a.txt").write_text("plain file")
    (root / "sub" / "b.txt").write_text("in sub")
    (root / "calc.py").write_text('print("<h1>calc %d</h1>" % (6 * 7))\n')  # pyhttp-style
    cgi = root / "query.cgi"
    cgi.write_text('#!/bin/sh\nprintf "Content-Type: text/plain\\r\\nStatus: 201 Created'
                   '\\r\\n\\r\\n%s %s" "$REQUEST_METHOD" "$QUERY_STRING"\n')
    cgi.chmod(0o755)
    (root / ".env").write_text("SECRET=1")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]")
    (root.parent / "outside.txt").write_text("outside")
    os.symlink(root.parent / "outside.txt", root / "link.txt")


def test_pyhttp_threaded_server_serves_files_listings_and_cgi(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _pyhttp_site(site)
    example = Example("pyhttp_threaded", 8888, site)
    try:
        status, headers, body = example.response("GET", "/")
        page = body.decode()
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert 'href="a.txt"' in page and 'href="sub/"' in page and 'href="calc.py"' in page
        assert ".env" not in page and ".git" not in page and "link.txt" not in page
        assert example.request("GET", "/a.txt") == (200, b"plain file")
        status, headers, body = example.response("HEAD", "/a.txt")
        assert (status, headers["content-length"], body) == (200, "10", b"")
        status, headers, _ = example.response("GET", "/sub")
        assert status == 301 and headers["location"] == "/sub/"
        assert 'href="b.txt"' in example.request("GET", "/sub/")[1].decode()
        assert example.request("GET", "/calc.py") == (200, b"<h1>calc 42</h1>\n")
        status, headers, body = example.response("GET", "/query.cgi?x=1")
        assert (status, headers["content-type"], body) == (201, "text/plain", b"GET x=1")
        assert example.request("POST", "/query.cgi", "k=v")[1] == b"POST "
        for hidden in ("/.env", "/.git/config", "/%2egit/config", "/sub/..%2f.env",
                       "/link.txt", "/../outside.txt", "/%2e%2e/outside.txt"):
            assert example.request("GET", hidden)[0] == 404, hidden
        assert example.workers()
    finally:
        assert example.stop() == 0


def test_pyhttp_base_server_with_a_handler_directory(tmp_path: Path) -> None:
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "hello.txt").write_text("public hello")
    (tmp_path / "private.txt").write_text("private")
    example = Example("pyhttp_base_directory", 8888, tmp_path)
    try:
        assert example.request("GET", "/hello.txt") == (200, b"public hello")
        assert example.request("GET", "/private.txt")[0] == 404
        assert example.request("GET", "/%2e%2e/private.txt")[0] == 404
    finally:
        assert example.stop() == 0


# ---- VSHS ---------------------------------------------------------------------------------

def test_vshs_main_serves_its_routes(tmp_path: Path) -> None:
    example = Example("vshs/main", 8080, tmp_path)
    try:
        status, headers, body = example.response("GET", "/hello-world")
        assert status == 200 and headers["content-type"].startswith("application/json")
        assert json.loads(body) == {"message": "Hello World"}
        # as the README's `curl -X POST -d '{"body": "A"}'` sends it
        status, body = example.request("POST", "/params/C?url=B", '{"body": "A"}', {
            "Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200 and json.loads(body) == {
            "urlParams": {"url": "B"}, "bodyParams": {"body": "A"},
            "pathParams": {"route": "C"}}
        # VSHS sends the exception's text with its 500; forkhttpd logs it and sends none
        status, body = example.request("GET", "/exception")
        assert status == 500 and b"Oups" not in body
        assert wait_until(lambda: "Oups..." in example.output)
        status, body = example.request("GET", "/http-error")
        assert (status, body.rstrip(b"\n")) == (403, b"Forbidden Access")
        assert example.request("GET", "/")[0] == 404  # no static directory given
        _first_events(example, 2)
    finally:
        assert example.stop() == 0


def _first_events(example: Example, count: int) -> None:
    """The server-sent-events route streams {"count": i} events, one a second."""
    with socket.create_connection(("127.0.0.1", example.port), timeout=10) as sock:
        sock.sendall(b"GET /server-sent-events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 10
        while data.count(b"event: event_name") < count and time.monotonic() < deadline:
            data += sock.recv(4096)
    head, _, stream = data.partition(b"\r\n\r\n")
    assert b"200 OK" in head and b"text/event-stream" in head.lower()
    events = [block for block in stream.decode().split("\n\n") if "event:" in block]
    counts = [json.loads(line.split(":", 1)[1])["count"]
              for block in events for line in block.splitlines()
              if line.startswith("data:")]
    assert counts[:count] == list(range(1, count + 1))


def test_vshs_main_with_static_resources(tmp_path: Path) -> None:
    example = Example("vshs/main_static", 8080, tmp_path)
    try:
        status, headers, body = example.response("GET", "/")
        assert (status, body) == (200, b"<b>Hello world</b>")
        assert headers["content-type"].startswith("text/html")
        assert json.loads(example.request("GET", "/hello-world")[1]) == {
            "message": "Hello World"}
    finally:
        assert example.stop() == 0
