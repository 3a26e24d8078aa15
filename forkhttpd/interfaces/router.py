"""What sits in front of the app: --static and --cgi-dir mounts (longest URL prefix first), then
the --routes directory, then the app (or, with none, the current directory's files); must not
import the worker's loop or process, config or master, and imports what a mount or route needs
(cgi, static, routes) only when the settings ask for one.

A mount owns its whole prefix: /static matches /static and /static/..., never /staticky.
A mount at "/" takes every request no longer prefix and no route claimed, so with an app it
leaves the app nothing: give the files a narrower prefix then.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..worker.exchange import Exchange
from .native import native_adapter

if TYPE_CHECKING:
    from .routes import RoutesDirectory

__all__ = ["Router", "build_router"]

Adapter = Callable[[Exchange], None]


class Router:
    """Dispatch each request to the first of: a mount, a route, the fallback."""

    def __init__(self) -> None:
        self.mounts: list[tuple[str, Adapter]] = []
        self.routes: RoutesDirectory | None = None
        self.fallback: Adapter | None = None

    def mount(self, prefix: str, adapter: Adapter) -> None:
        self.mounts.append((prefix.rstrip("/"), adapter))
        self.mounts.sort(key=lambda item: len(item[0]), reverse=True)

    def __call__(self, exchange: Exchange) -> None:
        path = exchange.request.path
        for prefix, adapter in self.mounts:
            if prefix and (path == prefix or path.startswith(prefix + "/")):
                adapter(exchange)
                return
        routes = self.routes
        if routes is not None and routes.try_handle(exchange):
            return
        for prefix, adapter in self.mounts:
            if not prefix:
                adapter(exchange)
                return
        if self.fallback is not None:
            self.fallback(exchange)
        elif routes is not None:
            routes(exchange)  # its 404, through errors/404 when there is one


def _static(settings: Any, directory: str, prefix: str = "", listing: bool = False) -> Adapter:
    """Files of `directory`; `listing`: list directories whatever --list-directories says
    (the no-app default, which behaves like `python -m http.server`)."""
    from .static import StaticFiles

    return native_adapter(StaticFiles(
        directory, prefix=prefix, follow_symlinks=settings.follow_symlinks,
        list_directories=listing or settings.list_directories,
        show_hidden=settings.show_hidden,
        serve_hidden=settings.serve_hidden))


def build_router(settings: Any, app: Adapter | None) -> Adapter:
    """The adapter for the settings' mounts, routes and app (the app alone when that is all),
    behind --root-path when it is set."""
    adapter = _build_router(settings, app)
    if getattr(settings, "root_path", None):
        from .origin import RootPath

        return RootPath(settings.root_path, adapter)
    return adapter


def _build_router(settings: Any, app: Adapter | None) -> Adapter:
    if not settings.static and not settings.cgi_dir and not settings.routes:
        return app if app is not None else _static(settings, os.getcwd(), listing=True)
    router = Router()
    for mount in settings.static:
        if not os.path.isdir(mount.directory):
            raise ValueError(f"--static {mount}: no such directory")
        router.mount(mount.url_prefix, _static(settings, mount.directory, mount.url_prefix))
    for mount in settings.cgi_dir:
        from .cgi import CGIDirectory

        if not os.path.isdir(mount.directory):
            raise ValueError(f"--cgi-dir {mount}: no such directory")
        cgi = CGIDirectory(mount.url_prefix, mount.directory, settings.cgi_timeout, router)
        cgi.root_path = getattr(settings, "root_path", None) or ""
        router.mount(mount.url_prefix, cgi)
    if settings.routes:
        from .routes import RoutesDirectory

        router.routes = RoutesDirectory(settings.routes)
    if app is not None:
        router.fallback = app
    elif router.routes is None:
        router.fallback = _static(settings, os.getcwd(), listing=True)
    return router
