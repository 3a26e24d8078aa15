"""The WSGI interface (PEP 3333): environ, wsgi.input, start_response, write(), iterables,
wsgi.file_wrapper by sendfile; must not import serve, worker or arbiter (it answers through
the Exchange it is given).

The response head waits for the first non-empty body piece (or write(), or the end of the
iterable), so that an application failing before its first byte still gets a clean 500.
Without a Content-Length from the application, a body of one piece gets one; anything
longer is sent chunked to HTTP/1.1 clients and close-delimited to HTTP/1.0 ones.
Request fields whose names hold "_" are left out of the environ (as nginx and gunicorn do),
so that "X_Forwarded_For" can never pass for "X-Forwarded-For".
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from ..runtime.version import SERVER_SOFTWARE as _SOFTWARE
from ..worker.exchange import Exchange
from ..worker.parts import FileSlice, ResponseParts, trusted_fields

__all__ = ["ErrorStream", "FileWrapper", "InputStream", "wsgi_adapter"]

log = logging.getLogger("forkhttpd.error")

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate",
                         "proxy-authorization", "te", "trailers", "transfer-encoding",
                         "upgrade"})


class InputStream:
    """wsgi.input: the request body as it arrives (chunked decoded); the first read sends
    100 Continue when the client asked for it."""

    __slots__ = ("_read_chunk", "_buffer", "_done")

    def __init__(self, read_chunk: Callable[[], bytes]) -> None:
        self._read_chunk = read_chunk
        self._buffer = b""
        self._done = False

    def _more(self) -> bool:
        if self._done:
            return False
        chunk = self._read_chunk()
        if not chunk:
            self._done = True
            return False
        self._buffer += chunk
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._more():
                pass
            data, self._buffer = self._buffer, b""
            return data
        while len(self._buffer) < size and self._more():
            pass
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                cut = end + 1
                break
            if 0 <= limit <= len(self._buffer):
                cut = limit
                break
            if not self._more():
                cut = len(self._buffer)
                break
        data, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class ErrorStream:
    """wsgi.errors: text written here goes to the error log, a line at a time."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                log.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            log.error("%s", self._pending)
            self._pending = ""


class FileWrapper:
    """wsgi.file_wrapper: a file the server sends with sendfile when it can, else by blocks."""

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        closer = getattr(filelike, "close", None)
        if closer is not None:
            self.close = closer

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self.filelike.read(self.blksize)
            if not block:
                return
            yield block


def _status(status: str) -> int:
    if not isinstance(status, str) or len(status) < 3 or not status[:3].isdigit():
        raise ValueError(f"WSGI status must be a str like '200 OK', got {status!r}")
    return int(status[:3])


def _server_address(exchange: Exchange) -> tuple[str, str]:
    local = exchange.local_address
    if isinstance(local, tuple):
        return str(local[0]), str(local[1])
    host = exchange.request.host or "localhost"
    name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    return (name, port) if name and port.isdigit() else (host, "80")


def build_environ(exchange: Exchange) -> dict[str, Any]:
    """The PEP 3333 environ of one request."""
    request = exchange.request
    server_name, server_port = _server_address(exchange)
    path_info = (unquote_to_bytes(request.path).decode("latin-1") if "%" in request.path
                 else request.path)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path_info,
        "QUERY_STRING": request.query,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": "HTTP/" + request.version,
        "SERVER_SOFTWARE": _SOFTWARE,
        "REQUEST_URI": request.target,
        "RAW_URI": request.target,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": InputStream(exchange.read_chunk),
        "wsgi.input_terminated": True,  # read() ends at the end of the body, chunked too
        "wsgi.errors": ErrorStream(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    peer = exchange.peer
    if isinstance(peer, tuple):
        environ["REMOTE_ADDR"] = str(peer[0])
        environ["REMOTE_PORT"] = str(peer[1])
    else:
        environ["REMOTE_ADDR"] = ""
    for name, value in request.headers:
        if "_" in name:
            continue
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
        elif name == "content-length":
            environ["CONTENT_LENGTH"] = value
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in environ:
                separator = "; " if key == "HTTP_COOKIE" else ","
                environ[key] += separator + value
            else:
                environ[key] = value
    return environ


class _Response:
    """One response's start_response/write state."""

    __slots__ = ("exchange", "status", "headers", "length", "close", "sent", "trusted")

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.length: int | None = None
        self.close = False
        self.sent = False
        self.trusted = b""

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.sent:  # too late to change the head: let the error end the response
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # PEP 3333: avoid a reference cycle through the traceback
        elif self.status:
            raise AssertionError("start_response() called twice without exc_info")
        code = _status(status)
        kept: list[tuple[str, str]] = []
        length: int | None = None
        close = has_date = has_server = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-length":
                if not value.strip().isdigit():
                    raise ValueError(f"invalid Content-Length {value!r} from the application")
                length = int(value)
            elif lowered in _HOP_BY_HOP:
                close = close or (lowered == "connection" and "close" in value.lower())
            else:
                has_date = has_date or lowered == "date"
                has_server = has_server or lowered == "server"
                kept.append((name, value))
        self.status, self.headers, self.length, self.close = code, kept, length, close
        self.trusted = trusted_fields(not has_server, not has_date)
        return self.write

    def _begin(self, first: bytes, length: int | None) -> None:
        if not self.status:
            raise AssertionError("the application sent a body before start_response()")
        self.sent = True
        self.exchange.begin(self.status, self.headers, length, close=self.close, first=first,
                            trusted=self.trusted)

    def write(self, data: bytes) -> None:
        if not self.sent:
            self._begin(data, self.length)
        elif data:
            self.exchange.write(data)

    def send_file(self, wrapper: FileWrapper) -> bool:
        """Send a wsgi.file_wrapper'd regular file by sendfile; False if it is not one."""
        filelike = wrapper.filelike
        try:
            fd = filelike.fileno()
            st = os.fstat(fd)
            offset = filelike.tell()
        except (AttributeError, OSError, ValueError):
            return False
        if not stat.S_ISREG(st.st_mode) or not self.status:
            return False
        size = max(0, st.st_size - offset)
        if self.length is not None:
            size = min(size, self.length)
        self.sent = True
        parts = ResponseParts(self.status, self.headers, FileSlice(filelike, offset, size),
                              self.close, self.trusted)
        self.exchange.respond(parts)
        return True

    def finish(self, result: Any) -> None:
        if type(result) is FileWrapper and not self.sent and self.send_file(result):
            return
        if isinstance(result, list | tuple) and self.length is None and not self.sent:
            body = b"".join(result)  # the common one-piece body: one send, with a length
            self._begin(body, len(body))
            self.exchange.finish()
            return
        for piece in result:
            if piece:
                if self.sent:
                    self.exchange.write(piece)
                else:
                    self._begin(piece, self.length)
        if not self.sent:
            self._begin(b"", self.length if self.length is not None else 0)
        self.exchange.finish()


def wsgi_adapter(app: Callable[..., Any]) -> Callable[[Exchange], None]:
    """Wrap a WSGI application so that it answers Exchanges."""

    def handle(exchange: Exchange) -> None:
        environ = build_environ(exchange)
        response = _Response(exchange)
        result = app(environ, response.start_response)
        try:
            response.finish(result)
        finally:
            closer = getattr(result, "close", None)
            if closer is not None:
                closer()
            errors = environ["wsgi.errors"]
            if isinstance(errors, ErrorStream):
                errors.flush()

    return handle
