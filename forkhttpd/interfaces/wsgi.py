"""The WSGI interface (PEP 3333): environ, wsgi.input, start_response, write(), iterables,
wsgi.file_wrapper by sendfile; must not import the worker's loop or process, config or master
(it answers through the Exchange it is given).

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

from ..protocol import LocalProtocolError
from ..runtime.version import SERVER_SOFTWARE as _SOFTWARE
from ..worker.exchange import Exchange
from ..worker.parts import FileSlice, ResponseParts, ServerFields, trusted_fields
from .origin import apply_origin

__all__ = ["ErrorStream", "FileWrapper", "InputStream", "wsgi_adapter"]

log = logging.getLogger("forkhttpd.error")

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate",
                         "proxy-authorization", "te", "trailers", "transfer-encoding",
                         "upgrade"})


class InputStream:
    """wsgi.input: the request body as it arrives (chunked decoded); the first read sends
    100 Continue when the client asked for it. Every byte is copied a bounded number of
    times whatever the read sizes (a bytearray consumed from the front, and read() of the
    rest joins the pieces once), so a body costs linear time in its size; the protocol
    bounds that size (--limit-request-body)."""

    __slots__ = ("_read_chunk", "_buffer", "_done")

    def __init__(self, read_chunk: Callable[[], bytes]) -> None:
        self._read_chunk = read_chunk
        self._buffer = bytearray()
        self._done = False

    def _next(self) -> bytes:
        """The next piece of the body, b"" once it is over."""
        if self._done:
            return b""
        chunk = self._read_chunk()
        if not chunk:
            self._done = True
        return chunk

    def read(self, size: int | None = -1) -> bytes:
        buffer = self._buffer
        if size is None or size < 0:
            parts = [bytes(buffer)] if buffer else []
            buffer.clear()
            while chunk := self._next():
                parts.append(chunk)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        while len(buffer) < size:
            chunk = self._next()
            if not chunk:
                break
            if not buffer and len(chunk) == size:
                return chunk  # the common exact read: no copy
            buffer += chunk
        data = bytes(buffer[:size])
        del buffer[:size]  # cheap: CPython's bytearray drops a prefix without moving the rest
        return data

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        buffer = self._buffer
        searched = 0
        while True:
            end = buffer.find(b"\n", searched)
            if end >= 0 and (limit < 0 or end < limit):
                cut = end + 1
                break
            if 0 <= limit <= len(buffer):
                cut = limit
                break
            searched = len(buffer)
            chunk = self._next()
            if not chunk:
                cut = len(buffer)
                break
            buffer += chunk
        data = bytes(buffer[:cut])
        del buffer[:cut]
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


class _EmptyInput(InputStream):
    """wsgi.input of a request without a body: one shared, always-empty stream per worker."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(lambda: b"")
        self._done = True

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""


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


_STATUS_MEMO: dict[str, int] = {}
_ENVIRON_KEYS: dict[str, str | None] = {}  # request field name -> environ key (None: left out)
# an application's response fields -> (fields to send, close, Content-Length, which of
# Server and Date the server adds): most applications send the same few field lists
_FIELDS_MEMO: dict[tuple[tuple[str, str], ...], tuple[list[tuple[str, str]], bool, int | None,
                                                      tuple[bool, bool]]] = {}
_MEMO_LIMIT = 512  # entries per memo; a memo that fills up starts over


def _status(status: str) -> int:
    code = _STATUS_MEMO.get(status) if status.__class__ is str else None
    if code is not None:
        return code
    if not isinstance(status, str) or len(status) < 3 or not status[:3].isdigit():
        raise ValueError(f"WSGI status must be a str like '200 OK', got {status!r}")
    if len(_STATUS_MEMO) >= _MEMO_LIMIT:
        _STATUS_MEMO.clear()
    code = _STATUS_MEMO[status] = int(status[:3])
    return code


