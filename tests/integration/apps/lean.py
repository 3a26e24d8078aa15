"""Reports what the worker's interpreter holds: which of the master's modules, its argv."""

import sys

MASTER_ONLY = ("argparse", "tomllib", "psutil", "ctypes", "forkhttpd.settings",
               "forkhttpd.settings_table", "forkhttpd.supervision", "forkhttpd.status",
               "forkhttpd.arbiter.master", "forkhttpd.cli", "forkhttpd.privileges")


def handler(request, response):
    import json

    return json.dumps({"master_modules": [m for m in MASTER_ONLY if m in sys.modules],
                       "argv": sys.argv, "forkhttpd": sys.modules["forkhttpd"].__file__})
