"""`forkhttpd --check-config`, as `nginx -t`: validate, import the app in a throwaway process,
print what would run, exit 0, or 2 for any problem (a settings error, as at startup)."""

from __future__ import annotations

from pathlib import Path

from .harness import APPS, StartServer, run_forkhttpd

MARKER_APP = '''
import os

with open(os.environ["MARKER"], "a") as marker:
    marker.write(f"{os.getpid()}\\n")


def handler(request, response):
    return "ok"
'''


def test_a_good_configuration(tmp_path: Path) -> None:
    config = tmp_path / "forkhttpd.toml"
    config.write_text('app = "mymod:handler"\nworkers = 3\nbind = ["127.0.0.1:8123", '
                      f'"unix:{tmp_path}/s.sock"]\nhealth_path = "/healthz"\n')
    result = run_forkhttpd("--check-config", "-c", str(config), cwd=APPS)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"config file:  {config}" in out
    assert "app:          mymod:handler" in out
    assert "interface:    auto (native)" in out
    assert f"binds:        127.0.0.1:8123, unix:{tmp_path}/s.sock" in out
    assert "workers:      3" in out
    assert "health path:  /healthz" in out
    assert "configuration check is successful" in out
    assert not (tmp_path / "s.sock").exists()  # nothing was bound


def test_the_app_is_imported_in_a_throwaway_process(tmp_path: Path) -> None:
    (tmp_path / "marked.py").write_text(MARKER_APP)
    marker = tmp_path / "imports"
    result = run_forkhttpd("--check-config", "--app", "marked:handler", cwd=tmp_path,
                           env={"MARKER": str(marker)})
    assert result.returncode == 0, result.stderr
    pids = marker.read_text().split()
    assert len(pids) == 1  # imported once, in the child


def test_an_app_that_raises_at_import(tmp_path: Path) -> None:
    result = run_forkhttpd("--check-config", "--app", "raises_at_import:handler", cwd=APPS)
    assert result.returncode == 2
    assert "the app's own import-time failure" in result.stderr  # the app's traceback
    assert "configuration check failed" in result.stderr
    assert "app:          raises_at_import:handler" in result.stdout  # still says what


def test_an_app_that_is_not_there() -> None:
    result = run_forkhttpd("--check-config", "--app", "mymod:nothing", cwd=APPS)
    assert result.returncode == 2
    assert "module 'mymod' has no attribute 'nothing'" in result.stderr
    assert "Traceback" not in result.stderr  # a typo in --app is no app failure


def test_invalid_settings_exit_2_as_at_startup() -> None:
    result = run_forkhttpd("--check-config", "--workers", "zero", cwd=APPS)
    assert result.returncode == 2
    assert "--workers" in result.stderr and "configuration check failed" in result.stderr


def test_problems_are_all_listed_and_the_app_not_imported(tmp_path: Path) -> None:
    (tmp_path / "marked.py").write_text(MARKER_APP)
    marker = tmp_path / "imports"
    result = run_forkhttpd("--check-config", "--app", "marked:handler", "--user",
                           "no-such-user-xyz", "--chdir", str(tmp_path / "nope"),
                           "--bind", f"unix:{tmp_path}/missing/s.sock", cwd=tmp_path,
                           env={"MARKER": str(marker)})
    assert result.returncode == 2
    assert "--user no-such-user-xyz: no such user" in result.stderr
    assert "--chdir" in result.stderr and "missing" in result.stderr
    assert not marker.exists()


def test_a_running_master_is_noted(start_server: StartServer, tmp_path: Path) -> None:
    pidfile = tmp_path / "forkhttpd.pid"
    server = start_server("--app", "mymod:handler", "--pid", str(pidfile))
    result = run_forkhttpd("--check-config", "--app", "mymod:handler", "--pid", str(pidfile),
                           cwd=APPS)
    assert result.returncode == 0, result.stderr
    assert f"a master is running (pid {server.pid})" in result.stdout
    assert pidfile.read_text() == f"{server.pid}\n"
