"""The shared HTTP/1.x conformance corpus, run black-box against a live forkhttpd."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import REPO, StartServer


def corpus_dir() -> Path:
    for candidate in (os.environ.get("FORKHTTPD_CONFORMANCE_DIR"),
                      REPO.parent / "shared" / "conformance", "/work/shared/conformance"):
        if candidate and (Path(candidate) / "run_corpus.py").exists():
            return Path(candidate)
    pytest.fail("the conformance corpus (../shared/conformance) is missing")


@pytest.mark.parametrize(("profile", "args"), [
    ("strict", []),
    ("default", ["--allow-missing-host"]),
])
def test_conformance_corpus_passes(start_server: StartServer, profile: str,
                                   args: list[str]) -> None:
    server = start_server("--app", "echo:handler", "--workers", "2", *args)
    corpus = corpus_dir()
    result = subprocess.run(
        [sys.executable, str(corpus / "run_corpus.py"), "--port", str(server.port),
         "--profile", profile, "-q", str(corpus / "cases"),
         str(corpus / "cases" / "expectations.json")],
        capture_output=True, text=True, timeout=300)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0 and summary.endswith(" 0 failed"), (
        f"{result.stdout}\n{result.stderr}")
    passed = int(summary.split()[0])
    assert passed > 100
