"""--reload over the real server: a save of the app's own source (the app module, a module it
imports) or of a --reload-extra-file runs the same transactional reload as SIGHUP; a syntax
error keeps the old code serving and is printed once, and the next save loads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .harness import StartServer, wait_until


def write_app(path: Path, version: int, body: str | None = None) -> None:
    """The app at `version`, its own size each time (a stale .pyc can never pass for it);
    `body` replaces the code (a broken save)."""
    code = body if body is not None else (
        "import helper\n\n\ndef handler(request, response):\n"
        f'    return f"v{version} {{helper.WORD}} {{__import__(\'os\').getpid()}}"\n')
    path.write_text(f'"""Reload fixture, version {version}."""\n\n{code}' + "#" * version + "\n")


def served(server: Any) -> str:
    status, _, body = server.request("GET", "/")
    assert status == 200
    return body.decode().rsplit(" ", 1)[0]  # without the PID


def test_a_save_reloads_a_broken_save_keeps_the_old_code(start_server: StartServer,
                                                          tmp_path: Path) -> None:
    app, helper, extra = tmp_path / "devapp.py", tmp_path / "helper.py", tmp_path / "flags.txt"
    write_app(app, 1)
    helper.write_text('WORD = "one"\n')
    extra.write_text("a\n")
    server = start_server("--app", "devapp:handler", "--reload", "--reload-extra-file",
                          str(extra), cwd=tmp_path)
    assert served(server) == "v1 one"
    assert "--reload" in server.stderr and "not for production" in server.stderr

    write_app(app, 2)  # the app module itself
    server.wait_for_log("reload complete: generation 2")
    assert served(server) == "v2 one"
    assert f"--reload: {app} changed" in server.stderr

    helper.write_text('WORD = "two"\n')  # a module the app imports
    server.wait_for_log("reload complete: generation 3")
    assert served(server) == "v2 two"

    extra.write_text("b\n")  # --reload-extra-file
    server.wait_for_log("reload complete: generation 4")

    # A syntax error: the error once, the old code serves on.
    write_app(app, 5, body="def handler(request, response:\n    return 'x'\n")
    server.wait_for_log("reload failed; generation 4 keeps serving")
    assert served(server) == "v2 two"
    assert wait_until(lambda: False, timeout=1.0) is False  # let any repeated event arrive
    log = server.stderr
    assert log.count("reload failed: generation") == 1  # printed once...
    assert log.count("def handler(request, response:") == 1, log  # ...with its traceback
    assert "devapp.py\", line 3" in log  # where the mistake is

    write_app(app, 6)  # the fix
    server.wait_for_log("reload complete: generation 6")
    assert served(server) == "v6 two"
    assert server.stderr.count("reload failed: generation") == 1
    assert server.stop() == 0


def test_a_syntax_error_in_a_module_new_to_the_app_is_watched_too(start_server: StartServer,
                                                                  tmp_path: Path) -> None:
    app, helper = tmp_path / "devapp.py", tmp_path / "helper.py"
    write_app(app, 1)
    helper.write_text('WORD = "one"\n')
    server = start_server("--app", "devapp:handler", "--reload", cwd=tmp_path)
    extra = tmp_path / "newmod.py"
    extra.write_text("WORD = (\n")  # broken from the start
    write_app(app, 2, body="import newmod\n\n\ndef handler(request, response):\n"
                           "    return newmod.WORD + ' x'\n")
    server.wait_for_log("reload failed; generation 1 keeps serving")
    assert served(server) == "v1 one"
    extra.write_text('WORD = "fixed"\n')  # never imported successfully, yet watched
    server.wait_for_log("reload complete: generation 3")
    assert served(server) == "fixed"


def test_files_outside_the_app_do_not_reload(start_server: StartServer, tmp_path: Path) -> None:
    app, helper = tmp_path / "devapp.py", tmp_path / "helper.py"
    write_app(app, 1)
    helper.write_text('WORD = "one"\n')
    server = start_server("--app", "devapp:handler", "--reload", cwd=tmp_path)
    (tmp_path / "notes.txt").write_text("not code\n")
    os.utime(app, None)  # a touch counts...
    server.wait_for_log("reload complete: generation 2")
    (tmp_path / "unrelated.py").write_text("X = 1\n")  # ...a file the app never imported not
    assert not wait_until(lambda: "generation 3" in server.stderr, timeout=1.5)
