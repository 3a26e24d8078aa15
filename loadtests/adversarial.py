"""Run the hostile-client suite's attacks (tests/adversarial/attacks.py) against forkhttpd and
gunicorn (sync worker), both serving tests/adversarial/apps/hostile.py with 2 workers and the
same deadlines, and print what the measuring client saw per attack as a Markdown table; must
not import forkhttpd (both servers are measured from outside, the same way).

    python -m loadtests.adversarial                 # every attack, both servers
    python -m loadtests.adversarial --attack slowloris-heads --server forkhttpd

Each attack gets a freshly started server, so that one attack's damage never shows up in the
next one's row. Everything runs on 127.0.0.1; every server is started in its own session and
stopped by PID (then its process group), never by name. Bounded: ~5 s per attack and server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from loadtests.servers import REPO_ROOT, ServerProcess, free_port

sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))
from adversarial import attacks  # noqa: E402

APPS = os.path.join(REPO_ROOT, "tests", "adversarial", "apps")
TIMEOUT = 3  # --timeout of both servers, seconds


def forkhttpd_command(port: int, site: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "forkhttpd", "--app", "hostile:app", "--interface", "wsgi",
            "--workers", "2", "--bind", f"{attacks.HOST}:{port}", "--timeout", str(TIMEOUT),
            "--graceful-timeout", "2", "--header-timeout", "2", "--keep-alive", "2",
            "--static", f"/static={site}", *extra]


def gunicorn_command(port: int, site: str, extra: list[str]) -> list[str]:
    del site  # gunicorn serves no files: the Range attack is forkhttpd's only
    return [sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
            "--bind", f"{attacks.HOST}:{port}", "--timeout", str(TIMEOUT),
            "--graceful-timeout", "2", "--keep-alive", "2", *extra, "hostile:app"]


COMMANDS: dict[str, Callable[[int, str, list[str]], list[str]]] = {
    "forkhttpd": forkhttpd_command, "gunicorn": gunicorn_command}


def children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            found = {int(p) for p in handle.read().split()}
    except OSError:
        return set()
    return {p for p in found if b"zygote" not in _cmdline(p)}


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def rss_mib(pids: set[int]) -> float:
    worst = 0
    for pid in pids:
        with contextlib.suppress(OSError, StopIteration), open(f"/proc/{pid}/status") as handle:
            worst = max(worst, next(int(line.split()[1]) for line in handle
                                    if line.startswith("VmRSS:")))
    return worst / 1024


@contextlib.contextmanager
def nofile(limit: int | None) -> Iterator[None]:
    """RLIMIT_NOFILE lowered for the processes started inside (they inherit it)."""
    if limit is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@dataclass
class Attack:
    name: str
    run: Callable[[int], dict[str, Any]]
    #: extra arguments per server (each server's own defence against the attack)
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)
    nofile: int | None = None
    servers: tuple[str, ...] = ("forkhttpd", "gunicorn")


def upload_at_rate(port: int, total: int = 400_000, piece: int = 10_000,
                   pause: float = 0.1) -> dict[str, Any]:
    """A body sent at ~100 KB/s that takes longer than --timeout."""
    started = time.monotonic()
    with attacks.connect(port, 15) as sock:
        sock.sendall(b"POST /body HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % total)
        sent = 0
        while sent < total:
            try:
                sock.sendall(b"x" * min(piece, total - sent))
            except OSError:
                break
            sent += piece
            time.sleep(pause)
        raw = attacks.read_until_close(sock, 5)
    return {"status": attacks.status_of(raw), "after s": round(time.monotonic() - started, 1)}


def heads(port: int) -> dict[str, Any]:
    seen = attacks.hostile_heads(port, attacks.HOSTILE_HEADS)
    return {name: "/".join(sorted(counts)) for name, counts in seen.items()}


ATTACKS = [
    Attack("pipelining flood", lambda port: attacks.pipeline_flood(port)),
    Attack("pipelining flood, Connection: close",
           lambda port: attacks.pipeline_flood(port, close_at=25)),
    Attack("slowloris heads (100)", lambda port: attacks.slowloris_heads(port, 100, 4.0)),
    Attack("slowloris bodies (3)", lambda port: attacks.slowloris_bodies(port, 3, 5.0)),
    Attack("clients that never read (2)", lambda port: attacks.never_read(port, 2, 4.0)),
    Attack("300 idle connections held (up to 6 s)",
           lambda port: attacks.held_connections(port, 300, 6.0)),
    Attack("oversized numbers and fields", heads),
    Attack("Range with 5,000 digits (x300)",
           lambda port: {name: dict(counts) for name, counts in attacks.hostile_heads(
               port, attacks.RANGE_HEADS, rounds=150).items()}, servers=("forkhttpd",)),
    Attack("handler forks a child holding the socket",
           lambda port: attacks.forking_handler(port, 4.0)),
    Attack("handlers that hang (2)", lambda port: attacks.hanging_handler(port, 2, 8.0)),
    Attack("handler leaking 30 MiB a request (x6)",
           lambda port: attacks.leaking_handler(port, 6, 30),
           extra={"forkhttpd": ("--max-rss", "50"), "gunicorn": ("--max-requests", "2")}),
    Attack("descriptor exhaustion (nofile 128, 300 held up to 4 s)",
           lambda port: attacks.held_connections(port, 300, 4.0), nofile=128),
    Attack("400 KB body at 100 KB/s", upload_at_rate),
]


def run_one(server: str, attack: Attack, site: str, log_dir: str) -> dict[str, Any]:
    port = free_port()
    command = COMMANDS[server](port, site, list(attack.extra.get(server, ())))
    process = ServerProcess(server, command, port, cwd=APPS, log_dir=log_dir)
    with nofile(attack.nofile):
        process.launch()
    try:
        process.wait_ready("/p")
        time.sleep(0.5)
        attacks.probe_after(port, count=4)  # both workers up and warm
        before = children(process.pid)
        log_size = os.path.getsize(process.log_path)
        started = time.monotonic()
        seen, during, after = attacks.during(port, lambda: attack.run(port))
        took = time.monotonic() - started
        with open(process.log_path, "rb") as log:
            log.seek(log_size)
            log_lines = log.read().count(b"\n")
        now = children(process.pid)
        return {"server": server, "attack": attack.name, "seen": seen, "during": during,
                "after": after, "replaced": len(before - now), "log lines": log_lines,
                "rss": rss_mib(now), "seconds": took}
    finally:
        process.stop()


def describe(seen: dict[str, Any]) -> str:
    return "; ".join(f"{key}: {round(value, 2) if isinstance(value, float) else value}"
                     for key, value in seen.items())


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| attack | server | measuring client during | after | workers replaced "
             "| log lines | worst worker RSS | what the attacker saw |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['attack']} | {row['server']} | {row['during'].summary()} "
            f"| {row['after'].summary()} | {row['replaced']} | {row['log lines']} "
            f"| {row['rss']:.0f} MiB | {describe(row['seen'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attack", action="append", default=[],
                        help="run only attacks whose name contains this text (repeatable)")
    parser.add_argument("--server", action="append", choices=sorted(COMMANDS), default=[])
    args = parser.parse_args(argv)
    servers = args.server or ["forkhttpd", "gunicorn"]
    chosen = [a for a in ATTACKS
              if not args.attack or any(text in a.name for text in args.attack)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="adversarial-") as work:
        site = os.path.join(work, "site")
        os.mkdir(site)
        with open(os.path.join(site, "f.txt"), "wb") as handle:
            handle.write(bytes(range(256)) * 4)
        for attack in chosen:
            for server in servers:
                if server not in attack.servers:
                    continue
                row = run_one(server, attack, site, work)
                print(f"{attack.name} / {server}: during {row['during'].summary()}, after "
                      f"{row['after'].summary()}, replaced {row['replaced']}, "
                      f"{describe(row['seen'])}", file=sys.stderr, flush=True)
                rows.append(row)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
