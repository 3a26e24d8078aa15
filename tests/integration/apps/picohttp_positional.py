"""picohttp's positional HttpServer(port, handler, args, threads, start, block): threads=False,
start=True, block=False starts the server in a child process and returns at once; then this
program asks it for a page, stops it and prints what it saw."""

import sys
import time
import urllib.request

import forkhttpd as picohttp


def handler(request, response, greeting):  # type: ignore[no-untyped-def]
    response.data = f"{greeting} {request.path[0]}"


port = int(sys.argv[1])
server = picohttp.HttpServer(port, handler, ("hello",), False, True, False, host="127.0.0.1")
print("threads", server.threads, "started", server.pid is not None, flush=True)
deadline = time.monotonic() + 15
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/world", timeout=5) as page:
            print("body", page.read().decode(), flush=True)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
server.stop()
print("stopped", server.exit_code, flush=True)
