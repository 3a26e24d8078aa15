"""Drop-in servers for programs written for http.server (HTTPServer, ThreadingHTTPServer),
pyhttp (BaseServer, ThreadedServer) and VSHS (startHTTPServer): each one's serve_forever()
makes the calling process the pre-fork master until it is stopped; must not fork, wait or
signal by itself (shutdown() asks the master package to signal the master) nor touch client
sockets (workers do).

The programs keep their shape: a class is constructed with the seed's arguments and binds
at once (so server_address and server_port are known), then serve_forever() blocks. The
pre-fork options (workers=..., and every setting of docs/settings.md by its underscored
name) are keyword-only. Each worker handles one request at a time; concurrency comes from
the number of workers, so the threaded variants are the same servers under their seed's
name.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import threading
import time
from typing import Any

from ..config.settings import BindAddress, Settings
from ..interfaces import build_embedded_adapter
from ..interfaces.compat import rootDir, with_server
from ..interfaces.compat_pyhttp import BaseHttpRequestHandler, pyhttp_adapter
from ..interfaces.router import build_router
from ..master.children import send
from ..master.listeners import BindError, open_listeners
from .embedded import embedded_settings
from .run import run_server

__all__ = ["BaseServer", "HTTPServer", "ThreadedServer", "ThreadingHTTPServer",
           "startHTTPServer"]


class _Serving:
    """serve_forever's bookkeeping shared by the drop-ins: which process is the master, and
    shutdown() from another thread or from a worker."""

    def __init__(self) -> None:
        self.master_pid: int | None = None
        self.stopped = threading.Event()
        self.stopped.set()
        self.exit_code: int | None = None

    def run(self, settings: Settings, make_adapter: Any, label: str) -> None:
        self.master_pid = os.getpid()
        self.stopped.clear()
        try:
            self.exit_code = run_server(settings, make_adapter, label=label)
        finally:
            self.master_pid = None
            self.stopped.set()
        if self.exit_code:
            # run_server has already said why on stderr, in one line: no traceback on top.
            raise SystemExit(self.exit_code)

    def shutdown(self, wait: bool = True) -> None:
        master = self.master_pid
        if master is None:
            return  # not serving: nothing to stop (socketserver would wait forever)
        if os.getpid() != master:  # in a worker: ask the master for a graceful stop
            send(master, signal.SIGTERM)
            return
        # Another thread of the master: the signal must wait until the master's own handler
        # is in place (SIGTERM's default would end the process), at most a few seconds.
        deadline = time.monotonic() + 5.0
        while signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None) and (
                time.monotonic() < deadline and not self.stopped.is_set()):
            time.sleep(0.01)
        if not self.stopped.is_set():
            send(master, signal.SIGTERM)
        if wait and threading.current_thread() is not threading.main_thread():
            self.stopped.wait()


def _inherited(sock: socket.socket) -> tuple[BindAddress, ...]:
    """The bound socket, as the master takes it over (a duplicate: the object stays usable
    for handle_request() and server_close() afterwards)."""
    return (BindAddress("fd", fd=os.dup(sock.fileno())),)


class HTTPServer(http.server.HTTPServer):
    """http.server.HTTPServer, pre-forked: `HTTPServer(server_address, RequestHandlerClass,
    bind_and_activate=True, *, workers=1, **settings)`.

    serve_forever() runs `workers` processes, each handing connections to the handler class
    as http.server does, with `self.server` this object; it returns after SIGTERM, SIGINT or
    shutdown() (from another thread, or from a handler in a worker). handle_request() serves
    one request in this process, without workers, as socketserver does.
    """

    def __init__(self, server_address: Any, RequestHandlerClass: Any,  # noqa: N803
                 bind_and_activate: bool = True, *, workers: int = 1,
                 **settings: Any) -> None:
        name = type(self).__name__
        embedded_settings(name, (), workers, settings)  # a wrong option fails here, not later
        self.workers = workers
        self.options = settings
        self._serving = _Serving()
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve with pre-forked workers until stopped (poll_interval: accepted, unused)."""
        settings = embedded_settings(type(self).__name__, _inherited(self.socket),
                                     self.workers, self.options)
        handler = with_server(self.RequestHandlerClass, self)
        name = getattr(self.RequestHandlerClass, "__qualname__",
                       type(self.RequestHandlerClass).__name__)
        self._serving.run(settings, lambda s: build_embedded_adapter(s, handler),
                          f"{name} ({type(self).__name__})")

    def shutdown(self) -> None:
        """Stop serve_forever() gracefully (requests in progress finish) and, from another
        thread, wait until it has returned; from a worker, ask the master and return."""
        self._serving.shutdown()


