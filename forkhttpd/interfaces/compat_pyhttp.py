"""pyhttp's request side (Request, BaseHttpRequestHandler, SocketWriter) over a connection a
worker hands over whole: files, directory listings and CGI scripts as pyhttp documents them;
must not import master or ops (pyhttp's BaseServer lives in ops/compat.py).

Where pyhttp was unsafe, this is not: a path never leaves the directory (no "..", encoded
separators or symlinks leading out), dot files and dot directories are a 404 unless the
server has serve_hidden, listings escape names and show URL paths rather than the server's
file system paths. A CGI script is a .py or .cgi file, as in pyhttp: it runs with its own
#! line when it is executable, else with this Python; its output may start with CGI header
fields (RFC 3875 6), or be the page itself (pyhttp's scripts print bare HTML).
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from ..worker.exchange import Exchange
from ..worker.parts import SERVER_NAME, imf_fixdate
from .static import content_type_for, map_path

__all__ = ["BaseHttpRequestHandler", "Request", "SocketWriter", "pyhttp_adapter"]

log = logging.getLogger("forkhttpd.error")

_MAX_HEAD = 1 << 20  # the worker already held the head to --limit-request-* before handing over
_MAX_FIELDS = 32768
_CHUNK = 1 << 16


class Request:
    """The request read from a client connection: `command`, `path` (the target as sent,
    query included), `http_ver`, `headers` (a dict, names as sent) and `body` (bytes; b""
    without Content-Length). `command` is None when the head is not a request line."""

    def __init__(self, conn: Any, max_body: int = 1 << 30) -> None:
        self.command: str | None = None
        self.path = ""
        self.http_ver = ""
        self.headers: dict[str, str] = {}
        self.body = b""
        self.chunked = False
        self.too_large = False
        # Read through a file, as http.server's handlers do: the worker's socket object
        # (or a plain socket) does the I/O.
        with conn.makefile("rb") as rfile:
            self._read(rfile, max_body)

    def _read(self, rfile: Any, max_body: int) -> None:
        lines: list[str] = []
        size = 0
        while len(lines) <= _MAX_FIELDS and size < _MAX_HEAD:
            line = rfile.readline(_MAX_HEAD)
            size += len(line)
            if line in (b"\r\n", b"\n", b""):
                break
            lines.append(line.decode("latin-1").rstrip("\r\n"))
        words = lines[0].split() if lines else []
        if len(words) != 3:
            return
        self.command, self.path, self.http_ver = words
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                self.headers[name.strip()] = value.strip()
        lowered = {name.lower(): value for name, value in self.headers.items()}
        self.chunked = "transfer-encoding" in lowered
        length = lowered.get("content-length", "0")
        wanted = int(length) if length.isdigit() else 0
        if wanted > max_body:
            self.too_large = True
            return
        self.body = rfile.read(wanted) if wanted else b""

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header field's value, whatever the case of its name."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default


class SocketWriter:
    """File-like writes to the client connection, each sent at once (unbuffered)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._file = sock.makefile("wb")
        self.written = 0

    def write(self, b: bytes) -> int:
        self._file.write(b)
        self._file.flush()
        self.written += len(b)
        return len(b)

    def close(self) -> None:
        """Shut the connection down and close it (safe to call twice)."""
        if self._file.closed:
            return
        try:
            self._file.close()
        except OSError:
            pass  # the client is gone: nothing left to flush to
        if getattr(self._sock, "closed", False):
            return
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._sock.close()


