"""One command for the locust load test: start forkhttpd on a loopback ephemeral port, run
locust headless against it for a given time (optionally sending SIGHUP to the master a few
times meanwhile), print a summary, stop the server by PID, and exit non-zero on any failure.

    python loadtests/run_locust.py --time 20s
    python loadtests/run_locust.py --time 30s --reloads 5

The last line printed is machine-readable:

    SUMMARY requests=N failures=N p95_ms=N rps=N reloads=N/N exit=N

Locust runs in a subprocess (it patches its process with gevent); this script only needs
locust to be installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

if __package__ in (None, ""):  # run as a script: make `loadtests` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from loadtests.app import ensure_static_files
from loadtests.servers import (
    LOOPBACK,
    REPO_ROOT,
    ServerProcess,
    forkhttpd_command,
    free_port,
    worker_pids,
)

PIP_LINE = 'pip install "locust>=2.20"'
LOCUSTFILE = os.path.join(REPO_ROOT, "loadtests", "locustfile.py")


@dataclass
class Summary:
    """The aggregated numbers of a locust run."""

    requests: int = 0
    failures: int = 0
    p95_ms: float = 0.0
    median_ms: float = 0.0
    rps: float = 0.0


def parse_duration(text: str) -> float:
    """Seconds in "20s", "1m30s", "2m", "90" (locust's --run-time syntax)."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    match = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?", text)
    if not match or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 20s or 1m30s)")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def read_summary(path: str) -> Summary:
    """The totals the locustfile's gate wrote (an empty Summary if locust never got there)."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return Summary()
    return Summary(int(data["requests"]), int(data["failures"]), float(data["p95_ms"]),
                   float(data["median_ms"] or 0), float(data["rps"]))


def _send_reloads(server: ServerProcess, count: int, duration: float, done: threading.Event,
                  sent: list[float]) -> None:
    """SIGHUP the master `count` times, evenly spaced inside the run (not at its edges)."""
    start = time.monotonic()
    for index in range(count):
        at = start + duration * (index + 1) / (count + 1)
        if done.wait(max(0.0, at - time.monotonic())):
            return
        server.signal(signal.SIGHUP)
        sent.append(time.monotonic() - start)
        print(f"[run_locust] SIGHUP {index + 1}/{count} to master {server.pid} at "
              f"{sent[-1]:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time", default="20s", type=parse_duration,
                        help="How long locust runs (locust syntax: 20s, 1m30s); default 20s")
    parser.add_argument("--users", type=int, default=20, help="Simulated users (default 20)")
    parser.add_argument("--spawn-rate", type=float, default=10.0,
                        help="Users started per second (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="forkhttpd workers (default 2)")
    parser.add_argument("--reloads", type=int, default=0,
                        help="Send SIGHUP to the master this many times during the run")
    parser.add_argument("--p95-budget-ms", type=float,
                        default=float(os.environ.get("LOCUST_P95_BUDGET_MS", 500)),
                        help="Fail when the aggregated p95 exceeds this (default 500 ms)")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="Extra forkhttpd argument (repeat), e.g. --server-arg=--keep-alive=2")
    parser.add_argument("--keep-logs", action="store_true",
                        help="Keep the server log even when the run passed")
    args = parser.parse_args(argv)

    if importlib.util.find_spec("locust") is None:
        print(f"run_locust: locust is not installed; install it with: {PIP_LINE}",
              file=sys.stderr)
        return 2
    ensure_static_files()
    workdir = tempfile.mkdtemp(prefix="forkhttpd-locust-")
    port = free_port()
    server = ServerProcess("forkhttpd", forkhttpd_command(port, workers=args.workers,
                                                          extra=args.server_arg),
                           port, log_dir=workdir)
    print(f"[run_locust] starting forkhttpd ({args.workers} workers) on {LOOPBACK}:{port}",
          flush=True)
    try:
        server.start()
    except RuntimeError as error:
        print(f"run_locust: {error}", file=sys.stderr)
        return 3
    before = sorted(worker_pids(server.pid))
    summary_path = os.path.join(workdir, "summary.json")
    command = [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--headless",
               "--host", f"http://{LOOPBACK}:{port}", "--users", str(args.users),
               "--spawn-rate", str(args.spawn_rate), "--run-time", f"{int(args.time)}s",
               "--stop-timeout", "5", "--only-summary",
               "--p95-budget-ms", str(args.p95_budget_ms), "--loglevel", "WARNING"]
    done = threading.Event()
    sent: list[float] = []
    reloader = threading.Thread(target=_send_reloads,
                                args=(server, args.reloads, args.time, done, sent), daemon=True)
    print(f"[run_locust] locust: {args.users} users for {args.time:.0f} s"
          + (f", {args.reloads} reloads" if args.reloads else ""), flush=True)
    exit_code = 0
    try:
        locust = subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True,
                                  env={**os.environ, "LOADTESTS_SUMMARY_JSON": summary_path})
        reloader.start()
        try:
            exit_code = locust.wait(timeout=args.time + 60)
        except subprocess.TimeoutExpired:
            print("run_locust: locust overran its time; stopping it", file=sys.stderr)
            os.killpg(locust.pid, signal.SIGKILL)
            locust.wait()
            exit_code = 4
        done.set()
        reloader.join(5)
        after = sorted(worker_pids(server.pid))
    finally:
        done.set()
        server_status = server.stop()
    summary = read_summary(summary_path)
    with open(server.log_path, encoding="utf-8", errors="replace") as log:
        log_text = log.read()
    # The master logs "reload: generation N loaded; rolling workers over" once a new
    # generation's zygote has imported the app (the log text is informative only: the
    # verdict rests on the worker PIDs and on locust's failure count).
    loaded = len(re.findall(r"reload: generation \d+ loaded", log_text))
    print(f"[run_locust] server stopped (status {server_status}); log: {server.log_path}")
    if args.reloads:
        print(f"[run_locust] reloads: {len(sent)} SIGHUP sent, {loaded} generations loaded; "
              f"workers before {before}, after {after}")
        if len(sent) != args.reloads or (after and after == before):
            print("run_locust: the reloads did not all happen", file=sys.stderr)
            exit_code = exit_code or 5
    if summary.failures and not exit_code:
        exit_code = 1
    if summary.requests == 0 and not exit_code:
        exit_code = 1
    if exit_code:
        print("[run_locust] server log tail:\n" + server.log_tail(20))
    print(f"SUMMARY requests={summary.requests} failures={summary.failures} "
          f"p95_ms={summary.p95_ms:.0f} median_ms={summary.median_ms:.0f} rps={summary.rps:.1f}"
          f" reloads={len(sent)}/{args.reloads} exit={exit_code}", flush=True)
    if not args.keep_logs and not exit_code:
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
