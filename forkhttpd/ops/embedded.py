"""forkhttpd.HttpServer: picohttp's embedding API on top of the pre-fork server; must not
fork or signal by itself (the master package does) nor touch client sockets (the worker
package does)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from ..config.settings import SETTINGS_BY_NAME, BindAddress, Settings
from ..config.types import InvalidValue, Mount
from ..interfaces import build_embedded_adapter
from ..interfaces.static import staticResource
from ..master.children import start_in_child, stop_child, wait_child
from .run import run_server

__all__ = ["HttpServer", "embedded_settings"]


def _typed(name: str, value: Any, owner: str) -> Any:
    """A keyword option's value checked by its row of the settings table: text as on the
    command line, numbers and booleans as in a config file, typed values as they are."""
    setting = SETTINGS_BY_NAME[name]
    kind = setting.type
    try:
        if isinstance(value, str):
            return kind.parse(value)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return kind.from_toml(list(value))
        if isinstance(value, (bool, int, float)):
            return kind.from_toml(value)
    except InvalidValue as error:
        reason = f" ({error.detail})" if error.detail else ""
        raise ValueError(f"{owner}: {name}={value!r}: expected {kind.expected}{reason}") \
            from None
    return value  # None, a BindAddress, Mounts...: dataclass typing is the caller's promise


def embedded_settings(owner: str, binds: tuple[BindAddress, ...], workers: int,
                      options: dict[str, Any]) -> Settings:
    """The Settings of a server started from Python (HttpServer and the compat classes):
    the table's defaults, `binds` and `workers`, and keyword `options` named as the settings
    are (keep_alive=..., access_logfile="-"); an unknown name is a TypeError that says so."""
    values: dict[str, Any] = {"bind": binds, "workers": _typed("workers", workers, owner)}
    for name, value in options.items():
        if name not in SETTINGS_BY_NAME or SETTINGS_BY_NAME[name].cli_only or name in (
                "bind", "config"):
            import difflib

            close = difflib.get_close_matches(name, list(SETTINGS_BY_NAME), n=1)
            hint = f" (did you mean {close[0]}=?)" if close else ""
            raise TypeError(f"{owner}: unknown option {name}={value!r}{hint}; the options are "
                            "the settings of docs/settings.md, named with underscores")
        values[name] = _typed(name, value, owner)
    static = values.get("static")
    if static is not None:
        values["static"] = tuple(Mount(*m) if not isinstance(m, Mount) else m for m in static)
    return dataclasses.replace(Settings(), **values)


class HttpServer:
    """HttpServer(port=80, handler=staticResource, args=(), threads=True, start=True,
    block=True, *, workers=1, host="", **settings): picohttp's parameters in picohttp's
    order, so its programs run unchanged; forkhttpd's own options are keyword-only.

    `threads` is accepted for picohttp's sake and changes nothing: each worker process
    handles one request at a time, and requests are handled concurrently by `workers`
    processes (threads=False, picohttp's "one request at a time", is workers=1).
    With block=True, start() serves in this process until SIGTERM/SIGINT and then returns;
    with block=False the server runs in a child process and stop() ends it. Any other
    keyword is a setting (keep_alive=..., timeout=..., access_logfile="-", ...).
    """

    def __init__(self, port: int = 80, handler: Callable[..., Any] = staticResource,
                 args: tuple[Any, ...] = (), threads: bool = True, start: bool = True,
                 block: bool = True, *, workers: int = 1, host: str = "",
                 **settings: Any) -> None:
        if not callable(handler):
            raise TypeError(f"HttpServer: handler must be callable, got {handler!r}")
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"HttpServer: args must be a tuple, got {args!r}")
        self.handler = handler
        self.args = tuple(args)
        self.threads = bool(threads)
        self.block = block
        self.settings = embedded_settings(
            "HttpServer", (BindAddress("tcp", host, int(port)),), workers, settings)
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

