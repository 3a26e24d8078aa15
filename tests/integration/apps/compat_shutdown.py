"""forkhttpd.ThreadingHTTPServer stopped by shutdown(): `thread` calls it from another thread
of the program (the master) once a request has been answered; `handler` has a request to
/stop call self.server.shutdown() inside a worker. Prints what the program saw."""

import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler

from forkhttpd import ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # type: ignore[no-untyped-def]
        if self.path == "/stop":
            self.server.shutdown()
        body = f"{type(self.server).__name__} {self.server.server_port}".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # type: ignore[no-untyped-def]
        pass


def get(path: str) -> str:
    deadline = time.monotonic() + 15
    while True:
        try:
            url = f"http://127.0.0.1:{server.server_port}{path}"
            with urllib.request.urlopen(url, timeout=5) as page:
                return page.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def client(mode: str) -> None:
    print("answer", get("/"), flush=True)
    if mode == "thread":
        server.shutdown()
        print("shutdown returned", flush=True)
    else:
        print("stop answer", get("/stop"), flush=True)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, workers=2)
print("bound", server.server_address == ("127.0.0.1", server.server_port), flush=True)
thread = threading.Thread(target=client, args=(sys.argv[1],))
thread.start()
server.serve_forever()
thread.join()
server.server_close()
print("serve_forever returned", flush=True)
