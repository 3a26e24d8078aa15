"""The settings table: every forkhttpd setting declared once, as a field of Settings; imports
only the standard library and forkhttpd.config.types, nothing else from forkhttpd.

Each field carries its Setting (flags, value type, section, help, reloadable...) in its
metadata; SETTINGS lists them in declaration order, which is also the order of --help, the
sample config file and docs/settings.md. Import these names from forkhttpd.config.settings.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from typing import Any

from .types import (
    AddressList,
    Bind,
    BindAddress,
    Bool,
    Choice,
    Float,
    Int,
    InvalidValue,
    ListOf,
    Mount,
    MountType,
    Octal,
    Optional,
    Str,
    ValueType,
)

__all__ = ["ENV_PREFIX", "SECTIONS", "SETTINGS", "Setting", "Settings", "SETTINGS_BY_NAME"]

ENV_PREFIX = "FORKHTTPD_"
SECTIONS = ("server", "proxy", "tls", "applications", "protocol", "workers", "logging",
            "process")


@dataclass(frozen=True)
class Setting:
    """One row of the table. `type` parses and renders values; `env` is None for settings
    that only exist on the command line; `in_file` is False for those a config file cannot
    set. `example` is shown in the sample config when the default is None."""

    name: str
    flags: tuple[str, ...]
    type: ValueType
    default: Any
    help: str
    section: str
    reloadable: bool
    metavar: str = ""
    cli_only: bool = False
    in_file: bool = True
    example: Any = None

    @property
    def env(self) -> str | None:
        """FORKHTTPD_<NAME>, or None for command-line-only settings."""
        return None if self.cli_only else ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        """The long flag that names this setting in messages (the first one declared)."""
        return next(flag for flag in self.flags if flag.startswith("--"))

    @property
    def is_bool(self) -> bool:
        return isinstance(self.type, Bool)

    @property
    def is_list(self) -> bool:
        return isinstance(self.type, ListOf)


def _setting(default: Any, *flags: str, type: ValueType, section: str, help: str,
             reloadable: bool, example: Any = None, cli_only: bool = False,
             in_file: bool = True, compare: bool = True) -> Any:
    """A dataclass field whose metadata holds the Setting (named later from the field)."""
    spec = dict(flags=flags, type=type, default=default, help=help, section=section,
                reloadable=reloadable, metavar=type.metavar, example=example,
                cli_only=cli_only, in_file=in_file and not cli_only)
    return field(default=default, compare=compare, metadata={"setting": spec})


# ---- checks used by string settings -------------------------------------------------------

_APP = re.compile(
    r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\(\))?)?$")


def _check_app(text: str) -> str:
    if text.strip().endswith(".py"):
        raise InvalidValue("a module name, not a file name: web, not web.py")
    if not _APP.match(text.strip()):
        raise InvalidValue()
    return text.strip()


def _check_url_path(text: str) -> str:
    if not text.startswith("/") or any(char.isspace() or char in "?#" for char in text):
        raise InvalidValue()
    return text


def _check_root_path(text: str) -> str:
    text = _check_url_path(text)
    if text != "/" and text.endswith("/"):
        raise InvalidValue("without a trailing slash, as in /app")
    return "" if text == "/" else text


class _AnyAtom(dict[str, int]):
    """Formats any %(atom)s or %(atom)d as 0, to test a custom log format's syntax."""

    def __missing__(self, key: str) -> int:
        return 0


def _check_log_format(text: str) -> str:
    if text in ("combined", "json"):
        return text
    try:
        if re.search(r"%(?!\()", text.replace("%%", "")):  # "%s": not a named atom
            raise ValueError(text)
        text % _AnyAtom()
    except (TypeError, ValueError, KeyError):
        raise InvalidValue("a custom format uses %(atom)s fields, as in '%(h)s %(r)s %(s)s'") \
            from None
    return text


_DOTTED = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


