"""Embeds HttpServer(block=True) with its own umask and chdir; prints this process's umask
and working directory once the server has returned (test_server_basics checks they are back)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import forkhttpd

if TYPE_CHECKING:
    from forkhttpd import HttpRequest, HttpResponse

os.umask(0o077)
before = os.getcwd()


def handler(request: HttpRequest, response: HttpResponse) -> None:
    response.data = "embedded"


forkhttpd.HttpServer(int(sys.argv[1]), handler, host="127.0.0.1", umask=0o022,
                     chdir=sys.argv[2])
print(f"after: umask {os.umask(0o077):o}, cwd restored {os.getcwd() == before}", flush=True)
