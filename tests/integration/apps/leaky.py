"""A handler that leaks 5 MiB per request (pages touched, so RSS grows), for --max-rss."""

import os

LEAK = []


def handler(request, response):
    LEAK.append(b"x" * (5 << 20))
    return f"{os.getpid()} {len(LEAK)}"