def _environ_key(name: str) -> str | None:
    if "_" in name:
        key = None
    elif name == "content-type":
        key = "CONTENT_TYPE"
    elif name == "content-length":
        key = "CONTENT_LENGTH"
    else:
        key = "HTTP_" + name.upper().replace("-", "_")
    if len(_ENVIRON_KEYS) >= _MEMO_LIMIT:
        _ENVIRON_KEYS.clear()
    _ENVIRON_KEYS[name] = key
    return key


def reset_memos() -> None:
    """Forget the remembered status lines, environ keys and connection addresses (tests)."""
    _STATUS_MEMO.clear()
    _ENVIRON_KEYS.clear()
    _FIELDS_MEMO.clear()
    WSGI_FIELDS.reset()
    _addresses[:] = [None, None]


def _server_address(exchange: Exchange) -> tuple[str, str]:
    local = exchange.local_address
    if isinstance(local, tuple):
        return str(local[0]), str(local[1])
    host = exchange.request.host or "localhost"
    name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    return (name, port) if name and port.isdigit() else (host, "80")


# The last connection and its address fields (SERVER_NAME, SERVER_PORT, REMOTE_ADDR and
# maybe REMOTE_PORT): a kept-alive connection asks the kernel for its local address once.
# Holding the connection object means no later connection can be mistaken for it.
_addresses: list[Any] = [None, None]


def _address_fields(exchange: Exchange) -> dict[str, str] | None:
    """The connection's address fields, or None when they depend on the request (a unix
    socket's SERVER_NAME comes from the Host field)."""
    conn = exchange.conn
    if _addresses[0] is conn:
        fields: dict[str, str] | None = _addresses[1]
        return fields
    local = exchange.local_address
    if not isinstance(local, tuple):
        return None
    fields = {"SERVER_NAME": str(local[0]), "SERVER_PORT": str(local[1])}
    peer = conn.peer
    if isinstance(peer, tuple):
        fields["REMOTE_ADDR"] = str(peer[0])
        fields["REMOTE_PORT"] = str(peer[1])
    else:
        fields["REMOTE_ADDR"] = ""
    _addresses[0], _addresses[1] = conn, fields
    return fields


_ERRORS = ErrorStream()  # one per worker: a line written here is logged when complete
_EMPTY_INPUT = _EmptyInput()
# What every request's environ starts from (copied, never changed).
_CONSTANT: dict[str, Any] = {
    "SCRIPT_NAME": "",
    "SERVER_SOFTWARE": _SOFTWARE,
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.input_terminated": True,  # read() ends at the end of the body, chunked too
    "wsgi.errors": _ERRORS,
    "wsgi.multithread": False,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
    "wsgi.file_wrapper": FileWrapper,
}


def build_environ(exchange: Exchange, root_path: str = "") -> dict[str, Any]:
    """The PEP 3333 environ of one request (`root_path`: --root-path, the SCRIPT_NAME; the
    router has already taken it off the path)."""
    request = exchange.request
    path = request.path
    environ = _CONSTANT.copy()
    if root_path:
        environ["SCRIPT_NAME"] = root_path
    environ["REQUEST_METHOD"] = request.method
    environ["PATH_INFO"] = (unquote_to_bytes(path).decode("latin-1") if "%" in path else path)
    environ["QUERY_STRING"] = request.query
    environ["SERVER_PROTOCOL"] = "HTTP/1.1" if request.version == "1.1" else (
        "HTTP/" + request.version)
    environ["REQUEST_URI"] = environ["RAW_URI"] = request.target
    environ["wsgi.input"] = (InputStream(exchange.read_chunk)
                             if request.chunked or request.content_length else _EMPTY_INPUT)
    addresses = _address_fields(exchange)
    if addresses is not None:
        environ.update(addresses)
    else:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = _server_address(exchange)
        peer = exchange.peer
        if isinstance(peer, tuple):
            environ["REMOTE_ADDR"] = str(peer[0])
            environ["REMOTE_PORT"] = str(peer[1])
        else:
            environ["REMOTE_ADDR"] = ""
    keys = _ENVIRON_KEYS
    for name, value in request.headers:
        key = keys.get(name, "")
        if key == "":
            key = _environ_key(name)
        if key is None:
            continue
        if key in environ:
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            environ[key] = value
    environ["wsgi.url_scheme"] = apply_origin(exchange, environ)  # after the fields it fixes
    return environ


