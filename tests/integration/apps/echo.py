"""An echo handler: reads the whole body and answers 200 to any method and path, so that every
rejection the conformance runner sees comes from forkhttpd's protocol layer."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forkhttpd import HttpRequest, HttpResponse


def handler(request: HttpRequest, response: HttpResponse) -> None:
    body = request.body
    response.headers["Content-Type"] = "text/plain"
    response.data = (f"{request.method} {request.raw_path} {len(body)} "
                     f"{hashlib.sha256(body).hexdigest()[:16]}\n")
