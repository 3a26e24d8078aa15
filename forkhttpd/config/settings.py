"""Load forkhttpd's settings (defaults < config file < FORKHTTPD_* environment < command line)
and generate the CLI, sample config and docs from the one table; it imports nothing from
forkhttpd beyond its own table and types and runtime.logconfig (to check --log-config's file).

`python -m forkhttpd.config.settings --write` regenerates etc/forkhttpd.toml and docs/settings.md
from the table; `--check` exits 1 when either is stale.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from .table import ENV_PREFIX, SECTIONS, SETTINGS, SETTINGS_BY_NAME, Setting, Settings
from .types import (
    BadItem,
    BindAddress,
    InvalidValue,
    ListOf,
    Mount,
    SettingsError,
    parse_bind,
    show_value,
)

__all__ = [
    "BindAddress", "ENV_PREFIX", "GENERATED_FILES", "Mount", "NON_SETTING_ENV", "SECTIONS",
    "SETTINGS", "Setting", "Settings", "SettingsError", "build_parser", "load_settings",
    "package_version", "parse_bind", "reloadable_changes", "render_markdown", "render_toml",
    "to_toml",
]

# FORKHTTPD_* variables that are not settings, so load_settings does not reject them. The
# master passes inherited listening sockets this way when it re-executes itself.
NON_SETTING_ENV: frozenset[str] = frozenset({"FORKHTTPD_LISTEN_FDS"})

_COMPARED = frozenset(f.name for f in fields(Settings) if f.compare)


def package_version() -> str:
    """forkhttpd's version (forkhttpd/runtime/version.py, which the package metadata also reads)."""
    from ..runtime.version import __version__

    return __version__


# --------------------------------------------------------------------------------------------
# Command line

class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises SettingsError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        hint = ""
        if message.startswith("unrecognized arguments:"):
            known = {flag.lstrip("-"): flag
                     for action in self._actions for flag in action.option_strings}
            for word in message.split(":", 1)[1].split():
                if word.startswith("-"):
                    close = _close(word.split("=")[0].lstrip("-"), known)
                    if close:
                        hint = f" (did you mean {close}?)"
                        break
        # No "forkhttpd:" here: whoever prints the error adds the one prefix.
        raise SettingsError(f"{message}{hint}; see forkhttpd --help")


def _default_text(setting: Setting) -> str:
    if setting.default is None:
        return "not set"
    if setting.default == ():
        return "none"
    return setting.type.text(setting.default)


def build_parser() -> argparse.ArgumentParser:
    """The forkhttpd command line, generated from SETTINGS, one option group per section.

    Every option defaults to "not given" (absent from the namespace), so load_settings can
    tell a value given on the command line from a default.
    """
    parser = _Parser(
        prog="forkhttpd", allow_abbrev=False,
        description="A pre-fork HTTP/1.1 server for Python applications and static files.",
        epilog="Every setting can also be written in a TOML config file (-c FILE) under its "
               "name in snake_case, such as workers = 4, or given as an environment variable "
               "FORKHTTPD_<NAME>, such as FORKHTTPD_WORKERS=4. The command line overrides the "
               "environment, which overrides the config file. See docs/settings.md.")
    parser.add_argument("--version", action="version",
                        version=f"forkhttpd {package_version()}")
    groups = {section: parser.add_argument_group(f"{section} settings") for section in SECTIONS}
    for setting in SETTINGS:
        text = setting.help if setting.cli_only else (
            f"{setting.help} (default: {_default_text(setting)})")
        options: dict[str, Any] = dict(dest=setting.name, default=argparse.SUPPRESS,
                                       help=text.replace("%", "%%"))
        if setting.cli_only:
            options["action"] = "store_true"
        elif setting.is_bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["metavar"] = setting.metavar
            if setting.is_list:
                options["action"] = "append"
        groups[setting.section].add_argument(*setting.flags, **options)
    return parser


# --------------------------------------------------------------------------------------------
# Loading

_MISSING = object()


def _convert(setting: Setting, raw: object, where: str, errors: list[str],
             from_toml: bool = False) -> Any:
    """Raw text/TOML value -> typed value; on failure, appends an error and returns _MISSING."""
    try:
        if from_toml:
            return setting.type.from_toml(raw)
        if isinstance(raw, bool):  # a boolean flag, already parsed by argparse
            return raw
        if isinstance(raw, list) and isinstance(setting.type, ListOf):  # a repeated flag
            return setting.type.parse_items(raw)
        assert isinstance(raw, str)
        return setting.type.parse(raw)
    except InvalidValue as error:
        shown = error.item if isinstance(error, BadItem) else raw
        reason = f" ({error.detail})" if error.detail else ""
        errors.append(f"{where}: expected {setting.type.expected}, got {show_value(shown)}"
                      f"{reason}")
        return _MISSING


