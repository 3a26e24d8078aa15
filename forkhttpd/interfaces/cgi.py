"""CGI/1.1 programs (RFC 3875) under --cgi-dir URL_PREFIX=DIR, run with subprocess; must not
import the worker's loop or process, config or master, and never forks by itself (subprocess
does, without a shell).

Only executable regular files inside DIR run (the same path rules as static files: anything
that could leave DIR, and dot files, are a 404). The script gets the RFC 3875 meta-variables
(and no Proxy header: "httpoxy"), the request body on stdin, its directory as working
directory, a process group of its own, and --cgi-timeout seconds (then that whole group is
killed: 504). Its stderr goes to the error log. Its output's Status, Location and
Content-Type fields shape the response; a Location path (no scheme) is a local redirect,
answered as a GET of that path. Output without a proper header block is a 502.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from urllib.parse import unquote

from ..protocol import Request
from ..worker.exchange import Exchange
from ..worker.parts import SERVER_NAME, ResponseParts, ServerFields, error_parts
from .origin import apply_origin
from .static import resolve_path

__all__ = ["CGIDirectory", "CGIError", "parse_cgi_output"]

log = logging.getLogger("forkhttpd.error")

_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_STATUS = re.compile(r"([1-5][0-9][0-9])(?:[ \t]+(.*))?")
# Framing is the server's (and Status became the status line); a script's "Connection"
# is dropped without closing the connection.
CGI_FIELDS = ServerFields(frozenset({"transfer-encoding", "status", "keep-alive", "upgrade"}),
                          honour_close=False)
_MAX_HEADER_LINES = 100
_MAX_REDIRECTS = 5
_depth = [0]  # local redirects in progress (a worker handles one request at a time)


# After the group is killed its pipes close at once; a descendant that left the group
# (setsid) and still holds one is not waited for longer than this
_KILL_GRACE = 2.0


def _stop_group(proc: subprocess.Popen[bytes]) -> bytes:
    """Kill the program's whole process group and reap the program; its stderr so far.

    Called only before the program was reaped (returncode None), so proc.pid still names
    it, or its zombie, and the group it leads cannot belong to anyone else."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group is gone already
    try:
        return proc.communicate(timeout=_KILL_GRACE)[1]
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return b""


class CGIError(Exception):
    """The program's output is not a CGI response (answered with 502)."""


