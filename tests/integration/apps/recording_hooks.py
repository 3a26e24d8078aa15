"""Server hooks for the hooks tests: each appends one JSON line (the hook, the process it ran
in, what its view said) to $HOOKS_LOG, then raises if its name is in $HOOKS_RAISE (a comma
list), to test that a hook that raises is logged with its name and, except on_starting and
when_ready, never takes the server down."""

import json
import os
from typing import Any

RAISE = set(filter(None, os.environ.get("HOOKS_RAISE", "").split(",")))


def _record(name: str, **fields: Any) -> None:
    line = json.dumps({"hook": name, "in": os.getpid(), **fields})
    with open(os.environ["HOOKS_LOG"], "a") as log:
        log.write(line + "\n")
    if name in RAISE:
        raise RuntimeError(f"{name} failed on purpose")


def _server(server: Any) -> dict[str, Any]:
    return {"pid": server.pid, "generation": server.generation, "workers": server.workers,
            "app": server.app, "addresses": list(server.addresses),
            "timeout": server.settings["timeout"]}


def _worker(worker: Any) -> dict[str, Any]:
    return {"pid": worker.pid, "number": worker.number, "generation": worker.generation,
            "master_pid": worker.master_pid, "timeout": worker.settings["timeout"]}


def on_starting(server: Any) -> None:
    _record("on_starting", **_server(server))


def when_ready(server: Any) -> None:
    _record("when_ready", **_server(server))


def on_reload(server: Any) -> None:
    _record("on_reload", **_server(server))


def post_fork(worker: Any) -> None:
    _record("post_fork", **_worker(worker))


def worker_exit(worker: Any) -> None:
    _record("worker_exit", **_worker(worker))


def worker_abort(worker: Any) -> None:
    _record("worker_abort", **_worker(worker))


def child_exit(server: Any, worker: Any) -> None:
    _record("child_exit", master=server.pid, reason=worker.reason, status=worker.status,
            requests=worker.requests, **_worker(worker))