_CLOSE_ENOUGH = 0.8  # a typo (--worker, --acess-logfile), not a different word (--log-config)


def _close(word: str, known: Mapping[str, str]) -> str | None:
    """The value of the key of `known` most like `word`, if it looks like a typo of it."""
    import difflib  # error path only

    close = difflib.get_close_matches(word, list(known), n=1, cutoff=_CLOSE_ENOUGH)
    return known[close[0]] if close else None


def _unknown(word: str, known: Mapping[str, str], what: str) -> str:
    close = _close(word, known)
    return f"unknown {what}" + (f" (did you mean {close}?)" if close else "")


def _read_config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise SettingsError(f"config file {path}: no such file") from None
    except OSError as error:
        raise SettingsError(f"config file {path}: cannot read it: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path}: invalid TOML: {error}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"config file {path}: not UTF-8 text") from None


def _file_values(path: str, errors: list[str]) -> dict[str, Any]:
    """The settings of a TOML config file: flat keys, or the same keys in [section] tables."""
    entries: list[tuple[str, str | None, object]] = []
    for key, value in _read_config(path).items():
        if key in SECTIONS and isinstance(value, dict):
            entries.extend((sub_key, key, sub_value) for sub_key, sub_value in value.items())
        else:
            entries.append((key, None, value))
    names = {setting.name: setting.name for setting in SETTINGS if setting.in_file}
    values: dict[str, Any] = {}
    for key, section, raw in entries:
        where = f"{path}: {section + '.' if section else ''}{key}"
        setting = SETTINGS_BY_NAME.get(key)
        if setting is None:
            errors.append(f"{where}: {_unknown(key.replace('-', '_'), names, 'setting')}")
        elif setting.cli_only:
            errors.append(f"{where}: {setting.flag} can only be given on the command line")
        elif not setting.in_file:
            errors.append(f"{where}: cannot be set in a config file")
        elif section is not None and section != setting.section:
            errors.append(f"{where}: belongs in [{setting.section}], not [{section}]")
        elif key in values:
            errors.append(f"{where}: set twice in the file")
        else:
            values[key] = _convert(setting, raw, where, errors, from_toml=True)
    return values


def _env_values(environ: Mapping[str, str], errors: list[str]) -> dict[str, Any]:
    by_env = {setting.env: setting for setting in SETTINGS if setting.env}
    cli_only = {ENV_PREFIX + setting.name.upper(): setting
                for setting in SETTINGS if setting.cli_only}
    values: dict[str, Any] = {}
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in NON_SETTING_ENV:
            continue
        setting = by_env.get(variable)
        if setting is not None:
            values[setting.name] = _convert(setting, environ[variable], variable, errors)
        elif variable in cli_only:
            errors.append(f"{variable}: {cli_only[variable].flag} can only be given on the "
                          f"command line")
        else:
            names = {env.removeprefix(ENV_PREFIX): env for env in by_env}
            suffix = variable.removeprefix(ENV_PREFIX)
            errors.append(f"{variable}: {_unknown(suffix.upper(), names, 'setting variable')}")
    return values


def _edge_checks(settings: Settings) -> list[str]:
    """The proxy and TLS settings that need each other (the TLS files themselves are read by
    forkhttpd.worker.tls.build_context: at startup, in --check-config and on SIGHUP)."""
    errors = []
    if settings.proxy_protocol and not settings.forwarded_allow_ips:
        errors.append("--proxy-protocol: needs the proxies' addresses in "
                      "--forwarded-allow-ips, which is empty")
    if not settings.certfile:
        for name in ("keyfile", "ca_certs", "ssl_ciphers"):
            if getattr(settings, name):
                errors.append(f"{SETTINGS_BY_NAME[name].flag}: needs --certfile")
        if settings.cert_reqs != "none":
            errors.append("--cert-reqs: needs --certfile")
    elif settings.cert_reqs != "none" and not settings.ca_certs:
        errors.append(f"--cert-reqs {settings.cert_reqs}: client certificates are checked "
                      "against --ca-certs, which is not set")
    return errors


def _cross_check(settings: Settings) -> list[str]:
    """Combinations of individually valid values that cannot work together."""
    errors = []
    if not settings.bind:
        errors.append("--bind: at least one address is needed")
    seen: set[BindAddress] = set()
    for address in settings.bind:
        if address in seen:
            errors.append(f"--bind: {address} is given twice")
        seen.add(address)
    if settings.status_bind is not None and settings.status_bind in seen:
        errors.append(f"--status-bind: {settings.status_bind} is also a --bind address")
    if 0 < settings.max_requests < settings.max_requests_jitter:
        errors.append(f"--max-requests-jitter ({settings.max_requests_jitter}) must not exceed "
                      f"--max-requests ({settings.max_requests})")
    if 0 < settings.max_worker_lifetime < settings.max_worker_lifetime_jitter:
        errors.append(f"--max-worker-lifetime-jitter ({settings.max_worker_lifetime_jitter:g})"
                      f" must not exceed --max-worker-lifetime "
                      f"({settings.max_worker_lifetime:g})")
    if settings.log_config is not None:
        from ..runtime.logconfig import LogConfigError, read_log_config

        try:
            read_log_config(settings.log_config)
        except LogConfigError as error:
            errors.append(f"--log-config {settings.log_config}: {error}")
    if settings.interface != "auto" and settings.app is None and settings.routes is None:
        errors.append(f"--interface {settings.interface} needs --app or --routes")
    prefixes: dict[str, str] = {}
    for flag, mounts in (("--static", settings.static), ("--cgi-dir", settings.cgi_dir)):
        for mount in mounts:
            if mount.url_prefix in prefixes:
                errors.append(f"{flag}: URL prefix {mount.url_prefix} is already used by "
                              f"{prefixes[mount.url_prefix]}")
            prefixes.setdefault(mount.url_prefix, flag)
    return errors + _edge_checks(settings)


def load_settings(argv: list[str], environ: Mapping[str, str] | None = None) -> Settings:
    """The effective settings: defaults < config file < environment < command line.

    `argv` excludes the program name; `environ` defaults to os.environ. Every problem found is
    reported in one SettingsError (one line each, also in its `errors` list). --help and
    --version print and raise SystemExit(0), as argparse does.
    """
    if environ is None:
        environ = os.environ
    errors: list[str] = []
    cli_raw = vars(build_parser().parse_args(argv))
    cli = {name: _convert(SETTINGS_BY_NAME[name], raw, SETTINGS_BY_NAME[name].flag, errors)
           for name, raw in cli_raw.items()}
    env = _env_values(environ, errors)
    config = cli.get("config", env.get("config"))
    file = {} if not isinstance(config, str) else _file_values(config, errors)
    merged = {setting.name: setting.default for setting in SETTINGS}
    for layer in (file, env, cli):
        merged.update((name, value) for name, value in layer.items() if value is not _MISSING)
    # Absolute, so that a reload after --chdir still finds the file.
    merged["config"] = os.path.abspath(config) if isinstance(config, str) else None
    settings = Settings(**merged)
    if not errors:
        errors = _cross_check(settings)
    if errors:
        raise SettingsError("\n".join(errors), errors)
    return settings


def reloadable_changes(old: Settings, new: Settings) -> tuple[list[str], list[str]]:
    """(names of changed reloadable settings, names of changed settings needing a restart),
    in table order; config, check_config and print_config are not compared."""
    changed = [setting for setting in SETTINGS if setting.name in _COMPARED
               and getattr(old, setting.name) != getattr(new, setting.name)]
    return ([setting.name for setting in changed if setting.reloadable],
            [setting.name for setting in changed if not setting.reloadable])


# --------------------------------------------------------------------------------------------
# Rendering

def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, 98, initial_indent="# ", subsequent_indent="# ")


