"""The application the end-to-end test deploys (the test rewrites VERSION to deploy v2)."""

import os
import time
from typing import Any

VERSION = "v1"


def handler(request: Any, response: Any) -> str:
    first = request.path[0] if request.path else ""
    if first == "version":
        return VERSION
    if first == "sleep":
        time.sleep(float(request.query.get("s", "1")))
        return "slept"
    if first == "whoami":
        return f"{os.getuid()} {os.getpid()}"
    return f"forkhttpd e2e {VERSION}"
