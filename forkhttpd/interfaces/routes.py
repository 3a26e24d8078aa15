"""A VSHS routes directory (--routes DIR): DIR/a/{name}/GET.py answers GET /a/<name> with its
default(url, body, route); must not import the worker's loop or process, config or
master.

Every route file is imported once, when the adapter is built (in the zygote: a broken file
stops the reload, with its traceback). A literal directory wins over a {variable} one at the
same depth, and a route that has the request's method wins over one that does not; a path
that only matches routes without the method gets 405 with Allow (OPTIONS: 204 with Allow).
HEAD runs GET.py when there is no HEAD.py. Errors (404, 405, 400 for a body its type cannot
describe, HTTPError, and 500 for any other exception, whose text is logged but never sent)
are rendered by the GET handler of the errors/{code} route when there is one.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import re
import sys
import traceback
from typing import Any
from urllib.parse import unquote

from ..worker.exchange import Exchange
from ..worker.parts import ResponseParts, error_parts, trusted_fields
from .loader import AppNotFound, AppRaised
from .response import HTTPError, HttpResponse, finalize
from .vshs import URL, BodyError, convert_body

__all__ = ["Route", "RoutesDirectory"]

log = logging.getLogger("forkhttpd.error")

_METHOD_FILE = re.compile(r"([A-Z]+)\.py")
_VARIABLE = re.compile(r"\{([^{}/]+)\}")
_HOST_PORT = re.compile(r"(.*?)(?::(\d{1,5}))?")


class Route:
    """What a handler gets as `route`: the route's path pattern, its variables, the method."""

    __slots__ = ("path", "vars", "method", "handler")

    def __init__(self, path: str, vars: dict[str, str], method: str, handler: Any) -> None:
        self.path = path
        self.vars = vars
        self.method = method
        self.handler = handler

    def __repr__(self) -> str:
        return f"<Route {self.method} {self.path} {self.vars}>"


class _Node:
    __slots__ = ("pattern", "literal", "variables", "methods")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.literal: dict[str, _Node] = {}
        self.variables: list[tuple[str, _Node]] = []
        self.methods: dict[str, Any] = {}

    def child(self, segment: str) -> _Node:
        pattern = f"{self.pattern.rstrip('/')}/{segment}"
        variable = _VARIABLE.fullmatch(segment)
        if variable is None:
            return self.literal.setdefault(segment, _Node(pattern))
        for name, node in self.variables:
            if name == variable[1]:
                return node
        node = _Node(pattern)
        self.variables.append((variable[1], node))
        return node

    def allow(self) -> str:
        methods = set(self.methods) | {"OPTIONS"}
        if "GET" in methods:
            methods.add("HEAD")
        return ", ".join(sorted(methods))


def _load(path: str, number: int) -> Any:
    name = f"forkhttpd_routes_{number}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AppNotFound(f"--routes: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise AppRaised(f"--routes: importing {path} raised {type(error).__name__}: {error}",
                        "".join(traceback.format_exception(error))) from None
    handler = getattr(module, "default", None)
    if not callable(handler):
        raise AppNotFound(f"--routes: {path} defines no default(url, body, route)")
    return handler


def _segments(raw_path: str) -> list[str]:
    parts = raw_path.split("/")[1:]
    if parts and parts[-1] == "":
        parts.pop()  # "/a/" is "/a"
    return [unquote(p, errors="replace") if "%" in p else p for p in parts]


def _url(exchange: Exchange) -> URL:
    request = exchange.request
    match = _HOST_PORT.fullmatch(request.host or "localhost")
    host, port = (match[1], match[2]) if match else ("localhost", None)
    return URL(request.path, request.query, host.strip("[]") or "localhost",
               int(port) if port else None)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _call(handler: Any, url: URL, body: Any, route: Route) -> Any:
    returned = handler(url, body, route)
    if inspect.isawaitable(returned):
        import asyncio  # only for async handlers: it costs every process ~6 MiB

        returned = asyncio.run(_await(returned))  # VSHS's async handlers, run to completion
    return returned


