"""--log-config: the file's checks (runtime.logconfig), the settings errors, and applying a
dictConfig in place of the built-in error log (in a child interpreter: it changes the
process's logging for good)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forkhttpd.config.settings import SettingsError, load_settings
from forkhttpd.runtime.logconfig import LogConfigError, check_log_config, read_log_config

REPO = Path(__file__).resolve().parents[2]

GOOD_TOML = """
version = 1
[formatters.plain]
format = "%(levelname)s %(role)s %(name)s %(message)s"
[handlers.file]
class = "logging.FileHandler"
filename = "{path}"
formatter = "plain"
[root]
level = "INFO"
handlers = ["file"]
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_reads_toml_and_json(tmp_path: Path) -> None:
    config = read_log_config(write(tmp_path, "log.toml", GOOD_TOML.format(path="x.log")))
    assert config["handlers"]["file"]["class"] == "logging.FileHandler"
    as_json = write(tmp_path, "log.json", json.dumps(config))
    assert read_log_config(as_json) == config


@pytest.mark.parametrize("config, message", [
    ([], "must hold a table"),
    ({"version": 2}, "version = 1 is required"),
    ({}, "version = 1 is required"),
    ({"version": 1, "handler": {}}, "unknown key 'handler'"),
    ({"version": 1, "incremental": True}, "incremental = true is not supported"),
    ({"version": 1, "handlers": {"h": {"level": "INFO"}}}, "handler 'h': a 'class' is needed"),
    ({"version": 1, "handlers": {"h": {"class": "logging.StreamHandler", "formatter": "f"}}},
     "handler 'h': formatter 'f' is not defined"),
    ({"version": 1, "root": {"handlers": ["nope"]}}, "root: handler 'nope' is not defined"),
    ({"version": 1, "loggers": {"app": {"level": "LOUD"}}},
     "logger 'app': level 'LOUD' is not a level name"),
    ({"version": 1, "loggers": ["app"]}, "'loggers' must be a table of tables"),
    ({"version": 1, "root": {"handlers": "console"}}, "'handlers' must be a list of names"),
])
def test_shape_errors(config: object, message: str) -> None:
    with pytest.raises(LogConfigError, match=message.replace("(", r"\(")):
        check_log_config(config)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(LogConfigError, match="no such file"):
        read_log_config(str(tmp_path / "missing.toml"))
    with pytest.raises(LogConfigError, match="invalid TOML"):
        read_log_config(write(tmp_path, "bad.toml", "version = = 1"))
    with pytest.raises(LogConfigError, match="invalid JSON"):
        read_log_config(write(tmp_path, "bad.json", "{version: 1}"))


def test_settings_errors_name_the_flag_and_the_problem(tmp_path: Path) -> None:
    bad = write(tmp_path, "log.toml", "version = 1\n[root]\nhandlers = ['console']\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(["--log-config", bad], {})
    assert caught.value.errors == [
        f"--log-config {bad}: root: handler 'console' is not defined"]
    with pytest.raises(SettingsError) as caught:
        load_settings(["--log-config", "logging.yaml"], {})
    assert "--log-config: expected a .toml or .json file holding a logging dictConfig" in str(
        caught.value)


def test_the_shipped_example_is_valid() -> None:
    example = str(REPO / "etc" / "logging.toml")
    assert load_settings(["--log-config", example], {}).log_config == example


def test_the_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "log.toml", GOOD_TOML.format(path="x.log"))
    monkeypatch.chdir(tmp_path)
    settings = load_settings(["--log-config", "log.toml"], {})
    assert settings.log_config == str(tmp_path / "log.toml")


def run_child(script: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=30)


def test_a_dict_config_replaces_the_built_in_error_log(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    config = read_log_config(write(tmp_path, "log.toml", GOOD_TOML.format(path=log)))
    script = (
        "import logging, os\n"
        "from forkhttpd.runtime import logs\n"
        "logs.configure_error_log('-', 'info')\n"  # the built-in setup first, as in the master
        "logs.set_role('worker 4')\n"
        f"logs.configure_error_log(log_config={config!r})\n"
        "logs.error_log.info('from forkhttpd')\n"
        "logs.error_log.debug('not at INFO')\n"
        "logging.getLogger('myapp').warning('from the app')\n"
        f"os.rename({str(log)!r}, {str(log) + '.1'!r})\n"
        "logs.reopen_logs()\n"
        "logs.error_log.info('after the reopen')\n"
        "print(logs.error_fd() > 2)\n")
    result = run_child(script)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # nothing went to the built-in handler on stderr
    assert result.stdout.strip() == "True"  # faulthandler writes to the file handler's fd
    assert (tmp_path / "error.log.1").read_text().splitlines() == [
        "INFO worker 4 forkhttpd.error from forkhttpd",
        "WARNING worker 4 myapp from the app"]
    assert log.read_text() == "INFO worker 4 forkhttpd.error after the reopen\n"


def test_a_config_that_cannot_be_applied_is_one_line_and_changes_nothing() -> None:
    config = {"version": 1, "handlers": {"h": {"class": "no.such.Handler"}},
              "root": {"handlers": ["h"]}}
    script = (
        "from forkhttpd.runtime import logs\n"
        "logs.configure_error_log('-', 'info')\n"
        "try:\n"
        f"    logs.configure_error_log(log_config={config!r})\n"
        "except ValueError as error:\n"
        "    print(str(error))\n"
        "logs.error_log.info('still here')\n")
    result = run_child(script)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert "\n" not in line and "Unable to configure handler 'h'" in line, line
    assert "INFO still here" in result.stderr
