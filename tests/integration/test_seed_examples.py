"""picohttp's three examples run unchanged under forkhttpd but for `import forkhttpd as
picohttp` (they use its fixed ports 80, 8080 and 8765 on every interface; we talk to them over
loopback only)."""

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

from .harness import APPS, REPO

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
    def __init__(self, name: str, port: int, cwd: Path) -> None:
        if not port_free(port):
            pytest.fail(f"port {port} is taken on this machine; picohttp's example needs it")
        self.port = port
        self.err = cwd / f"{name}.err"
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(EXAMPLES / f"{name}.py")], cwd=cwd, stdout=err,
                stderr=subprocess.STDOUT, start_new_session=True, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 15
        while "serving on" not in self.err.read_text():
            assert self.proc.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, self.err.read_text()
            time.sleep(0.05)

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self) -> int:
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
    example = Example("minimal", 80, tmp_path)
    try:
        assert example.request("GET", "/") == (200, b"<h1>index</h1>\n")
        assert example.request("GET", "/notes.txt") == (200, b"notes")
        assert example.request("GET", "/nope")[0] == 404
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
