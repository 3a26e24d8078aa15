"""Reports what the worker's interpreter holds: which of the master's modules, its argv."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forkhttpd import HttpRequest, HttpResponse

MASTER_ONLY = ("argparse", "tomllib", "psutil", "ctypes", "forkhttpd.config.settings",
               "forkhttpd.config.table", "forkhttpd.master.health", "forkhttpd.master.status",
               "forkhttpd.master.arbiter", "forkhttpd.cli", "forkhttpd.runtime.privileges")


def handler(request: HttpRequest, response: HttpResponse) -> object:
    import json

    return json.dumps({"master_modules": [m for m in MASTER_ONLY if m in sys.modules],
                       "argv": sys.argv, "forkhttpd": sys.modules["forkhttpd"].__file__})