def to_toml(settings: Settings) -> str:
    """The settings as a TOML config file (what --print-config prints); loading it with
    `-c` gives back equal Settings. Unset optional settings appear as comments."""
    lines = ["# forkhttpd effective settings", ""]
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for setting in SETTINGS:
            if setting.section != section or not setting.in_file:
                continue
            value = getattr(settings, setting.name)
            if value is None:
                lines.append(f"# {setting.name}: not set")
            else:
                lines.append(f"{setting.name} = {setting.type.toml(value)}")
        lines.append("")
    return "\n".join(lines)


def _where_line(setting: Setting) -> str:
    reload = "reloadable on SIGHUP" if setting.reloadable else "needs a restart"
    return (f"{'/'.join(setting.flags)}, {setting.env}; {setting.type.name}; "
            f"default: {_default_text(setting)}; {reload}")


def render_toml() -> str:
    """The sample config file etc/forkhttpd.toml: every key commented out with its help."""
    lines = [
        "# forkhttpd sample configuration. Generated from forkhttpd/config/table.py by",
        "# `python -m forkhttpd.config.settings --write`: edit the table, not this file.",
        "#",
        "# Every setting is listed, commented out, with its default value (or, for settings",
        "# that are not set by default, an example). Uncomment the lines you need. The same",
        "# keys may also be written at the top level, without the [section] headers.",
        "# Precedence: defaults < this file (-c FILE or FORKHTTPD_CONFIG) < FORKHTTPD_*",
        "# environment variables < command line. An empty string means \"not set\".",
        "",
    ]
    for section in SECTIONS:
        lines += [f"[{section}]", ""]
        for setting in SETTINGS:
            if setting.section != section or not setting.in_file:
                continue
            shown = setting.default
            if shown is None or shown == ():
                shown = setting.example if setting.example is not None else shown
            value = '""' if shown is None else setting.type.toml(shown)
            lines += _comment(setting.help + ".")
            lines += _comment(_where_line(setting))
            lines += [f"# {setting.name} = {value}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown() -> str:
    """docs/settings.md: an introduction, then one table per section."""
    lines = [
        "# forkhttpd settings",
        "",
        "<!-- Generated from forkhttpd/config/table.py by "
        "`python -m forkhttpd.config.settings --write`; edit the table, not this file. -->",
        "",
        "Every setting can be given in three places. From lowest to highest precedence:",
        "",
        "1. a TOML config file named by `-c FILE` / `--config FILE` or `FORKHTTPD_CONFIG`, "
        "with the keys below at the top level or inside their `[section]` table "
        "(see `etc/forkhttpd.toml`);",
        "2. environment variables `FORKHTTPD_<NAME>`;",
        "3. the command line.",
        "",
        "Booleans are `--flag` / `--no-flag` on the command line, `1`, `0`, `true`, `false`, "
        "`yes`, `no`, `on` or `off` in the environment, and `true` / `false` in TOML. Lists are "
        "given by repeating the flag, comma separated in the environment, and as TOML arrays "
        "of strings; a list given on the command line replaces the one from the file or the "
        "environment. An empty value (`--app=`, `FORKHTTPD_APP=`, `app = \"\"`) means "
        "\"not set\". Unknown keys or `FORKHTTPD_` variables are errors.",
        "",
        "Settings marked reloadable take effect when the master receives SIGHUP; changing the "
        "others needs a restart. `forkhttpd --print-config` prints the effective settings as "
        "TOML.",
        "",
    ]
    for section in SECTIONS:
        lines += [f"## {section}", "",
                  "| Flag(s) | Environment | TOML key | Type | Default | Reloadable | "
                  "Description |",
                  "|---|---|---|---|---|---|---|"]
        for setting in SETTINGS:
            if setting.section != section:
                continue
            flags = list(setting.flags)
            if setting.is_bool and not setting.cli_only:
                flags.append("--no-" + setting.flag[2:])
            default = _default_text(setting)
            row = [
                ", ".join(f"`{flag}`" for flag in flags),
                f"`{setting.env}`" if setting.env else "(command line only)",
                f"`{setting.name}`" if setting.in_file else "(not in a file)",
                setting.type.name,
                default if setting.default is None or setting.default == () else f"`{default}`",
                "yes" if setting.reloadable else "no",
                setting.help,
            ]
            lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


GENERATED_FILES: dict[str, Callable[[], str]] = {
    "etc/forkhttpd.toml": render_toml,
    "docs/settings.md": render_markdown,
}


def main(argv: list[str] | None = None) -> int:
    """python -m forkhttpd.config.settings --write | --check [--root DIR]"""
    parser = argparse.ArgumentParser(
        prog="python -m forkhttpd.config.settings",
        description="Regenerate or check the files generated from the settings table.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated files")
    mode.add_argument("--check", action="store_true", help="exit 1 if any file is stale")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                        help="the source tree (default: the one holding this module)")
    args = parser.parse_args(argv)
    stale = []
    for relative, render in GENERATED_FILES.items():
        path = args.root / relative
        text = render()
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        else:
            stale.append(relative)
    if stale:
        print(f"stale: {', '.join(stale)}; run python -m forkhttpd.config.settings --write",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
