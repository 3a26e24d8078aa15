"""Handlers that hang, for the --timeout tests: one can be interrupted, one cannot."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forkhttpd import HttpRequest, HttpResponse


def handler(request: HttpRequest, response: HttpResponse) -> object:
    first = request.path[0] if request.path else ""
    if first == "forever":
        time.sleep(3600)  # the master's SIGALRM interrupts this
        return "woke up"
    if first == "stubborn":
        while True:  # swallows even HandlerTimeout: only SIGABRT / SIGKILL end it
            try:
                time.sleep(3600)
            except BaseException:  # noqa: BLE001, S110
                pass
    return str(os.getpid())
