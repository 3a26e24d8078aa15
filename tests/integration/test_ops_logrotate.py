"""Log rotation with the real logrotate and the shipped etc/logrotate.d/forkhttpd (compress,
no delaycompress, postrotate `forkhttpd reopen`): no access-log line is lost, and
`forkhttpd reopen` returns only once every worker has reopened."""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .harness import REPO, wait_until
from .ops_support import forkhttpd_env, run_forkhttpd

pytestmark = pytest.mark.skipif(shutil.which("logrotate") is None,
                                reason="logrotate is not installed (.ci/run installs it)")

SHIPPED = REPO / "etc" / "logrotate.d" / "forkhttpd"
REQUESTS = 4000
ROTATIONS = 4
CLIENTS = 4
PACE = 0.004


def logrotate_config(logs: Path, pidfile: Path) -> str:
    """The shipped configuration, pointed at the test's directory and this forkhttpd. The
    `su` and `create` lines name the forkhttpd system user, which need not exist here."""
    text = SHIPPED.read_text()
    directives = {line.split()[0] for line in text.splitlines()
                  if line.strip() and not line.strip().startswith("#")}
    assert "compress" in directives
    assert not directives & {"delaycompress", "copytruncate"}
    text = text.replace("/var/log/forkhttpd", str(logs))
    text = text.replace("/run/forkhttpd/forkhttpd.pid", str(pidfile))
    text = text.replace("/usr/local/bin/forkhttpd", f"{sys.executable} -m forkhttpd")
    lines = [line for line in text.splitlines() if not line.strip().startswith("su ")]
    return "\n".join(line.replace("create 0640 forkhttpd forkhttpd", "create 0640")
                     for line in lines) + "\n"


def count_lines(logs: Path, name: str) -> tuple[int, int]:
    """(lines across the live file and every rotated .gz, number of .gz files)."""
    total = len((logs / name).read_bytes().splitlines()) if (logs / name).exists() else 0
    archives = sorted(logs.glob(f"{name}.*.gz"))
    for archive in archives:
        with gzip.open(archive) as file:
            total += len(file.read().splitlines())
    leftovers = [p.name for p in logs.glob(f"{name}.*") if not p.name.endswith(".gz")]
    assert not leftovers, f"uncompressed rotated files: {leftovers}"
    return total, len(archives)


@pytest.mark.slow
def test_four_rotations_under_load_lose_no_line(start_server: Any, tmp_path: Path) -> None:
    logs = tmp_path / "log"
    logs.mkdir(mode=0o750)
    pidfile = tmp_path / "forkhttpd.pid"
    config = tmp_path / "logrotate.conf"
    config.write_text(logrotate_config(logs, pidfile))
    server = start_server("--app", "echo:handler", "-w", "2",
                          "--access-logfile", str(logs / "access.log"),
                          "--error-logfile", str(logs / "error.log"), "--pid", str(pidfile),
                          ready=False)
    error_log = logs / "error.log"
    assert wait_until(lambda: error_log.exists() and "serving on" in error_log.read_text(), 15)
    served = [0]
    limit = [0]  # clients send while served < limit: the test paces the rounds
    lock = threading.Condition()
    failures: list[str] = []
    interval = REQUESTS // (ROTATIONS + 1)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            while True:
                with lock:
                    if not lock.wait_for(lambda: served[0] < limit[0] or served[0] >= REQUESTS,
                                         60):
                        failures.append("stalled")
                        return
                    if served[0] >= REQUESTS:
                        return
                    served[0] += 1
                    lock.notify_all()
                conn.request("GET", "/x")
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(str(response.status))
                time.sleep(PACE)
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(ROTATIONS):
            # A round: `interval` requests, logrotate starting half-way through them, so that
            # lines are logged (and buffered) while it renames, reopens and compresses.
            with lock:
                start = served[0]
                limit[0] = start + interval
                lock.notify_all()
                assert lock.wait_for(lambda: served[0] >= start + interval // 2, 60)  # noqa: B023
            result = subprocess.run(
                ["logrotate", "-f", "-s", str(tmp_path / "state"), str(config)],
                env=forkhttpd_env(), capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
    finally:
        with lock:
            limit[0] = REQUESTS
            lock.notify_all()
        for thread in threads:
            thread.join(60)
    assert not failures and served[0] == REQUESTS
    assert server.stop() == 0  # graceful: the workers write their last buffered lines
    lines, archives = count_lines(logs, "access.log")
    assert archives == ROTATIONS
    assert lines == REQUESTS, f"{REQUESTS - lines} access-log lines lost"


def test_reopen_waits_for_every_worker(start_server: Any, tmp_path: Path) -> None:
    pidfile = tmp_path / "s.pid"
    log = tmp_path / "access.log"
    server = start_server("--app", "echo:handler", "-w", "3", "--access-logfile", str(log),
                          "--pid", str(pidfile))
    for _ in range(5):
        assert server.request(path="/before")[0] == 200
    os.rename(log, tmp_path / "access.log.1")
    result = run_forkhttpd("reopen", "--pid", str(pidfile))
    assert result.returncode == 0, result.stderr
    assert "3 workers" in result.stdout
    # Everything logged before the reopen is in the old file already, not in a buffer.
    assert (tmp_path / "access.log.1").read_text().count("/before") == 5
    assert server.request(path="/after")[0] == 200
    server.stop()
    assert "/after" in log.read_text() and "/before" not in log.read_text()


def test_reopen_when_not_running(tmp_path: Path) -> None:
    result = run_forkhttpd("reopen", "--pid", str(tmp_path / "none.pid"))
    assert result.returncode == 7 and "not running" in result.stderr
