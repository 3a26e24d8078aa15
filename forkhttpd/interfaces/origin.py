"""Who asked and how, as gateway variables (a WSGI environ, CGI meta-variables): the client
address, scheme, host and port that a trusted proxy, a PROXY header or TLS establish, read from
the exchange's one answer; and --root-path; must not import the worker's loop or process,
config or master."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..worker.exchange import Exchange

__all__ = ["RootPath", "apply_origin", "split_root"]


def apply_origin(exchange: Exchange, env: dict[str, Any]) -> str:
    """Correct `env`'s REMOTE_ADDR/REMOTE_PORT (and REMOTE_HOST when present), HTTP_HOST,
    SERVER_NAME and SERVER_PORT as trusted proxies said, and set HTTPS=on for https (the
    variable CGI programs and many WSGI frameworks read); returns the scheme. Without
    forwarding fields and TLS, it changes nothing."""
    forwarded = exchange.forwarded
    if forwarded is None:
        scheme = exchange.conn.scheme
        if scheme == "https":
            env["HTTPS"] = "on"
        return scheme
    scheme = forwarded.scheme or exchange.conn.scheme
    if scheme == "https":
        env["HTTPS"] = "on"
    else:
        env.pop("HTTPS", None)
    if forwarded.client is not None:
        env["REMOTE_ADDR"] = forwarded.client
        if "REMOTE_HOST" in env:
            env["REMOTE_HOST"] = forwarded.client
        if forwarded.client_port is not None:
            env["REMOTE_PORT"] = str(forwarded.client_port)
        else:
            env.pop("REMOTE_PORT", None)  # the proxy's port would be a lie
    if forwarded.host is not None:
        env["HTTP_HOST"] = forwarded.host
        name = forwarded.host
        if name.startswith("["):
            name = name[:name.index("]") + 1]
        else:
            name = name.partition(":")[0]
        env["SERVER_NAME"] = name
    env["SERVER_PORT"] = forwarded.server_port(scheme, str(env.get("SERVER_PORT", "")))
    return scheme


def split_root(path: str, root: str) -> tuple[str, str]:
    """(SCRIPT_NAME, PATH_INFO) under --root-path `root`: a path that carries the prefix loses
    it (a proxy that passes it through); one that does not stays whole (a proxy that strips
    it). The prefix matches whole segments only: /app is not a prefix of /apple."""
    if path == root:
        return root, ""
    if path.startswith(root) and path[len(root)] == "/":
        return root, path[len(root):]
    return root, path


class RootPath:
    """In front of the router: requests under --root-path are routed without the prefix, so
    mounts, routes, static files and native handlers see the application's own paths (WSGI and
    CGI add it back as SCRIPT_NAME)."""

    __slots__ = ("root", "inner")

    def __init__(self, root: str, inner: Callable[[Exchange], None]) -> None:
        self.root = root
        self.inner = inner

    def __call__(self, exchange: Exchange) -> None:
        request = exchange.request
        _, path = split_root(request.path, self.root)
        request.path = path or "/"
        self.inner(exchange)
