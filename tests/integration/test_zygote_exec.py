"""Exec'd zygotes: a zygote is a fresh interpreter, so its workers hold none of the master's
modules (argparse, the settings table, psutil...) yet run with the master's argv and
forkhttpd."""

from __future__ import annotations

import json
import os
import signal

from .harness import REPO, StartServer, cmdline, wait_until


def test_workers_hold_none_of_the_masters_modules(start_server: StartServer) -> None:
    server = start_server("--app", "lean:handler", "--workers", "2")
    assert server.sock is not None
    status, _, body = server.request("GET", "/")
    seen = json.loads(body)
    assert status == 200 and seen["master_modules"] == []
    assert seen["argv"][1:] == ["--app", "lean:handler", "--workers", "2", "--bind",
                                f"fd://{server.sock.fileno()}"]
    assert seen["forkhttpd"] == str(REPO / "forkhttpd" / "__init__.py")
    zygote = [p for p in server.children() if "zygote" in cmdline(p)][0]
    assert os.readlink(f"/proc/{zygote}/exe") == os.readlink(f"/proc/{server.pid}/exe")
    # and so does the next generation's
    server.send_signal(signal.SIGHUP)
    server.wait_for_log("reload complete: generation 2")
    assert wait_until(lambda: json.loads(server.request("GET", "/")[2]) == seen)
