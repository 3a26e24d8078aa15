"""Error and access logs: formats, files, and reopening them on USR1; must not import worker,
interfaces or master (they all log through this).

Both logs write with os.write on a file opened O_APPEND, so that several processes can share
one file: an error-log record (every physical line prefixed with time, level, PID and role,
tracebacks included) is one write(); access-log lines are buffered in the worker and written
together at every heartbeat tick (0.25 s), on reopen and at exit, whole lines only, and in
pieces of at most PIPE_BUF bytes when the log is a pipe, so that lines never interleave.
Reopening (USR1) flushes to the old file first, then opens the path anew: after a rotation
every line is in exactly one of the two files.

--log-config replaces the error log's handler with the user's logging dictConfig (applied to
the whole process; reopening applies it again); the access log is not logging's and stays.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import select
import stat
import time
from typing import Any

__all__ = ["AccessLog", "ask_reopen", "configure_error_log", "configure_logging", "error_fd",
           "error_log", "log_refusal", "reopen_if_asked", "reopen_logs", "set_role"]

error_log = logging.getLogger("forkhttpd.error")

_state: dict[str, Any] = {"role": "master", "path": "-", "level": "info", "handler": None,
                          "access": None, "reopen": False, "config": None}
_DATEFMT = "%Y-%m-%d %H:%M:%S %z"
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_PIPE_BUF = getattr(select, "PIPE_BUF", 4096)


def _open_fd(path: str | None, default: int) -> tuple[int, bool]:
    """(fd, owned): the standard stream for "-", else the file opened for appending."""
    if path in (None, "", "-"):
        return default, False
    return os.open(path, _FLAGS, 0o644), True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue
        except OSError:
            return  # a full disk or a closed pipe must never take a process down


class _Formatter(logging.Formatter):
    """Every physical line gets the prefix: a traceback stays attributable and greppable."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = (f"{self.formatTime(record, _DATEFMT)} [{record.process}] "
                  f"[{_state['role']}] {record.levelname} ")
        if "\n" not in text:
            return prefix + text + "\n"
        return "".join(prefix + line + "\n" for line in text.splitlines())


class _FdHandler(logging.Handler):
    """One os.write() per record on an O_APPEND descriptor."""

    def __init__(self, fd: int, owned: bool) -> None:
        super().__init__()
        self.fd = fd
        self.owned = owned

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = self.format(record).encode("utf-8", "backslashreplace")
        except Exception:  # noqa: BLE001 - a bad log call is reported, never raised
            self.handleError(record)
            return
        _write_all(self.fd, data)

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
        super().close()


def configure_error_log(path: str = "-", level: str = "info",
                        log_config: dict[str, Any] | None = None) -> None:
    """Send forkhttpd's error log to `path` ("-" = stderr) at `level`; or, given a
    `log_config` (a dictConfig, from --log-config), apply it instead of all that.

    A dictConfig that cannot be applied raises ValueError (one line, cause included) and
    leaves the previous setup in place."""
    if log_config is not None:
        _apply_dict_config(log_config)
        return
    fd, owned = _open_fd(path, 2)
    handler = _FdHandler(fd, owned)
    handler.setFormatter(_Formatter("%(message)s"))
    old = _state["handler"]
    error_log.addHandler(handler)
    error_log.setLevel(level.upper())
    error_log.propagate = False
    _state.update(handler=handler, path=path, level=level, config=None)
    if faulthandler.is_enabled():  # keep fatal-error dumps going to the current file
        faulthandler.enable(file=fd, all_threads=True)
    if old is not None:
        error_log.removeHandler(old)
        old.close()


def configure_logging(settings: Any) -> None:
    """configure_error_log from the settings (read by attribute: the master's Settings or a
    zygote's plain copy); --log-config's file is read anew. Raises ValueError (one line
    naming --log-config) for a file that cannot be read or applied."""
    path = getattr(settings, "log_config", None)
    if not path:
        configure_error_log(settings.error_logfile, settings.log_level)
        return
    from .logconfig import LogConfigError, read_log_config

    try:
        configure_error_log(log_config=read_log_config(path))
    except (LogConfigError, ValueError) as error:
        raise ValueError(f"--log-config {path}: {error}") from None


