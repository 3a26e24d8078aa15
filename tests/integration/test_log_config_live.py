"""--log-config over the real server: the dictConfig replaces the built-in error log in the
master, the zygotes and the workers (the app's own loggers included), access lines keep their
own format and file, USR1 reopens the configured files; a bad file is a settings error (exit
2, one line, no traceback) that --check-config reports too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import REPO, StartServer, wait_until

APP = '''
import logging

log = logging.getLogger("myapp")


def handler(request, response):
    log.warning("served %s", request.raw_path)
    return "ok"
'''


def log_config(tmp_path: Path, error_log: Path) -> Path:
    path = tmp_path / "logging.json"
    path.write_text(json.dumps({
        "version": 1,
        "formatters": {"tagged": {"format": "CFG %(role)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(error_log),
                              "formatter": "tagged"}},
        "root": {"level": "INFO", "handlers": ["file"]},
    }))
    return path


def test_the_dict_config_replaces_the_error_log_everywhere(start_server: StartServer,
                                                           tmp_path: Path) -> None:
    (tmp_path / "logapp.py").write_text(APP)
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    server = start_server("--app", "logapp:handler", "--workers", "2", "--log-config",
                          str(log_config(tmp_path, error_log)), "--access-logfile",
                          str(access_log), cwd=tmp_path, ready=False)
    assert wait_until(lambda: error_log.exists() and "serving on" in error_log.read_text(),
                      timeout=15), server.stderr
    assert server.request("GET", "/one")[0] == 200
    assert wait_until(lambda: "served /one" in error_log.read_text())
    lines = error_log.read_text().splitlines()
    assert any(line.startswith("CFG master forkhttpd.error INFO serving on") for line in lines)
    assert any(line.startswith("CFG worker ") and line.endswith("myapp WARNING served /one")
               for line in lines), lines
    assert server.stderr == ""  # nothing went through the built-in setup
    # the access log keeps its own (combined) format and file
    assert wait_until(lambda: '"GET /one HTTP/1.1" 200' in access_log.read_text())
    assert "CFG" not in access_log.read_text()

    os.rename(error_log, str(error_log) + ".1")  # rotated: USR1 reopens the configured file
    server.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: error_log.exists() and "reopened" in error_log.read_text())
    assert server.request("GET", "/two")[0] == 200
    assert wait_until(lambda: "served /two" in error_log.read_text())
    assert server.stop() == 0
    assert error_log.read_text().rstrip().endswith("stopped")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "forkhttpd", "--bind", "127.0.0.1:0", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("content, reason", [
    ('{"version": 1, "root": {"handlers": ["console"]}}',
     "root: handler 'console' is not defined"),
    ('{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}, '
     '"root": {"handlers": ["h"]}}', "Unable to configure handler 'h'"),
    ("{not json", "invalid JSON"),
])
def test_a_bad_file_is_one_line_and_exit_2(tmp_path: Path, content: str, reason: str) -> None:
    (tmp_path / "logapp.py").write_text(APP)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = run("--app", "logapp:handler", "--log-config", str(bad), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"forkhttpd: error: --log-config {bad}: ") and reason in line, line
    checked = run("--app", "logapp:handler", "--log-config", str(bad), "--check-config",
                  cwd=tmp_path)
    assert checked.returncode != 0
    assert f"--log-config {bad}: " in checked.stderr and reason in checked.stderr
    assert "Traceback" not in checked.stderr
