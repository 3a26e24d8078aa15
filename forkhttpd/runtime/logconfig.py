"""--log-config: read a logging dictConfig from a TOML or JSON file and check its shape without
touching the process's logging; standard library only, nothing else from forkhttpd.

The checks here are the ones that need no import and no file opened: the top-level keys, the
version, that formatters, filters, handlers and loggers are tables, that every level is a
level name and that every formatter, filter and handler a section names is defined. What
only applying can tell (a handler class that does not import, a file that cannot be opened)
is found by logs.configure_error_log, which the master runs before it forks anything and
--check-config runs in its throwaway child.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

__all__ = ["LogConfigError", "read_log_config"]

_TOP = {"version", "formatters", "filters", "handlers", "loggers", "root", "incremental",
        "disable_existing_loggers"}
_LEVELS = {"CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET"}


class LogConfigError(ValueError):
    """The file cannot serve as a dictConfig; str() is one line, without the file's name."""


def _parse(path: str) -> object:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise LogConfigError("no such file") from None
    except OSError as error:
        raise LogConfigError(f"cannot read it: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LogConfigError("not UTF-8 text") from None
    if path.endswith(".json"):
        try:
            return json.loads(text)
        except ValueError as error:
            raise LogConfigError(f"invalid JSON: {error}") from None
    if path.endswith(".toml"):
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise LogConfigError(f"invalid TOML: {error}") from None
    raise LogConfigError("the file name must end in .toml or .json")


def _table(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(item, dict) for item in value.values()):
        raise LogConfigError(f"{key!r} must be a table of tables, one per name")
    return value


def _check_level(where: str, entry: dict[str, Any]) -> None:
    level = entry.get("level")
    if level is not None and not (isinstance(level, int) and not isinstance(level, bool)) and (
            not isinstance(level, str) or level.upper() not in _LEVELS):
        raise LogConfigError(f"{where}: level {level!r} is not a level name such as "
                             '"INFO" or "DEBUG"')


def _check_refs(where: str, entry: dict[str, Any], key: str, known: dict[str, Any]) -> None:
    names = entry.get(key, [])
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise LogConfigError(f"{where}: {key!r} must be a list of names")
    for name in names:
        if name not in known:
            raise LogConfigError(f"{where}: {key[:-1]} {name!r} is not defined")


def check_log_config(config: object) -> dict[str, Any]:
    """`config` if it has a dictConfig's shape; LogConfigError (one line) otherwise."""
    if not isinstance(config, dict):
        raise LogConfigError("the file must hold a table (an object), not a list or a value")
    unknown = sorted(set(config) - _TOP)
    if unknown:
        raise LogConfigError(f"unknown key {unknown[0]!r} (expected: "
                             f"{', '.join(sorted(_TOP))})")
    if config.get("version") != 1:
        raise LogConfigError("version = 1 is required (the only dictConfig version)")
    if config.get("incremental"):
        raise LogConfigError("incremental = true is not supported: the file replaces the "
                             "error log setup")
    formatters = _table(config, "formatters")
    filters = _table(config, "filters")
    handlers = _table(config, "handlers")
    loggers = _table(config, "loggers")
    for name, handler in handlers.items():
        where = f"handler {name!r}"
        if "class" not in handler and "()" not in handler:
            raise LogConfigError(f"{where}: a 'class' is needed, such as "
                                 '"logging.StreamHandler"')
        _check_level(where, handler)
        formatter = handler.get("formatter")
        if formatter is not None and formatter not in formatters:
            raise LogConfigError(f"{where}: formatter {formatter!r} is not defined")
        _check_refs(where, handler, "filters", filters)
    root = config.get("root", {})
    if not isinstance(root, dict):
        raise LogConfigError("'root' must be a table")
    for where, entry in [("root", root)] + [(f"logger {name!r}", logger)
                                            for name, logger in loggers.items()]:
        _check_level(where, entry)
        _check_refs(where, entry, "handlers", handlers)
        _check_refs(where, entry, "filters", filters)
    return config


def read_log_config(path: str) -> dict[str, Any]:
    """The dictConfig held by `path` (.toml or .json), checked; LogConfigError otherwise."""
    return check_log_config(_parse(path))
