"""forkhttpd.HttpServer: picohttp's embedding API on top of the pre-fork server; must not
fork or signal by itself (the master package does) nor touch client sockets (the worker
package does)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from ..cli import run_server
from ..config.settings import BindAddress, Settings
from ..interfaces import build_embedded_adapter
from ..interfaces.static import staticResource
from ..master.children import start_in_child, stop_child, wait_child

__all__ = ["HttpServer"]


class HttpServer:
    """HttpServer(port=80, handler=staticResource, args=(), workers=1, host="", start=True,
    block=True): picohttp's positional order, so its examples run unchanged.

    With block=True, start() serves in this process until SIGTERM/SIGINT and then returns;
    with block=False the server runs in a child process and stop() ends it. Any other
    keyword is a setting (keep_alive=..., timeout=..., access_logfile="-", ...).
    """

    def __init__(self, port: int = 80, handler: Callable[..., Any] = staticResource,
                 args: tuple[Any, ...] = (), workers: int = 1, host: str = "",
                 start: bool = True, block: bool = True, **settings: Any) -> None:
        self.handler = handler
        self.args = tuple(args)
        self.block = block
        self.settings = dataclasses.replace(
            Settings(), bind=(BindAddress("tcp", host, int(port)),), workers=int(workers),
            **settings)
        self.pid: int | None = None
        self.exit_code: int | None = None
        if start:
            self.start()

    def _adapter(self, settings: Settings) -> Any:
        return build_embedded_adapter(settings, self.handler, self.args)

    def _run(self) -> int:
        name = getattr(self.handler, "__qualname__", type(self.handler).__name__)
        return run_server(self.settings, self._adapter, label=f"{name} (embedded)")

    def start(self) -> None:
        """Start serving: block until stopped, or return at once with block=False."""
        if not self.block:
            self.pid = start_in_child(self._run)
            return
        # This process becomes the master for a while: what the server changes for itself
        # (umask, working directory) is the embedding script's again once it returns.
        mask = os.umask(0o22)
        os.umask(mask)
        cwd = os.getcwd()
        try:
            self.exit_code = self._run()
        except KeyboardInterrupt:
            self.exit_code = 0
        finally:
            os.umask(mask)
            try:
                os.chdir(cwd)
            except OSError:
                pass  # the directory is gone; nowhere better to go

    def stop(self, graceful: bool = True) -> None:
        """Stop a server started with block=False (graceful: in-flight requests finish)."""
        if self.pid is not None:
            self.exit_code = stop_child(self.pid, graceful)
            self.pid = None

    def wait(self) -> int | None:
        """Wait for a block=False server to stop by itself (e.g. on a signal)."""
        if self.pid is not None:
            self.exit_code = wait_child(self.pid)
            self.pid = None
        return self.exit_code

    def __enter__(self) -> HttpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