def _check_hooks(text: str) -> str:
    """A dotted module name, or a .py file (made absolute: a reload after --chdir finds it)."""
    text = text.strip()
    if text.endswith(".py") and "\0" not in text:
        return os.path.abspath(text)
    if not _DOTTED.match(text):
        raise InvalidValue()
    return text


def _check_log_config(text: str) -> str:
    """The file's kind by its name; its contents are checked by settings._cross_check."""
    if not text.endswith((".toml", ".json")):
        raise InvalidValue("the file name must end in .toml or .json")
    return os.path.abspath(text)


def _absolute(text: str) -> str:
    return os.path.abspath(text)


_PATH = Str("a path", "path", "PATH")
_NAME = Str("a user or group name, or a numeric id", "name or id", "NAME")
_SECONDS_GE0 = Float(0)
_NONE = "0 means no limit"


@dataclass(frozen=True)
class Settings:
    """The effective configuration: one typed field per setting; Settings() is all defaults.

    config, check_config and print_config say how the settings were loaded and what the
    command should do; they are left out of equality (and of reloadable_changes).
    """

    # ---- server ----
    app: str | None = _setting(
        None, "--app", section="server", reloadable=True, example="myproject.web:app",
        type=Optional(Str("MODULE, MODULE:ATTR or MODULE:FACTORY()", "MODULE:ATTR",
                          "MODULE:ATTR", _check_app)),
        help="Application to serve, as MODULE:ATTR or MODULE:FACTORY(); a bare MODULE means "
             "MODULE:application, else MODULE:app; if not set, the current directory's files "
             "are served (listed, dot files hidden)")
    bind: tuple[BindAddress, ...] = _setting(
        (BindAddress("tcp", "127.0.0.1", 8000),), "-b", "--bind", section="server",
        reloadable=False, type=ListOf(Bind()),
        help="Address to listen on: HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N; repeat for "
             "several")
    workers: int = _setting(
        1, "-w", "--workers", section="server", reloadable=True, type=Int(1),
        help="Number of worker processes")
    backlog: int = _setting(
        2048, "--backlog", section="server", reloadable=False, type=Int(1, 65535),
        help="Length of the queue of connections waiting to be accepted")
    chdir: str | None = _setting(
        None, "--chdir", section="server", reloadable=False, type=Optional(_PATH),
        example="/srv/myproject",
        help="Directory to change to before loading the application; also added to sys.path")
    reuse_port: bool = _setting(
        False, "--reuse-port", section="server", reloadable=False, type=Bool(),
        help="Set SO_REUSEPORT on TCP listening sockets")
    defer_accept: int = _setting(
        1, "--defer-accept", section="server", reloadable=False, type=Int(0, 3600, "seconds"),
        help="Hand a TCP connection to a worker only once its first bytes have arrived, or "
             "after this many seconds (TCP_DEFER_ACCEPT); 0 hands it over at connect. "
             "Applies to the sockets forkhttpd binds: socket-activated ones keep systemd's "
             "DeferAcceptSec=")
    health_path: str | None = _setting(
        None, "--health-path", section="server", reloadable=True, example="/healthz",
        type=Optional(Str('a URL path starting with "/"', "URL path", "PATH", _check_url_path)),
        help="URL path answered with 200 OK by the server itself, without calling the "
             "application")
    status_bind: BindAddress | None = _setting(
        None, "--status-bind", section="server", reloadable=False, type=Optional(Bind(True)),
        example=BindAddress("tcp", "127.0.0.1", 9000),
        help="TCP address where the master serves /status and /metrics")
    hooks: str | None = _setting(
        None, "--hooks", section="server", reloadable=True, example="myproject.hooks",
        type=Optional(Str("a dotted module name or a .py file", "module or file", "MODULE",
                          _check_hooks)),
        help="Module (dotted name or .py file) defining server hooks: on_starting, "
             "when_ready, on_reload, child_exit (run in the master), post_fork, worker_exit, "
             "worker_abort (run in each worker); read again on every reload")
    reload: bool = _setting(
        False, "--reload", section="server", reloadable=False, type=Bool(),
        help="Development only: reload (as SIGHUP does) when a source file of the app, or a "
             "--reload-extra-file, changes")
    reload_extra_file: tuple[str, ...] = _setting(
        (), "--reload-extra-file", section="server", reloadable=True,
        type=ListOf(Str("a path", "path", "FILE", _absolute)), example=("./settings.toml",),
        help="Also reload when this file changes (only with --reload); repeat for several")

    # ---- proxy ----
    forwarded_allow_ips: tuple[str, ...] = _setting(
        ("127.0.0.1", "::1"), "--forwarded-allow-ips", section="proxy", reloadable=True,
        type=AddressList(),
        help="Peers trusted to say who the client is: their X-Forwarded-For, -Proto, -Host, "
             "-Port and Forwarded fields set the client address, scheme, host and port every "
             "interface sees (from other peers they are plain fields), and only they may send "
             'a PROXY protocol header. Comma list of addresses and CIDR networks, "*" for any '
             'peer, "unix" for Unix-socket peers; empty for none')
    proxy_protocol: bool = _setting(
        False, "--proxy-protocol", section="proxy", reloadable=True, type=Bool(),
        help="Expect a PROXY protocol header (v1 or v2, as HAProxy's send-proxy and cloud "
             "load balancers send) at the start of every connection, from a "
             "--forwarded-allow-ips peer; a connection without a valid one is closed")
    root_path: str | None = _setting(
        None, "--root-path", section="proxy", reloadable=True, example="/app",
        type=Optional(Str('a URL path starting with "/"', "URL path", "PATH",
                          _check_root_path)),
        help="URL prefix the application is mounted under behind a proxy: WSGI's SCRIPT_NAME "
             "(PATH_INFO loses the prefix when the request carries it), and the same for "
             "the other interfaces")

    # ---- tls ----
    certfile: str | None = _setting(
        None, "--certfile", section="tls", reloadable=True, type=Optional(_PATH),
        example="/etc/forkhttpd/cert.pem",
        help="PEM certificate (chain) to serve HTTPS with; if not set, plain HTTP. Re-read "
             "by every new generation (SIGHUP)")
    keyfile: str | None = _setting(
        None, "--keyfile", section="tls", reloadable=True, type=Optional(_PATH),
        example="/etc/forkhttpd/key.pem",
        help="PEM private key of --certfile, unless the certificate file holds it")
    ca_certs: str | None = _setting(
        None, "--ca-certs", section="tls", reloadable=True, type=Optional(_PATH),
        example="/etc/forkhttpd/clients-ca.pem",
        help="PEM CA certificates that client certificates are checked against")
    cert_reqs: str = _setting(
        "none", "--cert-reqs", section="tls", reloadable=True,
        type=Choice("none", "optional", "required"),
        help="Client certificates: not asked for, checked when sent, or required")
    ssl_ciphers: str | None = _setting(
        None, "--ssl-ciphers", section="tls", reloadable=True, example="ECDHE+AESGCM",
        type=Optional(Str("an OpenSSL cipher list", "cipher list", "CIPHERS")),
        help="OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's); if not set, "
             "OpenSSL's defaults. TLS 1.2 is the minimum version, ALPN offers http/1.1")

    # ---- applications ----
    interface: str = _setting(
        "auto", "--interface", section="applications", reloadable=True,
        type=Choice("native", "wsgi", "handler-class", "auto"),
        help="How to call the application; auto decides from what --app names")
    static: tuple[Mount, ...] = _setting(
        (), "--static", section="applications", reloadable=True, type=ListOf(MountType()),
        example=(Mount("/static", "./static"),),
        help="Serve the files of DIR under URL_PREFIX; repeat for several")
    routes: str | None = _setting(
        None, "--routes", section="applications", reloadable=True, type=Optional(_PATH),
        example="./routes", help="Directory of VSHS-style route handlers")
    cgi_dir: tuple[Mount, ...] = _setting(
        (), "--cgi-dir", section="applications", reloadable=True, type=ListOf(MountType()),
        example=(Mount("/cgi-bin", "./cgi-bin"),),
        help="Run the CGI programs of DIR under URL_PREFIX; repeat for several")
    list_directories: bool = _setting(
        False, "--list-directories", section="applications", reloadable=True, type=Bool(),
        help="Answer requests for --static directories without an index.html with a "
             "listing (the no-app default always lists, as python -m http.server does)")
    show_hidden: bool = _setting(
        False, "--show-hidden", section="applications", reloadable=True, type=Bool(),
        help="Include dot files in directory listings")
    serve_hidden: bool = _setting(
        False, "--serve-hidden", section="applications", reloadable=True, type=Bool(),
        help="Serve and list dot files and dot directories (any path segment starting with "
             '"."). Without it, static files, directory listings and the pyhttp handler '
             "answer 404 for them (.git/, .env), however the path is encoded")
    follow_symlinks: bool = _setting(
        False, "--follow-symlinks", section="applications", reloadable=True, type=Bool(),
        help="Serve static files through symbolic links that lead outside their directory")
    cgi_timeout: float = _setting(
        30.0, "--cgi-timeout", section="applications", reloadable=True, type=Float(0, True),
        help="Seconds a CGI program may run before it is killed")

    # ---- protocol ----
    keep_alive: float = _setting(
        5.0, "--keep-alive", section="protocol", reloadable=True, type=_SECONDS_GE0,
        help="Seconds an idle keep-alive connection is kept open; 0 closes the connection "
             "after every response")
    max_keepalive_requests: int = _setting(
        1000, "--max-keepalive-requests", section="protocol", reloadable=True, type=Int(0),
        help=f"Requests served on one connection before it is closed; {_NONE}")
    limit_request_line: int = _setting(
        8190, "--limit-request-line", section="protocol", reloadable=True,
        type=Int(64, unit="bytes"), help="Longest request line accepted, in bytes (else 414)")
    limit_request_fields: int = _setting(
        100, "--limit-request-fields", section="protocol", reloadable=True,
        type=Int(1, 32768), help="Most header fields accepted in one request (else 431)")
    limit_request_field_size: int = _setting(
        8190, "--limit-request-field_size", "--limit-request-field-size", section="protocol",
        reloadable=True, type=Int(64, unit="bytes"),
        help="Longest header field accepted, in bytes (else 431)")
    limit_request_body: int = _setting(
        1073741824, "--limit-request-body", section="protocol", reloadable=True,
        type=Int(0, unit="bytes"), help=f"Largest request body accepted, in bytes; {_NONE}")
    header_timeout: float = _setting(
        10.0, "--header-timeout", section="protocol", reloadable=True, type=Float(0, True),
        help="Seconds a client has to send a whole request head")
    min_body_rate: int = _setting(
        1024, "--min-body-rate", section="protocol", reloadable=True,
        type=Int(0, unit="bytes/s"),
        help=f"Request bodies arriving slower than this many bytes/s get 408; {_NONE}")
    allow_missing_host: bool = _setting(
        False, "--allow-missing-host", section="protocol", reloadable=True, type=Bool(),
        help="Accept HTTP/1.1 requests without a Host header field (very old clients)")

    # ---- workers ----
    timeout: float = _setting(
        30.0, "-t", "--timeout", section="workers", reloadable=True, type=_SECONDS_GE0,
        help="Seconds of silence after which a worker counts as stuck and is killed; "
             "0 means never")
    graceful_timeout: float = _setting(
        30.0, "--graceful-timeout", section="workers", reloadable=True, type=_SECONDS_GE0,
        help="Seconds workers get to finish their requests on shutdown or restart")
    max_requests: int = _setting(
        0, "--max-requests", section="workers", reloadable=True, type=Int(0),
        help=f"Restart a worker after this many requests; {_NONE}")
    max_requests_jitter: int = _setting(
        0, "--max-requests-jitter", section="workers", reloadable=True, type=Int(0),
        help="Add a random 0..N to --max-requests per worker, so they do not restart together")
    max_rss: int = _setting(
        0, "--max-rss", section="workers", reloadable=True, type=Int(0, unit="MiB"),
        help=f"Restart a worker whose resident memory exceeds this many MiB; {_NONE}")
    max_worker_lifetime: float = _setting(
        0.0, "--max-worker-lifetime", section="workers", reloadable=True, type=_SECONDS_GE0,
        help=f"Restart a worker after it has run this many seconds; {_NONE}")
    max_worker_lifetime_jitter: float = _setting(
        0.0, "--max-worker-lifetime-jitter", section="workers", reloadable=True,
        type=_SECONDS_GE0,
        help="Add a random 0..N seconds to --max-worker-lifetime per worker")

    # ---- logging ----
    access_logfile: str | None = _setting(
        None, "--access-logfile", section="logging", reloadable=True, type=Optional(_PATH),
        example="-", help='File to write the access log to, "-" for stdout; if not set, '
                          "requests are not logged")
    access_log_format: str = _setting(
        "combined", "--access-log-format", section="logging", reloadable=True,
        type=Str('"combined", "json" or a format of %(atom)s fields', "format", "FORMAT",
                 _check_log_format),
        help='Access log line format: "combined", "json", or custom %(atom)s fields such as '
             "%(h)s %(r)s %(s)s")
    error_logfile: str = _setting(
        "-", "--error-logfile", section="logging", reloadable=True, type=_PATH,
        help='File to write the error log to, "-" for stderr')
    log_config: str | None = _setting(
        None, "--log-config", section="logging", reloadable=True, example="etc/logging.toml",
        type=Optional(Str("a .toml or .json file holding a logging dictConfig", "path",
                          "FILE", _check_log_config)),
        help="Logging configuration (a dictConfig, as TOML or JSON) that replaces the "
             "built-in error log setup (--error-logfile and --log-level then do not apply) in "
             "the master and the workers; the access log keeps its own format and file")
    log_level: str = _setting(
        "info", "--log-level", section="logging", reloadable=True,
        type=Choice("debug", "info", "warning", "error", "critical"),
        help="Least severe error log messages written")

    # ---- process ----
    config: str | None = _setting(
        None, "-c", "--config", section="process", reloadable=False,
        type=Optional(Str("a path", "path", "FILE")),
        in_file=False, compare=False, help="TOML file to read settings from")
    daemon: bool = _setting(
        False, "-D", "--daemon", section="process", reloadable=False, type=Bool(),
        help="Detach from the terminal and run in the background")
    pid: str | None = _setting(
        None, "-p", "--pid", section="process", reloadable=False, type=Optional(_PATH),
        example="/run/forkhttpd.pid", help="File to write the master's process id to")
    user: str | None = _setting(
        None, "-u", "--user", section="process", reloadable=False, type=Optional(_NAME),
        example="www-data", help="Switch worker processes to this user (name or uid)")
    group: str | None = _setting(
        None, "-g", "--group", section="process", reloadable=False, type=Optional(_NAME),
        example="www-data", help="Switch worker processes to this group (name or gid)")
    umask: int = _setting(
        0o22, "--umask", section="process", reloadable=False, type=Octal(),
        help="File mode creation mask of the server processes, in octal")
    check_config: bool = _setting(
        False, "--check-config", section="process", reloadable=False, type=Bool(),
        cli_only=True, compare=False,
        help="Load the settings and the application, report any problem, and exit")
    print_config: bool = _setting(
        False, "--print-config", section="process", reloadable=False, type=Bool(),
        cli_only=True, compare=False, help="Print the effective settings as TOML and exit")


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(name=f.name, **f.metadata["setting"]) for f in fields(Settings))
SETTINGS_BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
