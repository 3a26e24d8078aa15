"""Handlers for the observability tests: fast answers of every status class, a slow one,
and one stuck where SIGALRM cannot reach it (only the master's SIGABRT/SIGKILL can)."""

from __future__ import annotations

import resource
import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forkhttpd import HttpRequest, HttpResponse


def stuck_where_no_alarm_reaches() -> None:
    time.sleep(60)


def handler(request: HttpRequest, response: HttpResponse) -> object:
    first = request.path[0] if request.path else ""
    if first == "slow":
        time.sleep(float(request.query.get("s", "2")))
        return "slow done"
    if first == "stuck":
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from the SIGABRT
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        stuck_where_no_alarm_reaches()
    if first == "status":
        response.status = int(request.query.get("code", "200"))
        return f"status {response.status}"
    if first == "boom":
        raise RuntimeError("observability test error")
    return "ok"
