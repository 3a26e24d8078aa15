"""The locust smoke run as part of the test suite: loadtests/run_locust.py starts forkhttpd,
runs locust headless for 20 seconds and must exit 0 with requests made and no failure.

Locust runs in a subprocess only: it patches its process with gevent, so it is never
imported here. Without locust the test fails (on purpose) and says what to install.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN_LOCUST = REPO / "loadtests" / "run_locust.py"
PIP_LINE = 'pip install "locust>=2.20"'


def _run(*args: str, timeout: float) -> tuple[int, str]:
    if importlib.util.find_spec("locust") is None:  # finds it without importing it
        pytest.fail(f"locust is not installed; the load-test smoke run needs it: {PIP_LINE}")
    done = subprocess.run([sys.executable, str(RUN_LOCUST), *args], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout


def _summary(output: str) -> dict[str, str]:
    lines = [line for line in output.splitlines() if line.startswith("SUMMARY ")]
    assert lines, f"run_locust printed no SUMMARY line:\n{output[-3000:]}"
    return dict(item.split("=", 1) for item in lines[-1].split()[1:])


def _locust_aggregate(output: str) -> tuple[int, int]:
    """(requests, failures) from the "Aggregated" row of locust's own printed summary."""
    match = re.search(r"^\s*Aggregated\s+(\d+)\s+(\d+)\(", output, re.M)
    assert match, f"locust printed no Aggregated row:\n{output[-3000:]}"
    return int(match.group(1)), int(match.group(2))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_locust_smoke_run_has_requests_and_no_failures() -> None:
    code, output = _run("--time", "20s", timeout=150)
    assert code == 0, f"run_locust exited {code}:\n{output[-4000:]}"
    summary = _summary(output)
    assert int(summary["requests"]) > 0, output[-3000:]
    assert int(summary["failures"]) == 0, output[-3000:]
    requests, failures = _locust_aggregate(output)
    assert requests > 0 and failures == 0, output[-3000:]
    assert "GATE PASS" in output, output[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_reloads_under_load_lose_no_request() -> None:
    code, output = _run("--time", "20s", "--reloads", "5", timeout=150)
    assert code == 0, f"run_locust --reloads 5 exited {code}:\n{output[-4000:]}"
    summary = _summary(output)
    assert summary["reloads"] == "5/5", output[-3000:]
    assert int(summary["requests"]) > 0, output[-3000:]
    assert int(summary["failures"]) == 0, output[-3000:]
