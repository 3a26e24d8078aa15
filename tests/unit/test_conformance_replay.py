"""Replay the shared HTTP/1.x conformance corpus through ServerConnection (no sockets).

Every case is fed whole, byte by byte and in seeded random chunks through a
simulated server loop (next_event until PAUSED, respond, start_next_cycle, EOF
at the end). All three feedings must give the same normalised event list, and
that list must satisfy the case's expectation under both corpus profiles:
"default" (gunicorn-style leniency, tested with require_host=False) and "strict"
(tested with require_host=True).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from forkhttpd.protocol import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Limits,
    ProtocolError,
    Request,
    ServerConnection,
)

REPO = Path(__file__).resolve().parents[2]
PROFILES = {"default": Limits(require_host=False), "strict": Limits(require_host=True)}


def _corpus_dir() -> tuple[Path | None, list[Path]]:
    env = os.environ.get("FORKHTTPD_CONFORMANCE_DIR")
    tried = [Path(env)] if env else []
    tried += [REPO.parent / "shared" / "conformance", Path("/work/shared/conformance")]
    for path in tried:
        if (path / "cases" / "expectations.json").is_file() and (path / "run_corpus.py").is_file():
            return path, tried
        if env and path == Path(env):
            break  # an explicit but wrong setting must not silently fall back
    return None, tried


CORPUS, TRIED = _corpus_dir()


def _load_runner(corpus: Path) -> ModuleType:
    # Reuse the runner's own decoding of .http files instead of re-implementing it.
    spec = importlib.util.spec_from_file_location("run_corpus", corpus / "run_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if CORPUS is not None:
    _runner = _load_runner(CORPUS)
    RUNNER: ModuleType | None = _runner
    TABLE: dict[str, Any] = json.loads(
        (CORPUS / "cases" / "expectations.json").read_text())["cases"]
    CASES: list[str] = _runner.discover(str(CORPUS / "cases"))
else:
    RUNNER, TABLE, CASES = None, {}, []


def test_corpus_is_present() -> None:
    if CORPUS is None:
        pytest.fail("conformance corpus not found; tried "
                    + ", ".join(str(p) for p in TRIED)
                    + " (set FORKHTTPD_CONFORMANCE_DIR to the folder holding run_corpus.py)")
    assert len(CASES) > 100


# --------------------------------------------------------------------------- simulation

def simulate(pieces: list[bytes], limits: Limits) -> list[tuple[Any, ...]]:
    """Drive a ServerConnection like a server would; return a normalised event list."""
    conn = ServerConnection(limits)
    out: list[tuple[Any, ...]] = []
    feed = iter(pieces)
    body = bytearray()
    eof = False
    for _ in range(10_000_000):
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            if body:
                out.append(("partial-body", bytes(body)))
            out.append(("error", exc.status))
            assert not conn.keep_alive
            if not conn.response_started:
                response = conn.error_response(exc)
                assert response.startswith(b"HTTP/1.1 %d " % exc.status)
            with pytest.raises(ProtocolError):
                conn.next_event()  # a dead connection stays dead
            return out
        if event is NEED_DATA:
            assert not eof, "NEED_DATA after EOF: a real server would hang here"
            piece = next(feed, None)
            if piece is None:
                eof = True
                conn.receive_data(b"")
            else:
                conn.receive_data(piece)
        elif isinstance(event, Request):
            out.append(("request", event.method, event.target, event.path, event.query,
                        event.version, tuple(event.headers), event.host, event.content_length,
                        event.chunked, event.keep_alive, event.expect_continue))
            if event.expect_continue:
                assert conn.informational_response(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        elif isinstance(event, Data):
            assert event.data, "empty Data event"
            body += event.data
        elif isinstance(event, EndOfMessage):
            out.append(("message", bytes(body), tuple(event.trailers)))
            body.clear()
            response = conn.simple_response(200, [("Content-Type", "text/plain")], b"ok\n")
            assert response.startswith(b"HTTP/1.1 200 OK\r\n")
            out.append(("response", conn.keep_alive))
        elif event is PAUSED:
            if not conn.keep_alive:
                out.append(("server-close",))
                return out
            conn.start_next_cycle()
        elif isinstance(event, ConnectionClosed):
            out.append(("peer-closed",))
            return out
        else:
            raise AssertionError(f"unexpected event {event!r}")
    raise AssertionError("server loop did not terminate")


def feedings(data: bytes, seed: str) -> dict[str, list[bytes]]:
    rng = random.Random(seed)
    chunks, i = [], 0
    while i < len(data):
        n = rng.choice((1, 2, 3, 5, 8, 13, 40, 100, 700, 5000))
        chunks.append(data[i:i + n])
        i += n
    return {
        "whole": [data],
        "bytewise": [data[i:i + 1] for i in range(len(data))],
        "random": chunks,
    }


def check_verdict(events: list[tuple[Any, ...]], exp: dict[str, Any]) -> None:
    requests = [e for e in events if e[0] == "request"]
    responses = [e for e in events if e[0] == "response"]
    errors = [e for e in events if e[0] == "error"]
    n = len(responses)
    closed_by_us = bool(errors) or events[-1] == ("server-close",)
    assert n <= exp["max_responses"], "more responses than the corpus allows (desync)"
    if exp["expect"] == "ok":
        assert not errors, f"valid request rejected with {errors[0][1]}"
        assert n == exp["responses"] or (0 < n < exp["responses"] and closed_by_us), (
            f"{n} responses, expected {exp['responses']}")
        if exp.get("methods"):
            assert [r[1] for r in requests[:n]] == exp["methods"][:n]
    elif exp["expect"] == "rejected":
        assert errors and n == 0, "invalid request reached the handler"
        assert errors[0][1] >= 400
    if exp.get("must_close") and n:
        assert closed_by_us, "connection kept open where the corpus demands a close"


# Where the corpus contradicts its own profile rules, the override and why.
CORPUS_OVERRIDES: dict[tuple[str, str], tuple[dict[str, Any], str]] = {
    # valid/022 (HTTP/1.0 keep-alive, then HTTP/1.1 without Host) passes in both profiles:
    # a connection opened by an HTTP/1.0 request gets the old-client Host relaxation.
}


def _params() -> list[Any]:
    return [pytest.param(rel, profile, id=f"{profile}:{rel}")
            for rel in CASES for profile in PROFILES]


@pytest.mark.parametrize(("rel", "profile"), _params())
def test_corpus_case(rel: str, profile: str) -> None:
    assert RUNNER is not None and CORPUS is not None
    data = RUNNER.load_case_bytes(str(CORPUS / "cases" / rel))
    exp, _inferred = RUNNER.resolve_expectation(rel, TABLE, profile)
    override = CORPUS_OVERRIDES.get((profile, rel))
    if override is not None:
        exp = {**exp, **override[0]}
    results = {name: simulate(pieces, PROFILES[profile])
               for name, pieces in feedings(data, rel).items()}
    assert results["bytewise"] == results["whole"], "byte-by-byte feeding changed the outcome"
    assert results["random"] == results["whole"], "random chunking changed the outcome"
    check_verdict(results["whole"], exp)
