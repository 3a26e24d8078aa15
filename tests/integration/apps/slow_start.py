"""An app that takes 3 s to import, for a TERM that arrives before the first generation."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forkhttpd import HttpRequest, HttpResponse

time.sleep(3)


def handler(request: HttpRequest, response: HttpResponse) -> object:
    return "finally"
