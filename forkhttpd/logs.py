"""Error and access logs: formats, files, and reopening them on USR1; must not import serve,
worker, arbiter or supervision (they all log through this)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import IO, Any

__all__ = ["AccessLog", "configure_error_log", "error_log", "reopen_logs", "set_role"]

error_log = logging.getLogger("forkhttpd.error")

_state: dict[str, Any] = {"role": "master", "path": "-", "handler": None, "access": None}


class _RoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.role = _state["role"]
        return True


_FORMAT = "%(asctime)s [%(process)d] [%(role)s] %(levelname)s %(message)s"


def _open_stream(path: str, default: IO[str]) -> IO[str]:
    if path in ("-", ""):
        return default
    return open(path, "a", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115


def configure_error_log(path: str = "-", level: str = "info") -> None:
    """Send forkhttpd's error log to `path` ("-" = stderr) at `level`."""
    old = _state["handler"]
    if old is not None:
        error_log.removeHandler(old)
        if old.stream not in (sys.stderr, sys.stdout):
            old.close()
    handler = logging.StreamHandler(_open_stream(path, sys.stderr))
    handler.setFormatter(logging.Formatter(_FORMAT, "%Y-%m-%d %H:%M:%S %z"))
    handler.addFilter(_RoleFilter())
    error_log.addHandler(handler)
    error_log.setLevel(level.upper())
    error_log.propagate = False
    _state["handler"] = handler
    _state["path"] = path
    _state["level"] = level


def set_role(role: str) -> None:
    """The role shown on every error-log line of this process: master, worker 3, zygote 2."""
    _state["role"] = role


def reopen_logs() -> None:
    """USR1: reopen the files by name, so that a rotated file is let go of."""
    configure_error_log(_state["path"], _state.get("level", "info"))
    access = _state["access"]
    if access is not None:
        access.reopen()


class AccessLog:
    """One line per response: Apache combined format, JSON, or gunicorn-style atoms."""

    def __init__(self, path: str, fmt: str = "combined") -> None:
        self.path = path
        self.fmt = fmt
        self.stream = _open_stream(path, sys.stdout)
        self.pid = os.getpid()
        _state["access"] = self

    def reopen(self) -> None:
        if self.stream not in (sys.stdout, sys.stderr):
            self.stream.close()
        self.stream = _open_stream(self.path, sys.stdout)

    def write(self, peer: object, request_line: str, status: int, size: int,
              duration_us: int, headers: list[tuple[str, str]]) -> None:
        referer = user_agent = ""
        for name, value in headers:
            if name == "referer":
                referer = value
            elif name == "user-agent":
                user_agent = value
        host = peer[0] if isinstance(peer, tuple) else (str(peer) if peer else "-")
        if self.fmt == "json":
            line = json.dumps({
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "peer": host,
                "request": request_line, "status": status, "bytes": size,
                "duration_us": duration_us, "pid": self.pid, "user_agent": user_agent,
                "referer": referer}, ensure_ascii=True)
        else:
            stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
            line = (f'{host} - - [{stamp}] "{_escape(request_line)}" {status} {size or "-"} '
                    f'"{_escape(referer) or "-"}" "{_escape(user_agent) or "-"}" {duration_us}')
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass


def _escape(text: str) -> str:
    """Keep one request on one line: quotes, backslashes and control bytes escaped."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    out = []
    for char in text:
        if char == '"' or char == "\\":
            out.append("\\" + char)
        elif not char.isprintable() or ord(char) > 126:
            out.append(f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)
