"""Small request-side helpers of the drop-in servers (ops/compat.py): VSHS's rootDir() and the
handler class that sees the drop-in server object as `self.server`; must not import master
or ops, and imports nothing up front but os and sys (route handlers call rootDir() in
workers).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

__all__ = ["rootDir", "with_server"]


def rootDir() -> str:  # noqa: N802 - VSHS's name
    """VSHS's rootDir(): the directory of the program's main script (the current directory
    when there is none, as in an interactive session).

    In a worker whose zygote is a fresh interpreter, __main__ is forkhttpd's bootstrap, so the
    script is found through sys.argv[0], which the zygote takes over from the master.
    """
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if not script and sys.argv and sys.argv[0] and os.path.isfile(sys.argv[0]):
        script = sys.argv[0]
    if not script:
        return os.getcwd()
    return os.path.dirname(os.path.abspath(script))


def with_server(handler_class: Any, server: object) -> Any:
    """`handler_class` (or a functools.partial of it) constructed with `server` as its third
    argument whatever the adapter passes there: http.server's handlers reach their server
    object's attributes (and shutdown()) through self.server."""
    partial = handler_class if isinstance(handler_class, functools.partial) else None
    cls = partial.func if partial is not None else handler_class

    class Bound(cls):  # type: ignore[valid-type, misc]
        def __init__(self, request: Any, client_address: Any, _server: Any,
                     *args: Any, **kwargs: Any) -> None:
            super().__init__(request, client_address, server, *args, **kwargs)

    # Logs and the access log name the user's class, not this wrapper.
    Bound.__name__, Bound.__qualname__ = cls.__name__, cls.__qualname__
    Bound.__module__ = cls.__module__
    if partial is not None:
        return functools.partial(Bound, *partial.args, **partial.keywords)
    return Bound
