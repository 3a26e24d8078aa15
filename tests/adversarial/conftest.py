"""Fixtures of the hostile-client suite: a real forkhttpd (tests/integration/harness.py) serving
tests/adversarial/apps/hostile.py with short deadlines, and the per-worker descriptor and
memory readings each test compares before and after its attack; must not import forkhttpd
(the server is only ever a process on a socket here)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from integration.harness import Server, wait_until

from .attacks import probe_after

APPS = Path(__file__).resolve().parent / "apps"
#: after an attack a worker may keep this much more resident memory (allocator arenas that
#: Python keeps for reuse); a leak of the kind the attacks could cause is far larger
RSS_SLACK_KIB = 8 * 1024

#: forkhttpd's settings for the suite: 2 workers, deadlines short enough to watch
SETTINGS = ("--app", "hostile:app", "--interface", "wsgi", "--workers", "2",
            "--timeout", "3", "--graceful-timeout", "2", "--header-timeout", "2",
            "--keep-alive", "2")


def usage(pid: int) -> tuple[int, int] | None:
    """(open descriptors, resident KiB) of a process, or None once it is gone."""
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/status") as handle:
            rss = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    return fds, rss


def workers_usage(server: Server) -> dict[int, tuple[int, int]]:
    found = {pid: usage(pid) for pid in server.worker_pids()}
    return {pid: value for pid, value in found.items() if value is not None}


class Hostile:
    """A started server, its baseline, and the checks every attack ends with."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.port = server.port
        self.baseline: dict[int, tuple[int, int]] = {}

    def warm_up(self) -> None:
        """Serve a few requests (both workers load what a request needs), then record the
        workers' descriptors and memory as the baseline."""
        report = probe_after(self.port, count=8)
        assert report.all_ok, report.failures
        # a worker replaced by the previous attack may still be on its way out
        assert wait_until(lambda: len(workers_usage(self.server)) == 2, timeout=10), \
            workers_usage(self.server)
        self.baseline = workers_usage(self.server)
        assert len(self.baseline) == 2, self.baseline

    def recovered(self, timeout: float = 10.0) -> dict[int, tuple[int, int]]:
        """Wait until two workers run, each holding no more descriptors than a worker did
        before the attack and about the same memory; returns the last readings."""
        fds_before = max(fds for fds, _ in self.baseline.values())
        rss_before = max(rss for _, rss in self.baseline.values())
        last: dict[int, tuple[int, int]] = {}

        def settled() -> bool:
            nonlocal last
            last = workers_usage(self.server)
            return len(last) == 2 and all(
                fds <= fds_before and rss <= rss_before + RSS_SLACK_KIB
                for fds, rss in last.values())

        assert wait_until(settled, timeout=timeout, interval=0.2), (
            f"workers did not come back: before {self.baseline}, now {last}")
        return last

    def same_workers(self) -> bool:
        return set(self.server.worker_pids()) == set(self.baseline)

    @property
    def log(self) -> str:
        return self.server.stderr


def start_server(directory: Path, *extra: str, **kwargs: Any) -> Server:
    """forkhttpd with SETTINGS (and `extra`), serving hostile.py and a small static site."""
    site = directory / "site"
    site.mkdir(exist_ok=True)
    (site / "f.txt").write_bytes(bytes(range(256)) * 4)
    server = Server(*SETTINGS, "--static", f"/static={site}", *extra, cwd=APPS,
                    log_dir=directory, **kwargs)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Callable[..., Hostile]]:
    """Start a server of its own for the test (extra arguments are added to SETTINGS)."""
    started: list[Server] = []

    def start(*extra: str, **kwargs: Any) -> Hostile:
        server = start_server(tmp_path, *extra, **kwargs)
        started.append(server)
        attacked = Hostile(server)
        attacked.warm_up()
        return attacked

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def _module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("shared"))
    yield server
    server.stop()


@pytest.fixture
def shared(_module_server: Server) -> Hostile:
    """The module's server, for attacks that leave its workers in place: a new baseline is
    taken before each test, from the workers as the last attack left them."""
    attacked = Hostile(_module_server)
    attacked.warm_up()
    return attacked
