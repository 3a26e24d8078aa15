"""A WSGI app that leaves an orphan behind: GET /orphan double-forks a grandchild that lives a
second and exits, and answers with the grandchild's PID (as its PID namespace numbers it).
The middle child exits at once, so the grandchild is re-parented to the nearest subreaper (or
PID 1), which alone can reap it: whoever that is must, or it stays a zombie."""

import os
import time
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    read_fd, write_fd = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            grandchild = os.fork()
            if grandchild == 0:
                os.close(read_fd)
                os.close(write_fd)
                time.sleep(1.0)
                os._exit(0)
            os.write(write_fd, str(grandchild).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(middle, 0)
    answer = os.read(read_fd, 64)
    os.close(read_fd)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [answer]
