"""`bench.py --apps wsgi,flask,django`: forkhttpd against gunicorn (sync), uWSGI
(--http11-socket), bjoern, granian and nginx's `return 200` on the same WSGI apps, in
interleaved wrk rounds, with req/s, p50/p99, server CPU per request and ratios to forkhttpd;
plus a 1 MiB upload, a 100 KB response and a 100-chunk stream per server. No assertion of
speed: the issue #18 targets are printed as PASS/MISS lines.

Every server has 2 workers and listens on 127.0.0.1 (an ephemeral port), started in its own
session and stopped by PID, then by its own process group. Each wrk run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from loadtests.bench import (
    APP_SCENARIOS,
    RESULTS_DIR,
    Row,
    Target,
    WrkResult,
    _load_average,
    _log,
    _nginx,
    parse_wrk,
    ratio,
    tool_versions,
)
from loadtests.callgrind import Client
from loadtests.peers import APP_NEEDS, APP_TARGETS, PEERS, missing
from loadtests.servers import LOOPBACK, REPO_ROOT, ServerProcess, free_port, tree_cpu_seconds
from loadtests.wsgi_app import BIG_BODY, CHUNK, CHUNKS

__all__ = ["evaluate_app_targets", "format_app_table", "run_apps"]

UPLOAD_BYTES = 1 << 20
NGINX = "nginx-return"  # nginx's `return 200`: a floor for the hello rows, not a WSGI server
# scenario -> (path, wrk connections, Connection: close, lua script or None)
PLAN: dict[str, tuple[str, int, bool, str | None]] = {
    "close": ("/", 32, True, None),
    "keepalive": ("/", 32, False, None),
    "upload": ("/upload", 4, False, "upload"),
    "big": ("/big", 16, False, None),
    "stream": ("/stream", 16, False, None),
}
UPLOAD_LUA = """\
wrk.method = "POST"
wrk.body = string.rep("u", {size})
wrk.headers["Content-Type"] = "application/octet-stream"
"""


def run_wrk_plan(port: int, scenario: str, seconds: float, scripts: dict[str, str],
                 connections: int | None = None) -> WrkResult:
    path, default_connections, close, script = PLAN[scenario]
    command = ["wrk", "-t2", f"-c{connections or default_connections}",
               f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    if close:
        command += ["-H", "Connection: close"]
    if script is not None:
        command += ["-s", scripts[script]]
    command.append(f"http://{LOOPBACK}:{port}{path}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def check_answers(port: int, hello_only: bool = False) -> None:
    """Every URL answers what the apps send, so that no server is measured on errors."""
    client = Client(port, timeout=10.0)
    try:
        if client.request("GET", "/") != b"Hello, world!":
            raise ConnectionError("GET / is not the hello world")
        if hello_only:
            return
        if client.request("POST", "/upload", b"u" * 100_000) != b"100000":
            raise ConnectionError("POST /upload did not read the whole body")
        if client.request("GET", "/big") != BIG_BODY:
            raise ConnectionError("GET /big is not the 100 KB body")
        if client.request("GET", "/stream") != CHUNK * CHUNKS:
            raise ConnectionError("GET /stream is not the 100 chunks")
    finally:
        client.close()


def honours_close(port: int) -> bool:
    """Whether the server closes the connection after answering a request that carries
    "Connection: close" (RFC 9112 9.6). One that does not is measured kept alive in the close
    scenario, since wrk then reuses the connection: its close row says so."""
    with socket.create_connection((LOOPBACK, port), timeout=5.0) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {LOOPBACK}\r\nConnection: close\r\n\r\n"
                     .encode("ascii"))
        raw = b""
        sock.settimeout(1.0)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return True
                raw += chunk
        except TimeoutError:
            return False


def format_app_table(rows: Sequence[Row]) -> str:
    """One line per app, scenario and server, with req/s and CPU relative to forkhttpd."""
    def num(value: float | None, width: int, decimals: int) -> str:
        return "-".rjust(width) if value is None else f"{value:{width}.{decimals}f}"

    header = (f"{'app':<7} {'scenario':<10} {'server':<13} {'req/s':>9} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'errors':>7} {'CPU us/req':>10} {'rps/fh':>7} {'cpu/fh':>7}")
    lines = [header, "-" * len(header)]
    for row in rows:
        app, _, scenario = row.scenario.partition(" ")
        base = next((r for r in rows if r.scenario == row.scenario
                     and r.server == "forkhttpd"), None)
        lines.append(
            f"{app:<7} {scenario:<10} {row.server:<13} {num(row.rps, 9, 0)} "
            f"{num(row.p50_ms, 8, 2)} {num(row.p99_ms, 8, 2)} {row.errors:>7d} "
            f"{num(row.cpu_us, 10, 1)} {num(ratio(row.rps, base.rps if base else None), 7, 2)} "
            f"{num(ratio(row.cpu_us, base.cpu_us if base else None), 7, 2)}"
            + (f"  {row.note}" if row.note else ""))
    return "\n".join(lines)


def evaluate_app_targets(rows: Sequence[Row]) -> list[Target]:
    """Issue #18's targets on CPU per request, judged on whatever was measured."""
    def cpu(scenario: str, server: str) -> float | None:
        row = next((r for r in rows if r.scenario == scenario and r.server == server), None)
        if row is None or (scenario.endswith(" close") and "ignores" in row.note):
            return None  # a close row measured on kept-alive connections compares nothing
        return row.cpu_us

    targets = []

    def judge(name: str, scenario: str, peers: Sequence[str]) -> None:
        own = cpu(scenario, "forkhttpd")
        others = {peer: cpu(scenario, peer) for peer in peers}
        measured = {peer: value for peer, value in others.items() if value is not None}
        if own is None or not measured:
            targets.append(Target("SKIP", name, "not measured"))
            return
        detail = f"forkhttpd {own:.1f} us; " + ", ".join(
            f"{peer} {value:.1f}" for peer, value in measured.items())
        ok = all(own <= value for value in measured.values())
        targets.append(Target("PASS" if ok else "MISS", name, detail))

    for app in ("flask", "django"):
        for mode in ("close", "keepalive"):
            judge(f"{app} {mode}: CPU/request <= uWSGI's and granian's", f"{app} {mode}",
                  ("uwsgi", "granian"))
    judge("wsgi keepalive: CPU/request <= uWSGI's and granian's", "wsgi keepalive",
          ("uwsgi", "granian"))
    judge("wsgi close: CPU/request <= bjoern's", "wsgi close", ("bjoern",))
    for app in APP_TARGETS:
        judge(f"{app} upload 1 MiB: CPU/request <= every peer's", f"{app} upload",
              ("gunicorn", "uwsgi", "bjoern", "granian"))
    for row in rows:
        if row.errors:
            targets.append(Target("FLAG", f"{row.server} errors in {row.scenario}",
                                  f"{row.errors} errors over {row.requests} requests"))
    return targets