def parse_cgi_output(output: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Split a CGI response into its header fields and body (RFC 3875 6.2, 6.3)."""
    fields: list[tuple[str, str]] = []
    pos = 0
    while True:
        end = output.find(b"\n", pos)
        if end < 0:
            raise CGIError("no empty line after the header fields")
        line = output[pos:end].rstrip(b"\r")
        pos = end + 1
        if not line:
            return fields, output[pos:]
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise CGIError(f"malformed header line {line[:80]!r}")
        if len(fields) >= _MAX_HEADER_LINES:
            raise CGIError("too many header lines")
        fields.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))


class CGIDirectory:
    """Run the programs of `directory` for URLs under `prefix`."""

    root_path = ""  # --root-path (the router sets it): the prefix a proxy mounts us at

    def __init__(self, prefix: str, directory: str, timeout: float = 30.0,
                 redispatch: Callable[[Exchange], None] | None = None) -> None:
        self.prefix = prefix.rstrip("/")
        self.root = os.path.realpath(directory)
        self.timeout = timeout
        self.redispatch = redispatch

    def find(self, rest: str) -> tuple[str, str, str] | None:
        """(program, SCRIPT_NAME, PATH_INFO) for the raw path below the prefix, or None."""
        raw = [s for s in rest.split("/") if s]
        for count in range(1, len(raw) + 1):
            try:
                path = resolve_path(self.root, "/" + "/".join(raw[:count]))
            except UnicodeDecodeError:
                return None
            if path is None or unquote(raw[count - 1]).startswith("."):
                return None
            try:
                st = os.stat(path)
            except OSError:
                return None
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
                return None
            script_name = self.prefix + "/" + "/".join(raw[:count])
            path_info = "".join("/" + unquote(s, errors="replace") for s in raw[count:])
            if rest.endswith("/") and count < len(raw):
                path_info += "/"
            return path, unquote(script_name, errors="replace"), path_info
        return None

    def __call__(self, exchange: Exchange) -> None:
        request = exchange.request
        found = self.find(request.path[len(self.prefix):])
        if found is None:
            exchange.respond(error_parts(404, "Not Found"))
            return
        program, script_name, path_info = found
        body = exchange.read_body() if (request.chunked or request.content_length) else b""
        env = self.environ(exchange, program, script_name, path_info, body)
        result = self.run(exchange, program, env, body, script_name)
        if result is None:
            exchange.respond(error_parts(504, "Gateway Timeout"))
            return
        try:
            parts = self.response(exchange, result, script_name)
        except CGIError as error:
            log.error("CGI %s: %s", script_name, error)
            exchange.respond(error_parts(502, "Bad Gateway"))
            return
        if parts is not None:
            exchange.respond(parts)

    def environ(self, exchange: Exchange, program: str, script_name: str, path_info: str,
                body: bytes) -> dict[str, str]:
        """The RFC 3875 4.1 meta-variables (plus PATH, REQUEST_URI, SCRIPT_FILENAME)."""
        request = exchange.request
        local = exchange.local_address
        peer = exchange.peer
        host = request.host or "localhost"
        script_name = self.root_path + script_name  # --root-path: the prefix a proxy mounts us at
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": SERVER_NAME,
            "SERVER_PROTOCOL": "HTTP/" + request.version,
            "SERVER_NAME": str(local[0]) if isinstance(local, tuple) else host,
            "SERVER_PORT": str(local[1]) if isinstance(local, tuple) else "80",
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": script_name,
            "SCRIPT_FILENAME": program,
            "PATH_INFO": path_info,
            "QUERY_STRING": request.query,
            "REQUEST_URI": request.target,
            "REMOTE_ADDR": str(peer[0]) if isinstance(peer, tuple) else "",
            "REMOTE_HOST": str(peer[0]) if isinstance(peer, tuple) else "",
        }
        if isinstance(peer, tuple):
            env["REMOTE_PORT"] = str(peer[1])
        if body:
            env["CONTENT_LENGTH"] = str(len(body))
        for name, value in request.headers:
            if name == "content-type":
                env["CONTENT_TYPE"] = value
            elif name == "authorization":
                env["AUTH_TYPE"] = value.split(" ", 1)[0]  # never the credentials
            elif name in ("content-length", "proxy", "proxy-authorization") or "_" in name:
                continue
            else:
                key = "HTTP_" + name.upper().replace("-", "_")
                env[key] = env[key] + ", " + value if key in env else value
        apply_origin(exchange, env)  # a trusted proxy's word, TLS: after the fields it fixes
        return env

    def run(self, exchange: Exchange, program: str, env: dict[str, str], body: bytes,
            script_name: str) -> tuple[int, bytes] | None:
        """Run the program; (exit code, stdout), or None when it ran out of time.

        The program leads a process group of its own (a new session), and the deadline
        covers that whole group: a child it leaves behind holding stdout (`cmd &`) keeps
        the output open, so it is the group that is killed at the deadline, not only the
        program, and the answer is a 504 at --cgi-timeout, never a worker stuck on a pipe.
        """
        try:
            proc = subprocess.Popen([program], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env,
                                    cwd=os.path.dirname(program), start_new_session=True)
        except OSError as error:
            log.error("CGI %s: cannot run %s: %s", script_name, program, error)
            return 1, b""
        deadline = time.monotonic() + self.timeout
        data: bytes | None = body
        finished = False
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    err = _stop_group(proc)
                    self._log_stderr(script_name, err)
                    log.error("CGI %s: its process group killed after %.1fs (--cgi-timeout)",
                              script_name, self.timeout)
                    return None
                try:
                    # communicate() reads until EOF on stdout and stderr: a child that
                    # inherited them keeps it waiting after the program itself exited
                    out, err = proc.communicate(data, timeout=min(1.0, left))
                    finished = True
                    break
                except subprocess.TimeoutExpired:
                    data = None  # a retry continues the same exchange (input already queued)
                    exchange.beat()  # the worker waits on its program, it is not stuck
        finally:
            if not finished and proc.returncode is None:
                _stop_group(proc)  # an exception (a signal) while waiting: leave nothing behind
        self._log_stderr(script_name, err)
        return proc.returncode, out

    @staticmethod
    def _log_stderr(script_name: str, err: bytes) -> None:
        for line in err.decode("utf-8", "replace").splitlines():
            log.warning("CGI %s: %s", script_name, line)

    def response(self, exchange: Exchange, result: tuple[int, bytes],
                 script_name: str) -> ResponseParts | None:
        """The response the program's output describes (None after a local redirect)."""
        code, output = result
        if not output:
            raise CGIError(f"no output (exit status {code})")
        fields, body = parse_cgi_output(output)
        status, reason_given = 200, False
        location = content_type = None
        for name, value in fields:
            lowered = name.lower()
            if lowered == "status":
                match = _STATUS.fullmatch(value)
                if match is None:
                    raise CGIError(f"invalid Status {value!r}")
                status, reason_given = int(match[1]), True
            elif lowered == "location":
                location = value
            elif lowered == "content-type":
                content_type = value
        own = CGI_FIELDS.split(fields)  # the script's own Date or Server replaces ours
        if location is not None:
            local = location.startswith("/") and not location.startswith("//")
            if local and len(fields) == 1 and self.redispatch is not None:
                self._local_redirect(exchange, location)
                return None
            if not reason_given:
                status = 302  # RFC 3875 6.2.3: a client redirect
        if content_type is None and body and exchange.request.method != "HEAD":
            raise CGIError("a body without Content-Type")
        return ResponseParts(status, own.headers, body, trusted=own.trusted)

    def _local_redirect(self, exchange: Exchange, location: str) -> None:
        """RFC 3875 6.2.2: answer as if the client had asked for `location` (with GET)."""
        if _depth[0] >= _MAX_REDIRECTS:
            raise CGIError("too many local redirects")
        old = exchange.request
        path, _, query = location.partition("?")
        headers = [(n, v) for n, v in old.headers
                   if n not in ("content-length", "content-type", "transfer-encoding")]
        exchange.request = Request("GET", location, path, query, old.version, headers,
                                   old.host, None, False, old.keep_alive, False,
                                   f"GET {location} HTTP/{old.version}")
        _depth[0] += 1
        try:
            assert self.redispatch is not None
            self.redispatch(exchange)
        finally:
            _depth[0] -= 1
            exchange.request = old