# WSGI leaves every hop-by-hop field to the server (PEP 3333); Content-Length and Connection
# are always the server's (ServerFields).
WSGI_FIELDS = ServerFields(_HOP_BY_HOP - {"connection"})


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
        try:
            key: tuple[tuple[str, str], ...] | None = tuple(headers)
            known = _FIELDS_MEMO.get(key)  # type: ignore[arg-type]
        except TypeError:  # an unhashable value: not PEP 3333, but let the checks say so
            key = known = None
        if known is None:
            own = WSGI_FIELDS.split(headers)
            length: int | None = None
            if own.length is not None:
                if not own.length.strip().isdigit():
                    raise ValueError(
                        f"invalid Content-Length {own.length!r} from the application")
                length = int(own.length)
            known = (own.headers, own.close, length, own.trusted_wanted)
            if key is not None:
                if len(_FIELDS_MEMO) >= _MEMO_LIMIT:
                    _FIELDS_MEMO.clear()
                _FIELDS_MEMO[key] = known
        # the memo's field list is shared by the responses that hit it: nothing downstream
        # changes a ResponseParts' headers
        self.status, self.headers, self.length, self.close = code, known[0], known[2], known[1]
        self.trusted = trusted_fields(*known[3])
        return self.write

    def _begin(self, first: bytes, length: int | None) -> None:
        if not self.status:
            raise AssertionError("the application sent a body before start_response()")
        self.sent = True
        self.exchange.begin(self.status, self.headers, length, close=self.close, first=first,
                            trusted=self.trusted)

    def _respond(self, body: bytes) -> None:
        """The whole body at once: head and body in one send, which on a closing connection
        also carries the FIN (Exchange.respond)."""
        if not self.status:
            raise AssertionError("the application sent a body before start_response()")
        self.sent = True
        if body.__class__ is not bytes:
            body = bytes(body)
        self.exchange.respond(ResponseParts(self.status, self.headers, body, self.close,
                                            self.trusted))

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
        if not self.sent:
            kind = result.__class__
            if kind is FileWrapper and self.send_file(result):
                return
            if isinstance(result, (list, tuple)):
                # the common one-piece body: one send, with a length
                body = result[0] if len(result) == 1 else b"".join(result)
                if self.length is None or self.length == len(body):
                    self._respond(body)
                    return
        pieces = iter(result)
        for piece in pieces:
            if piece:
                if self.sent:
                    self.exchange.write(piece)
                elif self.length == len(piece):
                    # a framework's iterable whose first piece is the whole declared body
                    self._respond(piece)
                    for extra in pieces:
                        if extra:
                            raise LocalProtocolError(
                                "more body data than the declared Content-Length")
                    return
                else:
                    self._begin(piece, self.length)
        if not self.sent:
            self._begin(b"", self.length if self.length is not None else 0)
        self.exchange.finish()


def wsgi_adapter(app: Callable[..., Any], root_path: str = "") -> Callable[[Exchange], None]:
    """Wrap a WSGI application so that it answers Exchanges."""

    def handle(exchange: Exchange) -> None:
        environ = build_environ(exchange, root_path)
        response = _Response(exchange)
        result = app(environ, response.start_response)
        try:
            response.finish(result)
        finally:
            closer = getattr(result, "close", None)
            if closer is not None:
                closer()
            if _ERRORS._pending:
                _ERRORS.flush()

    return handle
