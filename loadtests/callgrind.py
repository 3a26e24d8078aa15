"""Instructions per request in one forkhttpd worker, counted by valgrind's callgrind: a figure
that repeats to a fraction of a per cent however busy the machine is, so that a change to the
request path is judged on it rather than on req/s.

    python loadtests/callgrind.py                          # native and WSGI hello, both modes
    python loadtests/callgrind.py --apps wsgi,flask,django --modes keepalive,close,upload
    python loadtests/callgrind.py --tree /path/to/other/checkout   # another forkhttpd tree

For each app it starts `python -m forkhttpd --workers 1` under `valgrind --tool=callgrind
--trace-children=yes` on 127.0.0.1 (an ephemeral port, its own session, stopped by PID and
then by its own process group), sends warm-up requests (not counted), then for each mode zeroes
the worker's counters (`callgrind_control -z`), sends the measured requests one after another
from this process, dumps the counters (`callgrind_control -d`) and divides the instructions
by the requests. Only the worker is counted: the master, the zygote and the kernel are not.
What the idle worker spends per second (its timer; measured for 3 s after the warm-up) is
taken off per second of each measurement: under valgrind a request is slow enough for the
timer to show, and by how much depends on the machine's load.

Modes: keepalive (one connection, GET /), close (a new connection per GET /, with
`Connection: close`), upload (POST /upload of --upload-mib MiB on a kept-alive connection, the
app reading the whole body), big (GET /big, 100 KB), stream (GET /stream, 100 chunks).
Needs valgrind (apt-get install -y valgrind); flask and django only for those apps.
Prints a table and writes JSON (loadtests/results/callgrind-<timestamp>.json or --json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

if __package__ in (None, ""):  # run as a script: make `loadtests` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from loadtests.servers import LOOPBACK, REPO_ROOT, ServerProcess, free_port, tree_pids

RESULTS_DIR = os.path.join(REPO_ROOT, "loadtests", "results")
LOADTESTS_DIR = os.path.join(REPO_ROOT, "loadtests")
# The apps are imported under this name from a temporary folder that links to this
# loadtests/, so that a forkhttpd tree given with --tree (whose own loadtests/ may be older)
# runs exactly these apps.
APPS_PACKAGE = "fh_bench_apps"

# name -> (module:attribute inside loadtests/, --interface, what it needs installed)
APPS: dict[str, tuple[str, str, str | None]] = {
    "native": ("app:app", "native", None),
    "wsgi": ("wsgi_app:app", "wsgi", None),
    "flask": ("flask_app:app", "wsgi", "flask"),
    "django": ("django_app:application", "wsgi", "django"),
}
MODES = ("keepalive", "close", "upload", "big", "stream")
PATHS = {"keepalive": "/", "close": "/", "upload": "/upload", "big": "/big",
         "stream": "/stream"}


# -- a minimal blocking HTTP/1.1 client (the load is sequential by design) ------------------
class Client:
    """One request at a time on a connection it reopens when the server closes it."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((LOOPBACK, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fill(self, sock: socket.socket) -> bool:
        data = sock.recv(262144)
        self.buffer += data
        return bool(data)

    def request(self, method: str, path: str, body: bytes = b"", close: bool = False) -> bytes:
        """Send one request, return the response body (de-chunked); raises on a bad answer."""
        if self.sock is None:
            self.sock = self._connect()
        sock = self.sock
        head = f"{method} {path} HTTP/1.1\r\nHost: {LOOPBACK}:{self.port}\r\n"
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        if close:
            head += "Connection: close\r\n"
        sock.sendall(head.encode("ascii") + b"\r\n" + body)
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill(sock):
                raise ConnectionError("the server closed before answering")
        raw_head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            raise ConnectionError(f"unexpected answer: {lines[0]!r}")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            length = int(fields["content-length"])
            while len(self.buffer) < length:
                if not self._fill(sock):
                    raise ConnectionError("body cut short")
            data, self.buffer = self.buffer[:length], self.buffer[length:]
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            data = self._chunked(sock)
        else:
            while self._fill(sock):
                pass
            data, self.buffer = self.buffer, b""
            close = True
        if close or fields.get("connection", "").lower() == "close":
            self.close()
        return data

    def _chunked(self, sock: socket.socket) -> bytes:
        pieces: list[bytes] = []
        while True:
            while b"\r\n" not in self.buffer:
                if not self._fill(sock):
                    raise ConnectionError("chunked body cut short")
            size_line, rest = self.buffer.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                if not self._fill(sock):
                    raise ConnectionError("chunk cut short")
                rest = self.buffer.split(b"\r\n", 1)[1]
            if size == 0:
                # no trailers from these apps: the last chunk is "0\r\n\r\n"
                self.buffer = rest[2:]
                return b"".join(pieces)
            pieces.append(rest[:size])
            self.buffer = rest[size + 2:]


