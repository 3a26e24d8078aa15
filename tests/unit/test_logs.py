"""Access-log lines (combined, JSON, custom atoms), buffering, reopening, and the error log's
per-line prefix; no fork, no port."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forkhttpd.runtime import logs

REPO = Path(__file__).resolve().parents[2]
COMBINED = re.compile(
    r'^(?P<host>\S+) - - \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
    r'"(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<size>\d+|-) '
    r'"(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)" (?P<us>\d+) (?P<pid>\d+)\n$')


class FakeRequest:
    def __init__(self, line: str, headers: list[tuple[str, str]]) -> None:
        self.request_line = line
        self.headers = headers


class FakeExchange:
    def __init__(self, line: str = "GET /a?b=1 HTTP/1.1", status: int = 200, size: int = 12,
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.request = FakeRequest(line, headers or [])
        self.peer = self.client = ("127.0.0.1", 5555)
        self.status = status
        self.bytes_sent = size


@pytest.fixture
def access(tmp_path: Path) -> Any:
    def make(fmt: str = "combined") -> logs.AccessLog:
        return logs.AccessLog(str(tmp_path / "access.log"), fmt)
    return make


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_combined_line(access: Any, tmp_path: Path) -> None:
    log = access()
    log.log(FakeExchange(headers=[("user-agent", "curl/8"), ("referer", "http://x/")]), 1234)
    log.log(FakeExchange(status=304, size=0), 7)
    assert not (tmp_path / "access.log").read_text()  # buffered until the tick
    log.flush()
    first, second = read_lines(tmp_path / "access.log")
    match = COMBINED.match(first)
    assert match, first
    assert match["host"] == "127.0.0.1" and match["request"] == "GET /a?b=1 HTTP/1.1"
    assert (match["status"], match["size"], match["us"]) == ("200", "12", "1234")
    assert match["pid"] == str(os.getpid())
    assert (match["referer"], match["agent"]) == ("http://x/", "curl/8")
    assert COMBINED.match(second)["size"] == "-"  # type: ignore[index]


def test_json_line_has_every_field(access: Any, tmp_path: Path) -> None:
    log = access("json")
    log.log(FakeExchange(headers=[("user-agent", "ua"), ("referer", "ref")]), 99)
    log.close()
    record = json.loads((tmp_path / "access.log").read_text())
    assert record["request"] == "GET /a?b=1 HTTP/1.1" and record["status"] == 200
    assert record["bytes"] == 12 and record["duration_us"] == 99
    assert record["pid"] == os.getpid() and record["peer"] == "127.0.0.1"
    assert record["user_agent"] == "ua" and record["referer"] == "ref"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", record["time"])


hostile = st.text(st.characters(max_codepoint=0x10FFFF), max_size=60) | st.sampled_from([
    'GET /"quoted"\\back HTTP/1.1', "GET /\x00\x01\x1b[31m\x7f HTTP/1.1",
    "GET /\r\nInjected: yes HTTP/1.1", "GET /\xff\xfe\xc3( HTTP/1.1", "\u2028\u2029\ud800"])


@settings(max_examples=200, deadline=None)
@given(line=hostile, agent=hostile, referer=hostile)
def test_any_input_is_one_valid_json_object_per_line(line: str, agent: str,
                                                     referer: str) -> None:
    log = logs.AccessLog.__new__(logs.AccessLog)
    log.fmt, log.pid, log.clock = "json", 1, logs._Clock()
    text = log.format(("::1", 1, 0, 0), line, 200, 5, 1, [("user-agent", agent),
                                                            ("referer", referer)])
    assert text.endswith("\n") and text.count("\n") == 1
    text.encode("utf-8")  # writable as UTF-8: no lone surrogate left in it
    record = json.loads(text)
    assert (record["request"], record["user_agent"], record["referer"]) == (
        as_text(line), as_text(agent), as_text(referer))


def as_text(wire: str) -> str:
    """What the JSON log shows for a value the parser decoded as Latin-1 (one character per
    byte): the bytes read as UTF-8, a byte that is not UTF-8 as \\xNN."""
    try:
        return wire.encode("latin-1").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return wire


def test_json_keeps_utf8_text(access: Any, tmp_path: Path) -> None:
    agent = "Mozilla/5.0 (Größe; 日本語)".encode().decode("latin-1")  # as the parser gives it
    log = access("json")
    log.log(FakeExchange(headers=[("user-agent", agent)], line="GET /\xff HTTP/1.1"), 1)
    log.close()
    raw = (tmp_path / "access.log").read_bytes()
    assert "Mozilla/5.0 (Größe; 日本語)".encode() in raw  # UTF-8 text, not \u escapes
    record = json.loads(raw)
    assert record["user_agent"] == "Mozilla/5.0 (Größe; 日本語)"
    assert record["request"] == "GET /\\xff HTTP/1.1"  # not UTF-8: shown, not mangled


def test_bytes_are_the_body_and_wire_bytes_have_their_own_field(access: Any,
                                                                  tmp_path: Path) -> None:
    exchange = FakeExchange(size=179)
    exchange.body_sent = 58  # type: ignore[attr-defined]
    for fmt in ("combined", "json", "%(b)s %(B)s %(O)s"):
        log = access(fmt)
        log.log(exchange, 1)
        log.close()
    combined, as_json, custom = read_lines(tmp_path / "access.log")
    assert COMBINED.match(combined)["size"] == "58"  # type: ignore[index]
    record = json.loads(as_json)
    assert (record["bytes"], record["bytes_sent"]) == (58, 179)
    assert custom == "58 58 179\n"


@settings(max_examples=200, deadline=None)
@given(line=hostile, agent=hostile)
def test_any_input_is_one_combined_line(line: str, agent: str) -> None:
    log = logs.AccessLog.__new__(logs.AccessLog)
    log.fmt, log.pid, log.clock = "combined", 1, logs._Clock()
    text = log.format(None, line, 404, 0, 1, [("user-agent", agent)])
    assert text.count("\n") == 1 and text.isascii() and text[:-1].isprintable()
    assert COMBINED.match(text), text


def test_custom_atoms(access: Any, tmp_path: Path) -> None:
    fmt = ("%(h)s|%(l)s|%(u)s|%(r)s|%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s|%(f)s|%(a)s|"
           "%(T)s|%(M)s|%(D)s|%(L)s|%(p)s|%({x-thing}i)s|%({missing}i)s|%({server}o)s|"
           "%(nonsense)s|%(t)s")
    log = access(fmt)
    log.log(FakeExchange(headers=[("x-thing", 'a"b'), ("user-agent", "ua")], size=0),
            2_500_000)
    log.flush()
    (line,) = read_lines(tmp_path / "access.log")
    fields = line.rstrip("\n").split("|")
    assert fields[:22] == [
        "127.0.0.1", "-", "-", "GET /a?b=1 HTTP/1.1", "GET", "/a", "b=1", "HTTP/1.1", "200",
        "0", "-", "-", "ua", "2", "2500", "2500000", "2.500000", f"<{os.getpid()}>",
        'a\\"b', "-", "-", "-"]
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", fields[22])


def test_custom_format_stays_on_one_line(access: Any, tmp_path: Path) -> None:
    log = access("%(r)s\n%(a)s")
    log.log(FakeExchange(line="GET /\r\nX: y HTTP/1.1", headers=[("user-agent", "a\nb")]), 1)
    log.flush()
    assert len(read_lines(tmp_path / "access.log")) == 1


def test_a_full_buffer_is_written_without_waiting(access: Any, tmp_path: Path) -> None:
    log = access()
    for _ in range(log.FLUSH_LINES):
        log.log(FakeExchange(), 1)
    assert len(read_lines(tmp_path / "access.log")) == log.FLUSH_LINES


def test_reopen_after_rotation_keeps_every_line_once(access: Any, tmp_path: Path) -> None:
    log = access("json")
    path = tmp_path / "access.log"
    for number in range(10):
        log.log(FakeExchange(line=f"GET /{number} HTTP/1.1"), 1)
        if number == 4:
            log.flush()
            path.rename(tmp_path / "access.log.1")  # logrotate's create mode
            path.touch()
        if number == 6:
            log.reopen()  # what USR1 does: the buffered /5 and /6 go to the old file
    log.close()
    old = [json.loads(x)["request"] for x in read_lines(tmp_path / "access.log.1")]
    new = [json.loads(x)["request"] for x in read_lines(path)]
    assert old == [f"GET /{n} HTTP/1.1" for n in range(7)]
    assert new == [f"GET /{n} HTTP/1.1" for n in range(7, 10)]


def test_pipe_writes_are_whole_lines_of_at_most_pipe_buf(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    writes: list[bytes] = []
    monkeypatch.setattr(logs, "_write_all", lambda fd, data: writes.append(data))
    try:
        log = logs.AccessLog.__new__(logs.AccessLog)
        log.fmt, log.pid, log.clock, log.lines = "combined", 1, logs._Clock(), []
        log.fd, log.owned, log.path = write_end, False, "-"
        log.regular = log._is_regular()
        assert not log.regular
        for number in range(100):
            log.write(None, f"GET /{'x' * number * 7} HTTP/1.1", 200, 1, 1, [])
        log.flush()
    finally:
        os.close(read_end)
        os.close(write_end)
    assert len(writes) > 1
    assert all(len(data) <= logs._PIPE_BUF and data.endswith(b"\n") for data in writes)
    assert b"".join(writes).count(b"\n") == 100


def test_error_log_prefixes_every_line(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    logs.configure_error_log(str(path), "info")
    logs.set_role("worker 7")
    try:
        logs.error_log.debug("not shown at info")
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            logs.error_log.exception("it failed on %r", "GET / HTTP/1.1")
    finally:
        logs.set_role("master")
        logs.configure_error_log("-", "info")
    lines = path.read_text().splitlines()
    assert len(lines) > 4 and "not shown" not in path.read_text()
    prefix = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \[(\d+)\] \[worker 7\] "
                        r"ERROR ")
    for line in lines:
        match = prefix.match(line)
        assert match and int(match[1]) == os.getpid(), line
    assert "it failed on 'GET / HTTP/1.1'" in lines[0]
    assert any("Traceback (most recent call last):" in line for line in lines)
    assert lines[-1].endswith("ValueError: thing") or lines[-2].endswith("ValueError: bad")


def test_reopen_on_request_only() -> None:
    assert not logs.reopen_if_asked()
    logs.ask_reopen()
    assert logs.reopen_if_asked()
    assert not logs.reopen_if_asked()
    assert logging.getLogger("forkhttpd.error") is logs.error_log


def test_fatal_error_dump_follows_a_reopened_error_log(tmp_path: Path) -> None:
    script = (
        "import faulthandler, os, resource, signal\n"
        "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
        "from forkhttpd.runtime import logs\n"
        f"logs.configure_error_log({str(tmp_path / 'error.log')!r})\n"
        "faulthandler.enable(file=logs.error_fd())\n"
        f"os.rename({str(tmp_path / 'error.log')!r}, {str(tmp_path / 'error.log.1')!r})\n"
        "logs.reopen_logs()\n"
        "def stuck_here():\n"
        "    os.kill(os.getpid(), signal.SIGABRT)\n"
        "stuck_here()\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            timeout=30)
    assert result.returncode == -6
    dump = (tmp_path / "error.log").read_text()
    assert "Fatal Python error: Aborted" in dump and "stuck_here" in dump
    assert (tmp_path / "error.log.1").read_text() == ""


def test_a_failed_reopen_keeps_the_old_files(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    logs.configure_error_log(str(folder / "error.log"))
    access = logs.AccessLog(str(folder / "access.log"))
    try:
        folder.rename(tmp_path / "gone")  # the path cannot be opened any more
        access.log(FakeExchange(), 1)
        logs.reopen_logs()
        logs.error_log.info("still here")
        access.log(FakeExchange(line="GET /after HTTP/1.1"), 1)
        access.flush()
    finally:
        access.close()
        logs.configure_error_log("-")
    errors = (tmp_path / "gone" / "error.log").read_text()
    assert "cannot reopen the error log" in errors and "cannot reopen the access log" in errors
    assert "still here" in errors
    assert "GET /after" in (tmp_path / "gone" / "access.log").read_text()