def _parse_selection(args: argparse.Namespace) -> tuple[list[str], list[str], set[str]]:
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    for app in apps:
        if app not in APP_TARGETS:
            raise SystemExit(f"bench: --apps {app!r}: not one of {', '.join(APP_TARGETS)}")
    names = {peer.name for peer in PEERS} | {"nginx"}
    scenarios: list[str] = []
    servers: set[str] = set()
    for item in (part.strip() for part in (args.only or "").split(",")):
        if not item:
            continue
        if item in APP_SCENARIOS:
            scenarios.append(item)
        elif item in names:
            servers.add(item)
        else:
            raise SystemExit(f"bench: --only {item!r}: not one of the scenarios "
                             f"{', '.join(APP_SCENARIOS)} or servers {', '.join(sorted(names))}")
    return apps, [s for s in APP_SCENARIOS if not scenarios or s in scenarios], servers


def run_apps(args: argparse.Namespace) -> int:
    apps, scenarios, only_servers = _parse_selection(args)
    rounds = args.rounds or (1 if args.quick else 3)
    duration = args.duration or (2.0 if args.quick else 3.0)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (apt-get install -y wrk)", flush=True)
        return 2
    started_at = time.time()
    load_before = _load_average()
    workdir = tempfile.mkdtemp(prefix="forkhttpd-bench-apps-")
    os.chmod(workdir, 0o755)
    scripts = {"upload": os.path.join(workdir, "upload.lua")}
    with open(scripts["upload"], "w") as handle:
        handle.write(UPLOAD_LUA.format(size=UPLOAD_BYTES))
    rows: list[Row] = []
    not_started: dict[str, str] = {}
    nginx: ServerProcess | None = None
    use_nginx = (not only_servers or "nginx" in only_servers) and \
        {"close", "keepalive"} & set(scenarios) != set()
    try:
        if use_nginx:
            if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
                try:
                    nginx = _nginx(free_port(), workdir).start()
                except RuntimeError as error:
                    not_started[NGINX] = str(error).splitlines()[0]
                    nginx = None
            else:
                not_started[NGINX] = "nginx is not installed (apt-get install -y nginx-light)"
        for app in apps:
            need = APP_NEEDS.get(app)
            if need is not None and missing(need):
                not_started[app] = f"{need} is not installed (pip install {need})"
                continue
            rows.extend(_run_app(app, scenarios, only_servers, rounds, duration, workdir,
                                 scripts, nginx, not_started))
    finally:
        if nginx is not None:
            nginx.stop()
    elapsed = time.time() - started_at
    targets = evaluate_app_targets(rows)
    print()
    print(f"forkhttpd WSGI benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
          f"{rounds} round(s) x {duration:.0f} s, wrk -t2 (-c32 hello, -c16 big/stream, -c4 "
          f"upload of {UPLOAD_BYTES >> 20} MiB), 2 workers each, {elapsed:.0f} s in all; load "
          f"average {load_before} before, {_load_average()} after")
    print(format_app_table(rows))
    for name, reason in not_started.items():
        print(f"NOT RUN: {name}: {reason}")
    print("\ntargets (issue #18):")
    for target in targets:
        print(f"  {target.verdict:<4} {target.name}: {target.detail}")
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = args.json or os.path.join(
        RESULTS_DIR,
        f"bench-apps-{time.strftime('%Y%m%d-%H%M%S', time.localtime(started_at))}.json")
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started_at)),
        "seconds": elapsed, "rounds": rounds, "duration": duration, "apps": apps,
        "versions": {**tool_versions(), **_peer_versions()},
        "load_average": {"before": load_before, "after": _load_average()},
        "rows": [asdict(row) for row in rows], "not_started": not_started,
        "targets": [asdict(target) for target in targets],
    }
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"\nJSON: {os.path.relpath(path, REPO_ROOT)}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _run_app(app: str, scenarios: Sequence[str], only_servers: set[str], rounds: int,
             duration: float, workdir: str, scripts: dict[str, str],
             nginx: ServerProcess | None, not_started: dict[str, str]) -> list[Row]:
    target = APP_TARGETS[app]
    servers: dict[str, ServerProcess] = {}
    server: ServerProcess | None
    keeps_open: set[str] = set()
    rows: list[Row] = []
    try:
        launching = []
        for peer in PEERS:
            if only_servers and peer.name not in only_servers:
                continue
            if missing(peer.module):
                not_started[peer.name] = f"not installed ({peer.install})"
                continue
            launching.append((peer.name, peer.make(target, free_port(), workdir).launch()))
        for name, server in launching:
            try:
                server.wait_ready("/", timeout=30.0)
                check_answers(server.port)
            except (RuntimeError, OSError) as error:
                not_started[f"{name} ({app})"] = str(error).splitlines()[0][:160]
                _log(f"{name} ({app}) is not measured: {error}")
                server.stop()
                continue
            servers[name] = server
            if not honours_close(server.port):
                keeps_open.add(name)
            try:
                run_wrk_plan(server.port, "keepalive", 1, scripts, connections=16)  # warm-up
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as error:
                _log(f"{name}: warm-up failed: {error}")
        for scenario in scenarios:
            names = list(servers)
            if nginx is not None and scenario in ("close", "keepalive"):
                names.append(NGINX)
            scenario_rows = {name: Row(f"{app} {scenario}", name) for name in names}
            if scenario == "close":
                for name in keeps_open:
                    scenario_rows[name].note = ("ignores Connection: close: wrk kept its "
                                                "connections alive")
            rows.extend(scenario_rows.values())
            for number in range(rounds):  # interleaved: A B C A B C ...
                for name in names:
                    server = servers[name] if name != NGINX else nginx
                    assert server is not None
                    _log(f"{app} {scenario} round {number + 1}/{rounds}: {name}")
                    try:
                        before = tree_cpu_seconds(server.pid).seconds
                        result = run_wrk_plan(server.port, scenario, duration, scripts)
                        cpu = tree_cpu_seconds(server.pid).seconds - before
                    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as error:
                        scenario_rows[name].note = f"wrk: {error}"[:80]
                        continue
                    scenario_rows[name].add_round(result, cpu)
    finally:
        for server in servers.values():
            server.stop()
    return rows


def _peer_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for package in ("pyuwsgi", "bjoern", "granian", "flask", "django"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    return versions

