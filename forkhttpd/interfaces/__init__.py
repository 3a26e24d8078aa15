"""Adapters from a loaded application to "answer one Exchange"; must not import serve, worker
or arbiter (an adapter only talks to the Exchange it is given)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..exchange import Exchange
from .native import native_adapter

__all__ = ["Adapter", "InterfaceError", "app_label", "build_adapter", "build_app_adapter",
           "detect_interface"]

Adapter = Callable[[Exchange], None]


class InterfaceError(Exception):
    """The app does not fit the requested (or any detectable) interface."""


def detect_interface(app: Any) -> str:
    """--interface auto: which adapter suits `app`."""
    if not callable(app):
        raise InterfaceError(f"the app {app!r} is not callable; an app is a handler "
                             "function, a WSGI application or a request handler class")
    return "native"


def build_adapter(app: Any, interface: str = "auto", args: tuple[Any, ...] = ()) -> Adapter:
    """The adapter that answers requests with `app` through `interface`."""
    kind = detect_interface(app) if interface == "auto" else interface
    if kind == "native":
        if not callable(app):
            raise InterfaceError(f"--interface native: {app!r} is not callable")
        return native_adapter(app, args)
    raise InterfaceError(f"--interface {kind}: not supported yet")


def app_label(settings: Any) -> str:
    """How the app is named in titles and logs."""
    return str(settings.app) if settings.app else f"static files in {os.getcwd()}"


def build_app_adapter(settings: Any) -> Adapter:
    """Load what the settings name (in a zygote or a check process, never in the master)."""
    from ..loader import load_app
    from ..static import StaticFiles

    if settings.app:
        app = load_app(settings.app, settings.chdir)
        return build_adapter(app, settings.interface)
    return native_adapter(StaticFiles(os.getcwd(), follow_symlinks=settings.follow_symlinks))
