"""Adapters from a loaded application to "answer one Exchange"; must not import the worker's
loop or process, config or master (an adapter only talks to the Exchange it is given).

--interface auto decides from the object itself: a BaseHTTPRequestHandler subclass is a
handler class; a Flask, Django, Bottle or Pyramid application, or anything carrying
`__forkhttpd_interface__ = "wsgi"`, is WSGI; so is a plain function (or method) whose first
two parameters are named environ and start_response, which PEP 3333's examples and every
gunicorn tutorial write and no picohttp handler does. Any other callable is a native
(picohttp) handler. A callable that could be either is refused with the flag to pass: an
object whose __call__ takes (environ, start_response) (a class instance may well be a
picohttp handler object), or one with scope, receive, send (ASGI, which is not served).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..protocol import Limits
from ..worker.exchange import Exchange
from .native import native_adapter

__all__ = ["Adapter", "InterfaceError", "build_adapter", "build_app_adapter",
           "build_embedded_adapter", "detect_interface", "preload_modules"]

Adapter = Callable[[Exchange], None]

INTERFACES = ("native", "wsgi", "handler-class")
_WSGI_FRAMEWORKS = {  # (module, class) anywhere in the app's type's MRO
    ("flask.app", "Flask"), ("flask.sansio.app", "App"),
    ("django.core.handlers.wsgi", "WSGIHandler"), ("bottle", "Bottle"),
    ("pyramid.router", "Router"),
}


class InterfaceError(Exception):
    """The app does not fit the requested (or any detectable) interface."""


def _is_handler_class(app: Any) -> bool:
    """A BaseHTTPRequestHandler subclass, or a functools.partial of one (a common way to
    give SimpleHTTPRequestHandler its directory=)."""
    if isinstance(app, functools.partial):
        app = app.func
    if not isinstance(app, type):
        return False
    import http.server  # here, not at the top: the master imports this package too

    return issubclass(app, http.server.BaseHTTPRequestHandler)


def _is_wsgi_framework(app: Any) -> bool:
    kind = app if isinstance(app, type) else type(app)
    return any((k.__module__, k.__name__) in _WSGI_FRAMEWORKS for k in kind.__mro__)


def _parameters(app: Any) -> list[str]:
    import inspect  # only --interface auto needs it, and only in the zygote

    try:
        return list(inspect.signature(app).parameters)
    except (TypeError, ValueError):
        return []


def detect_interface(app: Any) -> str:
    """--interface auto: which adapter suits `app`."""
    marked = getattr(app, "__forkhttpd_interface__", None)
    if marked is not None:
        if marked not in INTERFACES:
            raise InterfaceError(f"{app!r} is marked __forkhttpd_interface__={marked!r}; "
                                 f"expected one of {', '.join(INTERFACES)}")
        if _is_handler_class(app) and marked != "handler-class":
            raise InterfaceError(f"{app!r} is a BaseHTTPRequestHandler class but marked "
                                 f"{marked!r}: pass --interface {marked} to confirm")
        return str(marked)
    if _is_handler_class(app):
        return "handler-class"
    if _is_wsgi_framework(app):
        return "wsgi"
    if not callable(app):
        raise InterfaceError(f"the app {app!r} is not callable; an app is a handler "
                             "function, a WSGI application or a request handler class")
    names = _parameters(app)
    if names[:2] == ["environ", "start_response"]:
        import inspect

        if (inspect.isfunction(app) or inspect.ismethod(app)) and not (
                inspect.iscoroutinefunction(app) or inspect.isgeneratorfunction(app)):
            return "wsgi"
        raise InterfaceError(f"{app!r} takes (environ, start_response) like a WSGI "
                             "application: pass --interface wsgi (or --interface native "
                             "if it is a picohttp handler)")
    if names[:3] == ["scope", "receive", "send"]:
        raise InterfaceError(f"{app!r} looks like an ASGI application, which forkhttpd "
                             "does not serve: pass --interface native if it is a handler")
    return "native"


def build_adapter(app: Any, interface: str = "auto", args: tuple[Any, ...] = (),
                  settings: Any = None) -> Adapter:
    """The adapter that answers requests with `app` through `interface`."""
    kind = detect_interface(app) if interface == "auto" else interface
    if kind == "native":
        if not callable(app):
            raise InterfaceError(f"--interface native: {app!r} is not callable")
        return native_adapter(app, args)
    if kind == "wsgi":
        from .wsgi import wsgi_adapter

        if not callable(app):
            raise InterfaceError(f"--interface wsgi: {app!r} is not callable")
        return wsgi_adapter(app, getattr(settings, "root_path", None) or "")
    if kind == "handler-class":
        from .handler_class import handler_class_adapter

        if not _is_handler_class(app):
            raise InterfaceError(f"--interface handler-class: {app!r} is not a subclass of "
                                 "http.server.BaseHTTPRequestHandler")
        if settings is None:
            return handler_class_adapter(app)
        return handler_class_adapter(
            app, _limits(settings), settings.keep_alive, settings.header_timeout,
            settings.max_keepalive_requests)
    raise InterfaceError(f"--interface {kind}: expected one of {', '.join(INTERFACES)}")


def _limits(settings: Any) -> Limits:
    return Limits(max_request_line=settings.limit_request_line,
                  max_header_fields=settings.limit_request_fields,
                  max_header_field_size=settings.limit_request_field_size,
                  max_body_size=settings.limit_request_body,
                  require_host=not settings.allow_missing_host)


def build_app_adapter(settings: Any) -> Adapter:
    """Load what the settings name (in a zygote or a check process, never in the master)."""
    from .loader import load_app
    from .router import build_router

    app = None
    if settings.app:
        target = load_app(settings.app, settings.chdir)
        try:
            app = build_adapter(target, settings.interface, settings=settings)
        except InterfaceError as error:  # name the setting, as the loader's errors do
            raise InterfaceError(f"--app {settings.app}: {error}") from None
    return build_router(settings, app)


def build_embedded_adapter(settings: Any, handler: Any, args: tuple[Any, ...] = ()) -> Adapter:
    """forkhttpd.HttpServer's app: the handler object it was given, behind the same router
    (--static, --routes, --cgi-dir) as an app named on the command line."""
    from .router import build_router

    return build_router(settings, build_adapter(handler, settings.interface, args,
                                                settings=settings))


def preload_modules() -> None:
    """Import forkhttpd's own app-loading modules while still privileged: the package may
    live where the --user cannot read (a root-only virtualenv or checkout), and only the
    app's code, not the server's, should need to be readable by that user."""
    import importlib

    for name in ("loader", "router", "wsgi", "handler_class", "routes", "static", "cgi", "sse",
                 "vshs"):
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ImportError:
            pass