class BaseHttpRequestHandler:
    """pyhttp's handler: reads the request from `conn` and answers it from `directory` (the
    current directory by default) as soon as it is constructed, as pyhttp's does."""

    http_version = "HTTP/1.1"
    cgi_extensions = (".py", ".cgi")

    def __init__(self, conn: Any, addr: Any, server: Any, directory: str | None = None) -> None:
        self.conn = conn
        self.client_addr = addr
        self.server = server
        self.header_buffer: list[str] = []
        self.wfile = SocketWriter(conn)
        self.directory = os.path.realpath(directory or os.getcwd())
        settings = getattr(server, "settings", None)
        self.serve_hidden = bool(getattr(settings, "serve_hidden", False))
        self.cgi_timeout = float(getattr(settings, "cgi_timeout", 30.0))
        self.request = Request(conn, getattr(settings, "limit_request_body", 0) or 1 << 30)
        self.handle()

    # -- writing a response (pyhttp's names) -------------------------------------------------
    def send_response(self, http_status: HTTPStatus | int) -> None:
        status = HTTPStatus(http_status)
        self.header_buffer.append(f"{self.http_version} {status.value} {status.phrase}\r\n")
        self.send_header("Server", SERVER_NAME)
        self.send_header("Date", imf_fixdate(time.time()))

    def send_header(self, field: str, value: object) -> None:
        text = str(value)
        if any(c in text or c in field for c in "\r\n\0"):
            raise ValueError(f"header field {field!r} must not contain CR, LF or NUL")
        self.header_buffer.append(f"{field}: {text}\r\n")

    def end_header(self) -> None:
        self.header_buffer.append("\r\n")

    def flush_header(self) -> None:
        self.wfile.write("".join(self.header_buffer).encode("latin-1"))
        self.header_buffer = []

    def send_page(self, http_status: HTTPStatus | int, body: bytes,
                  content_type: str = "text/html; charset=utf-8",
                  fields: list[tuple[str, str]] | None = None) -> None:
        """A whole response with a bytes body (none for HEAD), then the connection closes."""
        self.send_response(http_status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", len(body))
        for name, value in fields or ():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_header()
        self.flush_header()
        if self.request.command != "HEAD":
            self.wfile.write(body)
        self.finish()

    def send_error(self, http_status: HTTPStatus | int, fields: list[tuple[str, str]] | None
                   = None) -> None:
        status = HTTPStatus(http_status)
        self.send_page(status, f"{status.value} {status.phrase}\n".encode(),
                       "text/plain; charset=utf-8", fields)

    def finish(self) -> None:
        self.wfile.close()

    # -- pyhttp's documented steps ----------------------------------------------------------
    def handle(self) -> None:
        """Dispatch: a directory's listing, a file, or a CGI script's output."""
        request = self.request
        if request.command is None:
            return self.send_error(HTTPStatus.BAD_REQUEST)
        if request.too_large:
            return self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        if request.command not in ("GET", "HEAD", "POST"):
            return self.send_error(HTTPStatus.METHOD_NOT_ALLOWED,
                                   [("Allow", "GET, HEAD, POST")])
        path = self.get_path(request.path)
        if path is None:
            return self.send_error(HTTPStatus.NOT_FOUND)
        if os.path.isdir(path):
            url_path = request.path.partition("?")[0]
            if not url_path.endswith("/"):  # relative links in the listing need the slash
                location = "/" + url_path.lstrip("/") + "/"  # never scheme-relative (//host)
                return self.send_page(HTTPStatus.MOVED_PERMANENTLY, b"", "text/plain",
                                      [("Location", location)])
            if request.command == "POST":
                return self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "GET, HEAD")])
            return self.send_page(HTTPStatus.OK, self.list_dir(path).encode("utf-8"))
        if os.path.isfile(path):
            return self.do_file(path)
        return self.send_error(HTTPStatus.NOT_FOUND)

    def get_path(self, path: str) -> str | None:
        """The absolute file system path a request target names under the directory, or None
        when it must not be served (leaves the directory, a dot file, malformed)."""
        raw = path.partition("?")[0].partition("#")[0]
        if not raw.startswith("/"):
            return None
        try:
            mapped = map_path(self.directory, raw, self.serve_hidden)
        except UnicodeDecodeError:
            return None
        if mapped is None:
            return None
        real = os.path.realpath(mapped)
        if real != self.directory and not real.startswith(self.directory + os.sep):
            return None  # a symlink that leads out
        return real

    def list_dir(self, path: str) -> str:
        """HTML listing the entries of the directory `path` (names escaped, sorted, dot
        entries left out unless serve_hidden, nothing that leads outside)."""
        import html
        from urllib.parse import quote

        shown = "/" + os.path.relpath(path, self.directory).replace(os.sep, "/")
        shown = "/" if shown == "/." else shown + "/"
        items = []
        try:
            names = sorted(os.listdir(path), key=lambda n: (n.lower(), n))
        except OSError:
            names = []
        for name in names:
            if name.startswith(".") and not self.serve_hidden:
                continue
            full = os.path.join(path, name)
            real = os.path.realpath(full)
            if not real.startswith(self.directory + os.sep):
                continue
            suffix = "/" if os.path.isdir(full) else ""
            href = html.escape(quote(name, errors="surrogateescape") + suffix)
            label = html.escape(name.encode("utf-8", "surrogateescape")
                                .decode("utf-8", "replace") + suffix)
            items.append(f'<li><a href="{href}">{label}</a></li>\n')
        title = html.escape(f"Directory listing for {shown}")
        return (f'<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>{title}'
                f"</title>\n</head>\n<body>\n<h1>{title}</h1>\n<hr>\n<ul>\n"
                + "".join(items) + "</ul>\n</body>\n</html>\n")

    def do_file(self, path: str) -> None:
        """A file's contents, or, for a CGI script, its output."""
        if path.endswith(self.cgi_extensions):
            return self.run_cgi(path)
        if self.request.command == "POST":
            return self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "GET, HEAD")])
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            return self.send_error(HTTPStatus.NOT_FOUND)
        with open(fd, "rb", buffering=0) as file:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return self.send_error(HTTPStatus.NOT_FOUND)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type_for(path, "application/octet-stream"))
            self.send_header("Content-Length", st.st_size)
            self.send_header("Last-Modified", imf_fixdate(st.st_mtime))
            self.send_header("Connection", "close")
            self.end_header()
            self.flush_header()
            if self.request.command != "HEAD":
                left = st.st_size
                while left > 0:
                    chunk = file.read(min(_CHUNK, left))
                    if not chunk:
                        break  # the file shrank: the client sees a short body, then EOF
                    self.wfile.write(chunk)
                    left -= len(chunk)
        self.finish()

    def run_cgi(self, path: str) -> None:
        """Run the script with the request's meta-variables, body on stdin, --cgi-timeout."""
        from .cgi import CGIError, parse_cgi_output

        request = self.request
        if request.chunked:
            return self.send_error(HTTPStatus.LENGTH_REQUIRED)
        command = [path] if os.access(path, os.X_OK) else [sys.executable, path]
        try:
            done = subprocess.run(command, input=request.body, capture_output=True,
                                  cwd=os.path.dirname(path), env=self._cgi_environ(path),
                                  timeout=self.cgi_timeout, check=False)
        except subprocess.TimeoutExpired:
            log.error("CGI %s ran longer than %gs; killed", path, self.cgi_timeout)
            return self.send_error(HTTPStatus.GATEWAY_TIMEOUT)
        except OSError as error:
            log.error("CGI %s could not run: %s", path, error)
            return self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)
        for line in done.stderr.decode("utf-8", "replace").splitlines()[:100]:
            log.warning("CGI %s: %s", os.path.basename(path), line)
        if done.returncode != 0 and not done.stdout:
            return self.send_error(HTTPStatus.BAD_GATEWAY)
        status = 200
        content_type = "text/html; charset=utf-8"
        extra: list[tuple[str, str]] = []
        body = done.stdout
        try:
            fields, rest = parse_cgi_output(done.stdout)
        except CGIError:
            fields = []  # no header block: the whole output is the page, as in pyhttp
        if fields:
            body = rest
            for name, value in fields:
                low = name.lower()
                if low == "status":
                    code = value.split(None, 1)[0] if value else ""
                    status = int(code) if code.isdigit() and 100 <= int(code) <= 599 else 502
                elif low == "content-type":
                    content_type = value
                elif low == "location":
                    extra.append((name, value))
                    if not any(n.lower() == "status" for n, _ in fields):
                        status = 302
                elif low not in ("content-length", "connection", "transfer-encoding"):
                    extra.append((name, value))
        try:
            code_status = HTTPStatus(status)
        except ValueError:
            code_status = HTTPStatus.BAD_GATEWAY
        self.send_page(code_status, body, content_type, extra)

    def _cgi_environ(self, path: str) -> dict[str, str]:
        request = self.request
        target, _, query = request.path.partition("?")
        sock_name = self.conn.getsockname()
        host, port = (sock_name[0], sock_name[1]) if isinstance(sock_name, tuple) else (
            "localhost", 0)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GATEWAY_INTERFACE": "CGI/1.1",
               "SERVER_SOFTWARE": SERVER_NAME, "SERVER_NAME": str(host),
               "SERVER_PORT": str(port), "SERVER_PROTOCOL": request.http_ver,
               "REQUEST_METHOD": request.command or "", "SCRIPT_NAME": target,
               "SCRIPT_FILENAME": path, "PATH_INFO": "", "QUERY_STRING": query,
               "REMOTE_ADDR": str(self.client_addr[0]) if self.client_addr else ""}
        if request.body:
            env["CONTENT_LENGTH"] = str(len(request.body))
        for name, value in request.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                env["CONTENT_TYPE"] = value
            elif key not in ("CONTENT_LENGTH", "PROXY") and key.replace("_", "").isalnum():
                env["HTTP_" + key] = value  # no HTTP_PROXY: "httpoxy"
        return env


def pyhttp_adapter(server: Any, header_timeout: float = 10.0) -> Callable[[Exchange], None]:
    """Answer each request as pyhttp's BaseServer would: server.process_request(conn, addr),
    which constructs its request_handler(conn, addr, server). The handler reads one request
    (forkhttpd has parsed it already, with its limits) and writes its own response; pyhttp
    closes the connection after every response, and so does forkhttpd here."""

    def handle(exchange: Exchange) -> None:
        sock = exchange.as_socket()
        sock.settimeout(header_timeout)
        peer = exchange.client  # a trusted proxy's word about the client
        client = peer if isinstance(peer, tuple) else (str(peer or "unix"), 0)
        try:
            server.process_request(sock, client)
        except OSError as error:  # the client went away mid-response
            log.debug("pyhttp handler: connection from %s ended: %s", client[0], error)
        except Exception:  # a bug in a handler subclass: logged, the worker lives on
            log.exception("pyhttp handler %s failed", getattr(
                server.request_handler, "__qualname__", server.request_handler))
        if sock.timed_out is not None:
            raise sock.timed_out  # a body timeout the handler caught: 408 if it can be
        if exchange.started:
            exchange.end_raw(False)

    return handle
