"""Old home of the operations tests' helpers: they live in tests.integration.harness now."""

from __future__ import annotations

from .harness import (
    NotifySocket,
    alive,
    forkhttpd_env,
    free_port,
    http_get,
    kill_daemon,
    run_forkhttpd,
)

__all__ = ["NotifySocket", "alive", "forkhttpd_env", "free_port", "http_get", "kill_daemon",
           "run_forkhttpd"]