def _with_role(factory: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = factory(*args, **kwargs)
        record.role = _state["role"]
        return record

    make.forkhttpd_role = True  # type: ignore[attr-defined]
    return make


def _apply_dict_config(config: dict[str, Any]) -> None:
    """Apply a --log-config dictConfig to the whole process: the user's handlers replace
    forkhttpd's built-in one. forkhttpd's own logger stays enabled and, unless the file
    configures it, hands its records to the root logger's handlers."""
    import copy
    import logging.config

    config = copy.deepcopy(config)  # dictConfig rewrites what it is given
    # Loggers made before the file is applied (forkhttpd's own, the app's) keep working
    # unless the file says otherwise: dictConfig's default would silence them.
    config.setdefault("disable_existing_loggers", False)
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "forkhttpd_role", False):  # %(role)s: master, worker 3...
        logging.setLogRecordFactory(_with_role(factory))
    try:
        logging.config.dictConfig(config)
    except (ValueError, TypeError, AttributeError, ImportError, OSError) as error:
        cause = error.__cause__
        raise ValueError(f"{error}: {cause}" if cause and str(cause) not in str(error)
                         else str(error)) from None
    old = _state["handler"]
    if old is not None:
        error_log.removeHandler(old)
        old.close()
    named = config.get("loggers", {})
    if "forkhttpd.error" not in named and "forkhttpd" not in named:
        error_log.setLevel(logging.NOTSET)
        error_log.propagate = True
    error_log.disabled = False
    _state.update(handler=None, config=config)
    if faulthandler.is_enabled():
        faulthandler.enable(file=error_fd(), all_threads=True)


def error_fd() -> int:
    """The descriptor the error log writes to (for faulthandler): with --log-config, that of
    the first handler of forkhttpd's logger (or the root's) that writes to a stream."""
    handler = _state["handler"]
    if handler is not None:
        return int(handler.fd)
    logger: logging.Logger | None = error_log
    while logger is not None:
        for candidate in logger.handlers:
            stream = getattr(candidate, "stream", None)
            if stream is None:
                continue
            try:
                return int(stream.fileno())
            except (OSError, ValueError, AttributeError):
                continue
        logger = logger.parent if logger.propagate else None
    return 2


def set_role(role: str) -> None:
    """The role shown on every error-log line of this process: master, worker 3, zygote 2."""
    _state["role"] = role


def reopen_logs() -> None:
    """Reopen both logs by name, so that a rotated file is let go of (loop context only)."""
    _state["reopen"] = False
    try:
        if _state["config"] is not None:  # applied again: its file handlers reopen by name
            configure_error_log(log_config=_state["config"])
        else:
            configure_error_log(_state["path"], _state["level"])
    except (OSError, ValueError) as error:  # keep writing to the old file rather than die
        error_log.error("cannot reopen the error log %s: %s", _state["path"], error)
    access = _state["access"]
    if access is not None:
        access.reopen()


def ask_reopen() -> None:
    """For a signal handler: note that the logs should be reopened (see reopen_if_asked)."""
    _state["reopen"] = True


def reopen_if_asked() -> bool:
    if _state["reopen"]:
        reopen_logs()
        return True
    return False


