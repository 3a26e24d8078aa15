"""http.server handler classes served through forkhttpd's handler-class interface."""

from __future__ import annotations

import functools
import json
import os
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler


class EchoHandler(BaseHTTPRequestHandler):
    """A user subclass with do_GET and do_POST, speaking HTTP/1.1 (keep-alive)."""

    protocol_version = "HTTP/1.1"

    def _send(self, status: int, payload: dict[str, object]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._send(200, {"method": "GET", "path": self.path, "pid": os.getpid(),
                         "agent": self.headers.get("User-Agent"),
                         "client": self.client_address[0]})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(length).decode()
        self._send(201, {"method": "POST", "path": self.path, "data": data})

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


# SimpleHTTPRequestHandler given its directory, the way http.server's own main() does it
site_files = functools.partial(SimpleHTTPRequestHandler,
                               directory=os.path.join(os.path.dirname(__file__), "site"))


class ChunkedEchoHandler(EchoHandler):
    """Reads a chunked request body itself, as http.server leaves that to the class."""

    def do_POST(self) -> None:  # noqa: N802
        data = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                break
            data += self.rfile.read(size)
            self.rfile.readline()
        self._send(200, {"method": "POST", "path": self.path, "data": data.decode()})