class RoutesDirectory:
    """The routes of one directory, matched against request paths."""

    def __init__(self, directory: str) -> None:
        if not os.path.isdir(directory):
            raise AppNotFound(f"--routes {directory}: no such directory")
        self.directory = directory
        self.tree = _Node("/")
        count = 0
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
            relative = os.path.relpath(dirpath, directory)
            node = self.tree
            for segment in ([] if relative == "." else relative.split(os.sep)):
                node = node.child(segment)
            for filename in sorted(filenames):
                method = _METHOD_FILE.fullmatch(filename)
                if method is not None:
                    count += 1
                    node.methods[method[1]] = _load(os.path.join(dirpath, filename), count)
        self.count = count

    def match(self, raw_path: str) -> list[tuple[_Node, dict[str, str]]]:
        """Every route whose pattern matches, the most specific first."""
        found: list[tuple[_Node, dict[str, str]]] = []
        segments = _segments(raw_path)

        def walk(node: _Node, index: int, variables: dict[str, str]) -> None:
            if index == len(segments):
                if node.methods:
                    found.append((node, dict(variables)))
                return
            segment = segments[index]
            literal = node.literal.get(segment)
            if literal is not None:
                walk(literal, index + 1, variables)
            if segment:
                for name, child in node.variables:
                    variables[name] = segment
                    walk(child, index + 1, variables)
                    del variables[name]

        walk(self.tree, 0, {})
        return found

    def try_handle(self, exchange: Exchange) -> bool:
        """Answer the request if a route matches its path; False (nothing sent) if none."""
        candidates = self.match(exchange.request.path)
        if not candidates:
            return False
        self._dispatch(exchange, candidates)
        return True

    def __call__(self, exchange: Exchange) -> None:
        if not self.try_handle(exchange):
            self._error(exchange, _url(exchange), 404, "Not Found")

    def _dispatch(self, exchange: Exchange,
                  candidates: list[tuple[_Node, dict[str, str]]]) -> None:
        request = exchange.request
        method = request.method
        url = _url(exchange)
        chosen = None
        for node, variables in candidates:
            handler = node.methods.get(method)
            if handler is None and method == "HEAD":
                handler = node.methods.get("GET")
            if handler is not None:
                chosen = Route(node.pattern, variables, method, handler)
                break
        if chosen is None:
            allow = candidates[0][0].allow()
            if method == "OPTIONS":
                exchange.respond(ResponseParts(204, [("Allow", allow)], b"",
                                               trusted=trusted_fields()))
            else:
                self._error(exchange, url, 405, "Method Not Allowed", [("Allow", allow)])
            return
        route = chosen
        has_body = request.chunked or bool(request.content_length)
        try:
            body = convert_body(exchange.read_body() if has_body else b"",
                                request.get_header("content-type"))
        except BodyError as error:
            self._error(exchange, url, 400, str(error))
            return
        try:
            parts = self._parts(_call(route.handler, url, body, route), 200)
        except HTTPError as error:
            self._error(exchange, url, error.status, error.message or str(error.status))
            return
        except Exception:
            log.exception("route %s %s failed", method, route.path)
            self._error(exchange, url, 500, "Internal Server Error")
            return
        exchange.respond(parts)

    @staticmethod
    def _parts(returned: Any, status: int) -> ResponseParts:
        """A returned value typed by VSHS's table; None is an empty 204 (or `status`)."""
        response = HttpResponse()
        response.status = status
        if returned is None:
            response.status = 204 if status == 200 else status
            response.data = b""
            return finalize(response)
        return finalize(response, returned)

    def _error(self, exchange: Exchange, url: URL, status: int, message: str,
               extra: list[tuple[str, str]] | None = None) -> None:
        """Answer an error, through errors/{code} when the directory has such a route."""
        parts = None
        for node, variables in self.match(f"/errors/{status}"):
            handler = node.methods.get("GET")
            if handler is None:
                continue
            try:
                parts = self._parts(_call(handler, url, message,
                                          Route(node.pattern, variables, "GET", handler)),
                                    status)
            except Exception:
                log.exception("the error route %s failed", node.pattern)
            break
        if parts is None:
            parts = error_parts(status, message)
        parts.headers.extend(extra or ())
        exchange.respond(parts)
