"""An app that takes 3 s to import, for a TERM that arrives before the first generation."""

import time

time.sleep(3)


def handler(request, response):
    return "finally"
