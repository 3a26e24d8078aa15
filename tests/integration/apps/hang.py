"""Handlers that hang, for the --timeout tests: one can be interrupted, one cannot."""

import os
import time


def handler(request, response):
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
