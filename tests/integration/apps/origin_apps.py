"""Apps that answer with what they were told about the request's origin (client address,
scheme, host, port, SCRIPT_NAME/PATH_INFO), as JSON, one per interface."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forkhttpd import HttpRequest, HttpResponse

_KEYS = ("REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME",
         "SERVER_PORT", "SCRIPT_NAME", "PATH_INFO", "HTTPS", "HTTP_X_FORWARDED_FOR")


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = json.dumps({key: environ.get(key) for key in _KEYS}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def native(request: HttpRequest, response: HttpResponse) -> None:
    response.headers["Content-Type"] = "application/json"
    response.data = json.dumps({"peer": list(request.peer) if isinstance(request.peer, tuple)
                                else request.peer, "path": request.raw_path})
