"""The arbiter package: the master process (master.py), its zygotes (zygote.py, and
zygote_entry.py when a zygote is a fresh interpreter), its watch over workers (supervise.py)
and its process primitives (children.py). Only this package forks, execs, waits for or
signals processes; it never imports application code itself.

The names below are loaded on first use, so that an exec'd zygote, which imports
forkhttpd.arbiter.zygote_entry, does not pull in the master (settings, psutil, status).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .children import start_in_child, stop_child, wait_child
    from .master import Arbiter, StartupError

__all__ = ["Arbiter", "StartupError", "start_in_child", "stop_child", "wait_child"]


def __getattr__(name: str) -> Any:
    if name in ("Arbiter", "StartupError"):
        from . import master

        return getattr(master, name)
    if name in ("start_in_child", "stop_child", "wait_child"):
        from . import children

        return getattr(children, name)
    raise AttributeError(f"module 'forkhttpd.arbiter' has no attribute {name!r}")