def run_mode(client: Client, mode: str, count: int, upload: bytes) -> None:
    """`count` requests of one mode, one after another."""
    path = PATHS[mode]
    for _ in range(count):
        if mode == "upload":
            answer = client.request("POST", path, upload)
            if answer != str(len(upload)).encode():
                raise ConnectionError(f"upload answered {answer[:40]!r}")
        else:
            client.request("GET", path, close=mode == "close")
    client.close()


# -- callgrind ---------------------------------------------------------------------------------
def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def find_worker(master: int, timeout: float = 60.0) -> int:
    """The worker's PID: the descendant whose title says "work" (forkhttpd: worker ...)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = [pid for pid in tree_pids(master) if pid != master and "work" in _comm(pid)]
        if len(workers) == 1:
            return workers[0]
        time.sleep(0.2)
    raise RuntimeError(f"no single worker under PID {master}")


def callgrind_control(option: str, pid: int) -> None:
    done = subprocess.run(["callgrind_control", option, str(pid)], capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0 or "OK" not in done.stdout:
        raise RuntimeError(f"callgrind_control {option} {pid} failed: "
                           f"{done.stdout.strip()} {done.stderr.strip()}")


def read_dump(out_dir: str, pid: int, number: int, timeout: float = 60.0) -> int:
    """The instructions (the `summary:` line) of the worker's dump number `number`."""
    path = os.path.join(out_dir, f"cg.{pid}.{number}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as handle:
                text = handle.read()
        except OSError:
            text = ""
        match = re.search(r"^summary:\s*(\d+)", text, re.M)
        if match and re.search(r"^totals:", text, re.M):
            return int(match.group(1))
        time.sleep(0.1)
    raise RuntimeError(f"no callgrind dump {path}")


@dataclass
class Measure:
    """One app in one mode."""

    app: str
    mode: str
    requests: int
    instructions: int  # as counted, idle time included
    per_request: float  # the idle rate times the elapsed time taken off, per request
    seconds: float


@dataclass
class AppRun:
    app: str
    measures: list[Measure] = field(default_factory=list)
    idle_per_second: float = 0.0
    error: str = ""


def apps_folder(workdir: str) -> str:
    folder = os.path.join(workdir, "apps")
    os.makedirs(folder, exist_ok=True)
    link = os.path.join(folder, APPS_PACKAGE)
    if not os.path.exists(link):
        os.symlink(LOADTESTS_DIR, link)
    return folder


def measure_app(app: str, modes: Sequence[str], tree: str, workdir: str, requests: int,
                warmup: int, upload_mib: float, extra: Sequence[str],
                idle_seconds: float = 3.0) -> AppRun:
    target, interface, _needs = APPS[app]
    out_dir = os.path.join(workdir, f"cg-{app}")
    os.makedirs(out_dir, exist_ok=True)
    port = free_port()
    python = os.path.realpath(sys.executable)  # not a pyenv shim: valgrind must see python
    command = ["valgrind", "--tool=callgrind", "--trace-children=yes",
               f"--callgrind-out-file={out_dir}/cg.%p", python, "-m", "forkhttpd",
               "--app", f"{APPS_PACKAGE}.{target}", "--interface", interface,
               "--workers", "1", "--bind", f"{LOOPBACK}:{port}", "--timeout", "600",
               "--log-level", "warning", *extra]
    server = ServerProcess(f"callgrind-{app}", command, port, cwd=workdir,
                           log_dir=workdir, pythonpath=[tree, apps_folder(workdir)])
    run = AppRun(app)
    upload = os.urandom(int(upload_mib * 2**20)) if "upload" in modes else b""
    try:
        server.start(timeout=240.0)
        worker = find_worker(server.pid)
        client = Client(port)
        for mode in modes:  # every path once before anything is counted
            run_mode(client, mode, warmup if mode in ("keepalive", "close") else 3, upload)
        # What the worker spends per second doing nothing (its timer: heartbeat, clock):
        # subtracted per second of each measurement, since valgrind makes a request slow
        # enough for the timer to show, and by how much depends on the machine's load.
        callgrind_control("-z", worker)
        idle_started = time.monotonic()
        time.sleep(idle_seconds)
        callgrind_control("-d", worker)
        idle_rate = read_dump(out_dir, worker, 1) / (time.monotonic() - idle_started)
        run.idle_per_second = idle_rate
        for dumps, mode in enumerate(modes, start=2):
            count = requests if mode in ("keepalive", "close") else max(3, requests // 50)
            callgrind_control("-z", worker)
            started = time.monotonic()
            run_mode(client, mode, count, upload)
            elapsed = time.monotonic() - started
            callgrind_control("-d", worker)
            instructions = read_dump(out_dir, worker, dumps)
            net = instructions - idle_rate * elapsed
            run.measures.append(Measure(app, mode, count, instructions, net / count,
                                        elapsed))
            _log(f"{app} {mode}: {net / count / 1000:.1f}k instructions per request "
                 f"({instructions / count / 1000:.1f}k before the idle "
                 f"{idle_rate * elapsed / count / 1000:.1f}k)")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        run.error = str(error).splitlines()[0][:200]
        _log(f"{app}: {error}")
    finally:
        server.stop(grace=30.0)
    return run


def format_table(runs: Sequence[AppRun], modes: Sequence[str]) -> str:
    header = f"{'app':<8}" + "".join(f"{mode:>12}" for mode in modes)
    lines = [header + "   (instructions per request, thousands)", "-" * len(header)]
    for run in runs:
        by_mode = {m.mode: m for m in run.measures}
        cells = "".join(f"{by_mode[m].per_request / 1000:>12.1f}" if m in by_mode
                        else f"{'-':>12}" for m in modes)
        lines.append(f"{run.app:<8}{cells}" + (f"   {run.error}" if run.error else ""))
    return "\n".join(lines)


def _log(message: str) -> None:
    print(f"[callgrind {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _commit(tree: str) -> str:
    try:
        done = subprocess.run(["git", "-C", tree, "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", default="native,wsgi",
                        help="Comma-separated: native, wsgi, flask, django (native,wsgi)")
    parser.add_argument("--modes", default="keepalive,close",
                        help=f"Comma-separated: {', '.join(MODES)} (keepalive,close)")
    parser.add_argument("--requests", type=int, default=1000,
                        help="Measured requests per keepalive/close mode (1000; the "
                             "upload, big and stream modes send 1/50 of it, at least 3)")
    parser.add_argument("--warmup", type=int, default=200,
                        help="Requests per mode before counting starts (200)")
    parser.add_argument("--upload-mib", type=float, default=1.0,
                        help="Size of the upload mode's body in MiB (1)")
    parser.add_argument("--tree", default=REPO_ROOT,
                        help="The forkhttpd source tree to run (this checkout)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="Extra argument for forkhttpd (repeatable)")
    parser.add_argument("--json", default=None, help="Where to write the JSON results "
                        "(default loadtests/results/callgrind-<timestamp>.json)")
    args = parser.parse_args(argv)
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for name in apps:
        if name not in APPS:
            raise SystemExit(f"callgrind: unknown app {name!r} (one of {', '.join(APPS)})")
    for mode in modes:
        if mode not in MODES:
            raise SystemExit(f"callgrind: unknown mode {mode!r} (one of {', '.join(MODES)})")
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            print(f"callgrind: {tool} is not installed (apt-get install -y valgrind)",
                  file=sys.stderr)
            return 2
    tree = os.path.abspath(args.tree)
    started = time.time()
    workdir = tempfile.mkdtemp(prefix="forkhttpd-callgrind-")
    os.chmod(workdir, 0o755)
    runs: list[AppRun] = []
    skipped: dict[str, str] = {}
    try:
        for name in apps:
            needs = APPS[name][2]
            if needs is not None and not _importable(needs):
                skipped[name] = f"{needs} is not installed (pip install {needs})"
                continue
            _log(f"{name}: starting forkhttpd under callgrind (tree {tree})")
            # the native app serves the hello world only (upload, big and stream are WSGI's)
            app_modes = [m for m in modes if name != "native" or m in ("keepalive", "close")]
            runs.append(measure_app(name, app_modes, tree, workdir, args.requests,
                                    args.warmup, args.upload_mib, args.server_arg))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"forkhttpd worker under callgrind, {time.strftime('%Y-%m-%d %H:%M')}, tree {tree} "
          f"({_commit(tree)}), {args.requests} requests per mode after {args.warmup} "
          f"warm-up; upload {args.upload_mib:g} MiB")
    print(format_table(runs, modes))
    for name, reason in skipped.items():
        print(f"SKIPPED {name}: {reason}")
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = args.json or os.path.join(
        RESULTS_DIR, f"callgrind-{time.strftime('%Y%m%d-%H%M%S', time.localtime(started))}.json")
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "tree": tree, "commit": _commit(tree), "requests": args.requests,
        "warmup": args.warmup, "upload_mib": args.upload_mib,
        "python": platform.python_version(),
        "runs": [asdict(run) for run in runs], "skipped": skipped,
    }
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"\nJSON: {path}")
    return 0 if runs and all(not run.error for run in runs) else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on TERM as on ^C
    sys.exit(main())
