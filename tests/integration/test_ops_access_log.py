"""The access log of the real server: the combined format's bytes are the body's (Apache's
%b), the wire bytes have their own field, and the JSON log keeps a UTF-8 user agent as
text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .harness import wait_until


def _lines(path: Path, count: int) -> list[str]:
    assert wait_until(lambda: path.exists() and len(path.read_text().splitlines()) >= count)
    return path.read_text(encoding="utf-8").splitlines()


def test_combined_bytes_are_the_body(start_server: Any, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    server = start_server("--app", "echo:handler", "--access-logfile", str(log),
                          "--access-log-format", "combined")
    status, _, body = server.request(path="/abc")
    assert status == 200
    server.request("HEAD", "/abc")
    get, head = _lines(log, 2)
    size = re.search(r'" 200 (\S+) "', get)
    assert size is not None and size[1] == str(len(body)), get
    assert re.search(r'"HEAD /abc HTTP/1.1" 200 - "', head), head  # no body sent


def test_json_keeps_utf8_and_counts_both(start_server: Any, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    server = start_server("--app", "echo:handler", "--access-logfile", str(log),
                          "--access-log-format", "json")
    agent = "Navigateur/1.0 (français; 日本語)"
    response = server.raw(b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                          b"User-Agent: " + agent.encode() + b"\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    (line,) = _lines(log, 1)
    assert agent in line  # as text in the file, not \u escapes or mojibake
    record = json.loads(line)
    assert record["user_agent"] == agent
    assert record["bytes"] == len(body) and record["bytes_sent"] == len(response)


def test_a_refusal_logs_its_body_bytes(start_server: Any, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    server = start_server("--app", "echo:handler", "--access-logfile", str(log),
                          "--access-log-format", "json")
    answer = server.raw(b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    (line,) = _lines(log, 1)
    record = json.loads(line)
    body = answer.partition(b"\r\n\r\n")[2]
    assert record["status"] == 400 and record["bytes"] == len(body) > 0
    assert record["bytes_sent"] == len(answer)
