"""A handler that leaks 5 MiB per request (pages touched, so RSS grows), for --max-rss;
?mib=N leaks N MiB at once, ?sleep=S then keeps the handler busy for S seconds."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forkhttpd import HttpRequest, HttpResponse

LEAK: list[bytes] = []


def handler(request: HttpRequest, response: HttpResponse) -> object:
    LEAK.append(b"x" * (int(request.query.get("mib", "5")) << 20))
    time.sleep(float(request.query.get("sleep", "0")))
    return f"{os.getpid()} {len(LEAK)}"
