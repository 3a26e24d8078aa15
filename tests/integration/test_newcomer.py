"""Issue 15, a newcomer's first minute: `forkhttpd` alone in a project folder lists
directories like `python -m http.server` but never serves or lists a dot file (.git, .env),
however encoded, unless --serve-hidden; --static mounts keep the same rule; the app specs a
gunicorn user writes work (`--app MODULE`, a plain WSGI function under --interface auto);
picohttp's positional HttpServer arguments mean what they mean in picohttp."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import APPS, REPO
from .ops_support import free_port


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder, as a newcomer runs `forkhttpd` in it."""
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("[remote] url=secret")
    (root / ".env").write_text("API_KEY=secret")
    (root / "settings.py").write_text("SECRET_KEY = 'x'")
    (root / "docs").mkdir()
    (root / "docs" / "guide.txt").write_text("the guide")
    (root / "docs" / ".draft").write_text("draft")
    (root / "readme.txt").write_text("read me")
    return root


HIDDEN = ["/.env", "/.git/config", "/.git/", "/.git", "/%2egit/config", "/%2Eenv",
          "/docs/.draft", "/docs/%2edraft", "/docs/..%2f.env", "/./.env"]


def test_default_lists_directories_and_hides_dot_files(start_server, project: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_server(cwd=project)
    status, headers, body = server.request("GET", "/")
    page = body.decode()
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "Directory listing for /" in page
    assert 'href="readme.txt"' in page and 'href="docs/"' in page
    assert ".git" not in page and ".env" not in page
    assert server.request("GET", "/readme.txt")[2] == b"read me"
    assert ".draft" not in server.request("GET", "/docs/")[2].decode()
    for path in HIDDEN:
        raw = server.raw(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         .encode())
        assert raw.startswith(b"HTTP/1.1 404 "), (path, raw[:60])
        assert b"secret" not in raw and b"draft\n" not in raw


def test_serve_hidden_serves_and_lists_dot_files(start_server, project: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_server("--serve-hidden", cwd=project)
    assert server.request("GET", "/.env")[2] == b"API_KEY=secret"
    assert server.request("GET", "/%2egit/config")[2] == b"[remote] url=secret"
    assert 'href=".git/"' in server.request("GET", "/")[2].decode()
    assert server.request("GET", "/docs/..%2f.env")[0] == 404  # never a separator, though


def test_static_mounts_keep_the_dot_file_rule(start_server, project: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_server("--app", "mymod:handler", "--static", f"/files={project}",
                          "--list-directories")
    assert server.request("GET", "/files/readme.txt")[2] == b"read me"
    assert server.request("GET", "/files/.env")[0] == 404
    assert server.request("GET", "/files/%2Egit/config")[0] == 404
    assert ".git" not in server.request("GET", "/files/")[2].decode()


@pytest.mark.parametrize(("spec", "body"), [
    ("gunicorn_style", b"wsgi GET /x"),  # MODULE means MODULE:application
    ("gunicorn_style:application", b"wsgi GET /x"),  # a plain function: WSGI under auto
    ("app_only.wsgi", b"found app"),  # then MODULE:app
])
def test_gunicorn_app_specs(start_server, spec: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    server = start_server("--app", spec)
    assert server.request("GET", "/x")[::2] == (200, body)


def test_a_module_without_either_name_is_one_clear_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "forkhttpd", "--app", "mymod", "--bind", "127.0.0.1:0"],
        cwd=APPS, capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert "neither 'application' nor 'app'" in result.stderr
    assert "Traceback" not in result.stderr


def test_picohttp_positional_arguments(tmp_path: Path) -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, str(APPS / "picohttp_positional.py"), str(port)], cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    assert result.stdout.splitlines() == [
        "threads False started True", "body hello world", "stopped 0"], result.stderr



@pytest.mark.parametrize("mode", ["thread", "handler"])
def test_http_server_shutdown(tmp_path: Path, mode: str) -> None:
    # http.server's shutdown(): from another thread it waits until serve_forever() has
    # returned; from a handler (in a worker) it asks the master to stop gracefully
    result = subprocess.run(
        [sys.executable, str(APPS / "compat_shutdown.py"), mode], cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert lines[0] == "bound True" and lines[1].startswith("answer ThreadingHTTPServer ")
    if mode == "thread":
        assert lines[2:] == ["shutdown returned", "serve_forever returned"]
    else:
        assert sorted(lines[2:]) == sorted([f"stop {lines[1]}", "serve_forever returned"])
    assert "graceful stop" in result.stderr and "INFO stopped" in result.stderr
