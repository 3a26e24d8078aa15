"""The WSGI servers bench.py compares forkhttpd with (`--apps`): how to start each one on
127.0.0.1 with 2 workers and one of the benchmark's apps, and how to tell it is missing; no
load generation here (servers.py starts, probes, measures and stops them).

| name | command |
|---|---|
| forkhttpd | `python -m forkhttpd --interface wsgi --workers 2` |
| gunicorn | `gunicorn -w 2 -k sync` (closes every connection) |
| uwsgi | `uwsgi --http11-socket --master --processes 2` (pip install pyuwsgi) |
| bjoern | `loadtests/bjoern_run.py`: 2 forked bjoern processes on one socket |
| granian | `granian --interface wsgi --workers 2` (Rust, threads inside each worker) |
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from loadtests.servers import LOOPBACK, REPO_ROOT, ServerProcess, forkhttpd_command

__all__ = ["APP_TARGETS", "PEERS", "Peer", "missing"]

# app name -> the WSGI callable, importable from the repository root
APP_TARGETS = {
    "wsgi": "loadtests.wsgi_app:app",
    "flask": "loadtests.flask_app:app",
    "django": "loadtests.django_app:application",
}
APP_NEEDS = {"flask": "flask", "django": "django"}
WORKERS = 2


def _bin(name: str) -> str:
    """A console script installed next to this interpreter (not a pyenv shim, whose bash
    wrappers would join the measured process tree)."""
    here = os.path.join(os.path.dirname(os.path.realpath(sys.executable)), name)
    return here if os.path.exists(here) else os.path.join(os.path.dirname(sys.executable), name)


def _forkhttpd(target: str, port: int, workdir: str) -> ServerProcess:
    command = forkhttpd_command(port, app=target, workers=WORKERS,
                                extra=["--interface", "wsgi", "--log-level", "warning"])
    return ServerProcess("forkhttpd", command, port, log_dir=workdir)


def _gunicorn(target: str, port: int, workdir: str) -> ServerProcess:
    command = [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-k", "sync", "-b",
               f"{LOOPBACK}:{port}", "--log-level", "warning", target]
    return ServerProcess("gunicorn", command, port, log_dir=workdir)


def _uwsgi(target: str, port: int, workdir: str) -> ServerProcess:
    module, _, attribute = target.partition(":")
    command = [_bin("uwsgi"), "--http11-socket", f"{LOOPBACK}:{port}", "--master",
               "--processes", str(WORKERS), "--module", module, "--callable", attribute,
               "--disable-logging", "--need-app", "--die-on-term", "--listen", "1024",
               "--chdir", REPO_ROOT, "--pythonpath", REPO_ROOT]
    return ServerProcess("uwsgi", command, port, log_dir=workdir, stop_signal=signal.SIGTERM)


def _bjoern(target: str, port: int, workdir: str) -> ServerProcess:
    command = [sys.executable, os.path.join(REPO_ROOT, "loadtests", "bjoern_run.py"), target,
               LOOPBACK, str(port), str(WORKERS)]
    return ServerProcess("bjoern", command, port, log_dir=workdir)


def _granian(target: str, port: int, workdir: str) -> ServerProcess:
    command = [_bin("granian"), "--interface", "wsgi", "--host", LOOPBACK, "--port", str(port),
               "--workers", str(WORKERS), "--no-ws", "--log-level", "warning", target]
    return ServerProcess("granian", command, port, log_dir=workdir)


@dataclass(frozen=True)
class Peer:
    """One server family: how to start it and what it needs installed."""

    name: str
    make: Callable[[str, int, str], ServerProcess]
    module: str | None  # importable module that must be present (None: always there)
    install: str


PEERS = (
    Peer("forkhttpd", _forkhttpd, None, ""),
    Peer("gunicorn", _gunicorn, "gunicorn", "pip install gunicorn"),
    Peer("uwsgi", _uwsgi, "pyuwsgi", "pip install pyuwsgi"),
    Peer("bjoern", _bjoern, "bjoern", "apt-get install -y libev-dev; pip install bjoern"),
    Peer("granian", _granian, "granian", "pip install granian"),
)


def missing(module: str | None) -> bool:
    return module is not None and importlib.util.find_spec(module) is None