# -- the access log ---------------------------------------------------------------------------
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _Clock:
    """The access log's timestamps, formatted once per second."""

    __slots__ = ("second", "apache", "iso")

    def __init__(self) -> None:
        self.second = -1
        self.apache = self.iso = ""

    def tick(self) -> None:
        now = int(time.time())
        if now != self.second:
            self.second = now
            t = time.localtime(now)
            zone = time.strftime("%z", t)
            self.apache = (f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
                           f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {zone}")
            self.iso = (f"{t.tm_year}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:"
                        f"{t.tm_min:02d}:{t.tm_sec:02d}{zone[:3]}:{zone[3:]}")


class AccessLog:
    """One line per response: Apache combined format, JSON, or gunicorn-style %(atom)s."""

    FLUSH_LINES = 256  # a busy worker writes at least this often, besides every tick

    def __init__(self, path: str, fmt: str = "combined") -> None:
        self.path = path
        self.fmt = fmt
        self.pid = os.getpid()
        self.clock = _Clock()
        self.lines: list[str] = []
        self.fd, self.owned = _open_fd(path, 1)
        self.regular = self._is_regular()
        _state["access"] = self

    def _is_regular(self) -> bool:
        try:
            return stat.S_ISREG(os.fstat(self.fd).st_mode)
        except OSError:
            return False

    def reopen(self) -> None:
        self.flush()
        old, owned = self.fd, self.owned
        try:
            self.fd, self.owned = _open_fd(self.path, 1)
        except OSError as error:
            error_log.error("cannot reopen the access log %s: %s", self.path, error)
            return
        self.regular = self._is_regular()
        if owned:
            os.close(old)

    def close(self) -> None:
        self.flush()
        if self.owned:
            os.close(self.fd)
            self.owned = False
        if _state["access"] is self:
            _state["access"] = None

    def flush(self) -> None:
        lines, self.lines = self.lines, []  # swapped first: a signal can never write twice
        if not lines:
            return
        if self.regular:
            _write_all(self.fd, "".join(lines).encode("utf-8", "backslashreplace"))
            return
        piece: list[str] = []
        size = 0
        for line in lines:  # a pipe: writes up to PIPE_BUF are atomic, so keep lines whole
            if size + len(line) > _PIPE_BUF and piece:
                _write_all(self.fd, "".join(piece).encode("utf-8", "backslashreplace"))
                piece, size = [], 0
            piece.append(line)
            size += len(line)
        _write_all(self.fd, "".join(piece).encode("utf-8", "backslashreplace"))

    def log(self, exchange: Any, duration_us: int) -> None:
        """Log one finished Exchange (request, peer, status, body_sent, bytes_sent)."""
        request = exchange.request
        wire = exchange.bytes_sent
        self.write(exchange.client, request.request_line, exchange.status,
                   getattr(exchange, "body_sent", wire), duration_us, request.headers,
                   request, wire)

    def write(self, peer: object, request_line: str, status: int, size: int,
              duration_us: int, headers: list[tuple[str, str]], request: Any = None,
              wire: int | None = None) -> None:
        self.lines.append(self.format(peer, request_line, status, size, duration_us, headers,
                                      request, wire))
        if len(self.lines) >= self.FLUSH_LINES:
            self.flush()

    def format(self, peer: object, request_line: str, status: int, size: int,
               duration_us: int, headers: list[tuple[str, str]], request: Any = None,
               wire: int | None = None) -> str:
        """One line, newline included; never more than one line, whatever the input.

        `size` is the response body's bytes (Apache's %b, nginx's $body_bytes_sent, the
        combined format's field); `wire` every byte sent, head and framing included (%O,
        JSON's "bytes_sent"; the body's size when not known)."""
        referer = user_agent = ""
        for name, value in headers:
            if name == "referer":
                referer = value
            elif name == "user-agent":
                user_agent = value
        host = (str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")) or "-"
        self.clock.tick()
        fmt = self.fmt
        if fmt == "combined":
            return (f'{_escape(host)} - - [{self.clock.apache}] "{_escape(request_line)}" '
                    f'{status} {size or "-"} "{_escape(referer) or "-"}" '
                    f'"{_escape(user_agent) or "-"}" {duration_us} {self.pid}\n')
        if fmt == "json":
            return (f'{{"time":"{self.clock.iso}","peer":{_json_str(host)},'
                    f'"request":{_json_str(request_line)},"status":{status},"bytes":{size},'
                    f'"bytes_sent":{size if wire is None else wire},'
                    f'"duration_us":{duration_us},"pid":{self.pid},'
                    f'"user_agent":{_json_str(user_agent)},"referer":{_json_str(referer)}}}\n')
        atoms = _Atoms(self, host, request_line, status, size, duration_us, headers, request,
                       referer, user_agent, size if wire is None else wire)
        return (fmt % atoms).replace("\n", "\\n").replace("\r", "\\r") + "\n"


class _Atoms:
    """gunicorn's access-log atoms, computed only when the format asks for them."""

    def __init__(self, log: AccessLog, host: str, line: str, status: int, size: int,
                 duration_us: int, headers: list[tuple[str, str]], request: Any,
                 referer: str, user_agent: str, wire: int) -> None:
        self.log, self.host, self.line, self.status, self.size = log, host, line, status, size
        self.wire = wire
        self.us, self.headers, self.request = duration_us, headers, request
        self.referer, self.user_agent = referer, user_agent

    def _part(self, index: int) -> str:
        parts = self.line.split(" ")
        return parts[index] if len(parts) == 3 else "-"

    def __getitem__(self, key: str) -> str:
        value: object
        if key.startswith("{") and key.endswith("}i"):
            wanted = key[1:-2].lower()
            value = next((v for k, v in self.headers if k == wanted), "-")
        elif key in _SIMPLE:
            value = _SIMPLE[key](self)
        else:
            value = "-"  # {name}o, {name}e and unknown atoms: not recorded here
        return _escape(str(value))


def _target(atoms: _Atoms, query: bool) -> str:
    target = atoms._part(1)
    path, _, rest = target.partition("?")
    return rest if query else path


_SIMPLE: dict[str, Any] = {
    "h": lambda a: a.host, "l": lambda a: "-", "u": lambda a: "-",
    "t": lambda a: f"[{a.log.clock.apache}]", "r": lambda a: a.line,
    "m": lambda a: a._part(0), "U": lambda a: _target(a, False),
    "q": lambda a: _target(a, True), "H": lambda a: a._part(2),
    "s": lambda a: a.status, "B": lambda a: a.size, "b": lambda a: a.size or "-",
    "O": lambda a: a.wire,
    "f": lambda a: a.referer or "-", "a": lambda a: a.user_agent or "-",
    "T": lambda a: a.us // 1_000_000, "M": lambda a: a.us // 1000, "D": lambda a: a.us,
    "L": lambda a: f"{a.us / 1e6:.6f}", "p": lambda a: f"<{a.log.pid}>",
}


_json_encode: Any = None


def _json_str(text: str) -> str:
    """A JSON string literal that keeps UTF-8 text as text (json is imported only by a JSON
    access log). The parser hands over request lines and field values decoded as Latin-1,
    one character per byte: those bytes are read as UTF-8 again, and a byte that is not
    UTF-8 shows as \\xNN text; quotes, backslashes and control characters are escaped."""
    global _json_encode
    if _json_encode is None:
        from json.encoder import encode_basestring as _json_encode
    if not text.isascii():
        try:
            text = text.encode("latin-1").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            pass  # not from the wire (a character above U+00FF): already text
    # encode_basestring leaves U+2028/U+2029 and lone surrogates alone: valid JSON, but a
    # surrogate cannot be written as UTF-8, so those are escaped too.
    literal = str(_json_encode(text))
    if literal.isascii():
        return literal
    return "".join(c if c.isascii() or (c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF)
                   else f"\\u{ord(c):04x}" if ord(c) < 0x10000 else _json_pair(ord(c))
                   for c in literal)


def _json_pair(code: int) -> str:
    """A character outside the BMP as a JSON surrogate pair."""
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _escape(text: str) -> str:
    """Keep one request on one line: quotes, backslashes and control bytes escaped."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    out = []
    for char in text:
        code = ord(char)
        if char == '"' or char == "\\":
            out.append("\\" + char)
        elif code < 32 or code > 126:
            out.append(f"\\x{code:02x}" if code < 256 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)



def log_refusal(peer: object, request_line: str, status: int, response: bytes,
                duration_us: int) -> None:
    """For the worker's loop: an access-log line for a request the protocol refused (400,
    408, 413, 414, 431, 505...), with what is known of it: the client, the raw request line
    ("-" when none arrived), the status and the `response` sent (its body's bytes in the
    size field, all of it as the wire bytes, as for every response); no-op without an
    access log."""
    access: AccessLog | None = _state["access"]
    if access is not None:
        body = response.partition(b"\r\n\r\n")[2]  # the body's bytes, as for any response
        access.write(peer, request_line or "-", status, len(body), duration_us, [], None,
                     len(response))
