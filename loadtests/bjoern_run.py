"""Run a WSGI app under bjoern with N pre-forked processes on one listening socket (bjoern
itself is a single process): `python loadtests/bjoern_run.py MODULE:APP HOST PORT WORKERS`.
For bench.py only. The parent forwards SIGTERM/SIGINT to its children by PID and exits when
they have; a child exits when its parent dies."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys


def main(argv: list[str]) -> int:
    target, host, port, workers = argv[0], argv[1], int(argv[2]), int(argv[3])
    import bjoern

    module, _, name = target.partition(":")
    app = getattr(importlib.import_module(module), name or "app")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                import ctypes

                ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                bjoern.server_run(sock, app)
            finally:
                os._exit(0)
        children.append(pid)

    def stop(_signum: int, _frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        while True:
            try:
                os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
