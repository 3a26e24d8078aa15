"""Fixtures for integration tests: every server is started on a socket the test owns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Server, StartServer


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    started: list[Server] = []

    def start(*args: str, ready: bool = True, **kwargs: Any) -> Server:
        kwargs.setdefault("log_dir", tmp_path)
        server = Server(*args, **kwargs)
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()