class ThreadingHTTPServer(HTTPServer):
    """http.server.ThreadingHTTPServer's name for the same pre-forked server: requests are
    handled concurrently by `workers` processes rather than by threads."""

    daemon_threads = True


class BaseServer:
    """pyhttp's BaseServer(host='localhost', port=8888, request_handler=
    BaseHttpRequestHandler, *, workers=1, **settings), pre-forked.

    It binds at once; serve_forever() runs `workers` processes, each constructing
    request_handler(conn, addr, server) for every connection (through process_request), and
    returns after SIGTERM, SIGINT or shutdown(); close() closes the listening socket.
    """

    def __init__(self, host: str = "localhost", port: int = 8888,
                 request_handler: Any = BaseHttpRequestHandler, *, workers: int = 1,
                 **settings: Any) -> None:
        self.host = host
        self.request_handler = request_handler
        self.settings = embedded_settings(type(self).__name__, (), workers, settings)
        try:
            sockets = open_listeners([BindAddress("tcp", host, int(port))],
                                     self.settings.backlog, self.settings.reuse_port,
                                     defer_accept=self.settings.defer_accept)
        except BindError as error:
            raise OSError(f"{type(self).__name__}: {error}") from None
        self.sock = sockets[0]
        self.port = self.sock.getsockname()[1]
        self._serving = _Serving()

    def process_request(self, conn: Any, addr: Any) -> None:
        """Handle one connection (in a worker): pyhttp's request_handler(conn, addr, self)."""
        self.request_handler(conn, addr, self)

    def serve_forever(self) -> None:
        import dataclasses

        settings = dataclasses.replace(self.settings, bind=_inherited(self.sock))
        self.settings = settings

        def make_adapter(current: Settings) -> Any:
            return build_router(current, pyhttp_adapter(self, current.header_timeout))

        handler = getattr(self.request_handler, "__qualname__", "handler")
        self._serving.run(settings, make_adapter, f"{handler} ({type(self).__name__})")

    def shutdown(self) -> None:
        """Stop serve_forever() gracefully (see HTTPServer.shutdown)."""
        self._serving.shutdown()

    def close(self) -> None:
        """Stop serving (when called from another thread) and close the listening socket."""
        self._serving.shutdown()
        self.sock.close()

    def __enter__(self) -> BaseServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ThreadedServer(BaseServer):
    """pyhttp's ThreadedServer: the same pre-forked server (concurrency comes from workers,
    not threads)."""


async def startHTTPServer(hostname: str = "localhost", port: int = 8080,  # noqa: N802
                          routes: str = "/routes", static: str | None = None, *,
                          workers: int = 1, **settings: Any) -> None:
    """VSHS's startHTTPServer: serve the routes directory (and the static directory) with
    pre-forked workers. Paths starting with "/" are relative to rootDir(), as in VSHS.

    Usable as `asyncio.run(startHTTPServer(...))`: it blocks inside, as the master does,
    until SIGTERM or SIGINT, then returns.
    """
    if routes.startswith("/"):
        routes = rootDir() + routes
    if static is not None and static.startswith("/"):
        static = rootDir() + static
    if not os.path.isdir(routes):
        raise FileNotFoundError(f"startHTTPServer: routes={routes!r} is not a directory")
    if static is not None and not os.path.isdir(static):
        raise FileNotFoundError(f"startHTTPServer: static={static!r} is not a directory")
    options: dict[str, Any] = {"routes": os.path.abspath(routes), **settings}
    if static is not None:
        options["static"] = (("/", os.path.abspath(static)),)
    config = embedded_settings("startHTTPServer", (BindAddress("tcp", hostname, int(port)),),
                               workers, options)
    # None: each generation's zygote is a fresh interpreter that imports the route files
    # (a reload picks up changed handlers), exactly as `forkhttpd --routes DIR`.
    _Serving().run(config, None, f"routes in {config.routes}")
