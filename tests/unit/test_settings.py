"""forkhttpd.config.settings: the table, loading with precedence, errors, rendering."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forkhttpd.config import settings as settings_module
from forkhttpd.config.settings import (
    NON_SETTING_ENV,
    SECTIONS,
    SETTINGS,
    BindAddress,
    Mount,
    Settings,
    SettingsError,
    build_parser,
    load_settings,
    package_version,
    parse_bind,
    reloadable_changes,
    render_markdown,
    render_toml,
    to_toml,
)

ROOT = Path(__file__).resolve().parents[2]
BY_NAME = {setting.name: setting for setting in SETTINGS}


def load(argv: list[str] | None = None, env: dict[str, str] | None = None,
         toml: str | None = None, tmp_path: Path | None = None) -> Settings:
    """load_settings with an optional config file written from `toml`."""
    argv = list(argv or [])
    if toml is not None:
        assert tmp_path is not None
        path = tmp_path / "forkhttpd.toml"
        path.write_text(toml, encoding="utf-8")
        argv = ["-c", str(path), *argv]
    return load_settings(argv, env or {})


def error_of(argv: list[str] | None = None, env: dict[str, str] | None = None,
             toml: str | None = None, tmp_path: Path | None = None) -> str:
    with pytest.raises(SettingsError) as caught:
        load(argv, env, toml, tmp_path)
    return str(caught.value)


# ---- the table -----------------------------------------------------------------------------

def test_every_field_has_one_setting_in_order() -> None:
    assert [f.name for f in dataclasses.fields(Settings)] == [s.name for s in SETTINGS]


def test_table_rows_are_well_formed() -> None:
    flags: list[str] = []
    for setting in SETTINGS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", setting.name)
        assert setting.section in SECTIONS
        assert setting.help and "\n" not in setting.help and not setting.help.endswith(".")
        assert setting.flag.startswith("--")
        assert setting.env == (None if setting.cli_only
                               else "FORKHTTPD_" + setting.name.upper())
        flags += setting.flags
    assert len(flags) == len(set(flags))


def test_defaults_are_valid_values_of_their_own_type() -> None:
    for setting in SETTINGS:
        if setting.default is not None:
            literal = setting.type.toml(setting.default)
            value = tomllib.loads(f"x = {literal}")["x"]
            assert setting.type.from_toml(value) == setting.default, setting.name


def test_documented_defaults() -> None:
    s = Settings()
    assert s.app is None and s.bind == (BindAddress("tcp", "127.0.0.1", 8000),)
    assert (s.workers, s.backlog, s.interface, s.static, s.cgi_dir) == (1, 2048, "auto", (), ())
    assert (s.keep_alive, s.max_keepalive_requests, s.limit_request_line) == (5, 1000, 8190)
    assert (s.limit_request_fields, s.limit_request_field_size) == (100, 8190)
    assert (s.limit_request_body, s.header_timeout, s.min_body_rate) == (1 << 30, 10, 1024)
    assert (s.timeout, s.graceful_timeout, s.max_requests, s.max_rss) == (30, 30, 0, 0)
    assert (s.access_logfile, s.access_log_format, s.error_logfile) == (None, "combined", "-")
    assert (s.log_level, s.umask, s.daemon, s.cgi_timeout) == ("info", 0o22, False, 30)
    assert not BY_NAME["bind"].reloadable and BY_NAME["workers"].reloadable


def test_settings_is_frozen_and_hashable() -> None:
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.workers = 2  # type: ignore[misc]
    assert hash(s) == hash(Settings())



# ---- precedence ----------------------------------------------------------------------------

def test_defaults_when_nothing_is_given() -> None:
    assert load() == Settings()


def test_file_overrides_defaults(tmp_path: Path) -> None:
    assert load(toml="workers = 3\n", tmp_path=tmp_path).workers == 3


def test_env_overrides_file(tmp_path: Path) -> None:
    s = load(env={"FORKHTTPD_WORKERS": "4"}, toml="workers = 3\n", tmp_path=tmp_path)
    assert s.workers == 4


def test_cli_overrides_env_and_file(tmp_path: Path) -> None:
    s = load(["-w", "5"], env={"FORKHTTPD_WORKERS": "4"}, toml="workers = 3\n",
             tmp_path=tmp_path)
    assert s.workers == 5


def test_layers_merge_per_setting(tmp_path: Path) -> None:
    s = load(["--keep-alive", "2"], env={"FORKHTTPD_BACKLOG": "10"},
             toml="workers = 3\nbacklog = 5\n", tmp_path=tmp_path)
    assert (s.workers, s.backlog, s.keep_alive) == (3, 10, 2.0)


def test_config_from_env_variable(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text("workers = 7\n", encoding="utf-8")
    s = load_settings([], {"FORKHTTPD_CONFIG": str(path)})
    assert (s.workers, s.config) == (7, str(path))


def test_config_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.toml").write_text("workers = 7\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_settings(["-c", "a.toml"], {}).config == str(tmp_path / "a.toml")


def test_config_flag_beats_config_variable(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("workers = 7\n", encoding="utf-8")
    (tmp_path / "b.toml").write_text("workers = 8\n", encoding="utf-8")
    s = load_settings(["--config", str(tmp_path / "b.toml")],
                      {"FORKHTTPD_CONFIG": str(tmp_path / "a.toml")})
    assert s.workers == 8
    assert load_settings(["-c", ""], {"FORKHTTPD_CONFIG": str(tmp_path / "a.toml")}) == Settings()


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORKHTTPD_WORKERS", "6")
    assert load_settings([]).workers == 6


def test_keys_inside_section_tables(tmp_path: Path) -> None:
    s = load(toml='[server]\nworkers = 2\n[protocol]\nkeep_alive = 1\n[workers]\ntimeout = 9\n',
             tmp_path=tmp_path)
    assert (s.workers, s.keep_alive, s.timeout) == (2, 1.0, 9.0)


def test_key_in_the_wrong_section(tmp_path: Path) -> None:
    message = error_of(toml="[server]\nkeep_alive = 1\n", tmp_path=tmp_path)
    assert "server.keep_alive: belongs in [protocol], not [server]" in message


def test_key_set_twice(tmp_path: Path) -> None:
    message = error_of(toml="workers = 1\n[server]\nworkers = 2\n", tmp_path=tmp_path)
    assert "server.workers: set twice" in message


# ---- unknown names -------------------------------------------------------------------------

def test_unknown_toml_key(tmp_path: Path) -> None:
    message = error_of(toml="worker = 2\n", tmp_path=tmp_path)
    assert message == f"{tmp_path / 'forkhttpd.toml'}: worker: unknown setting " \
                      "(did you mean workers?)"


def test_unknown_toml_key_spelled_like_a_flag(tmp_path: Path) -> None:
    message = error_of(toml="keep-alive = 2\n", tmp_path=tmp_path)
    assert "keep-alive: unknown setting (did you mean keep_alive?)" in message


def test_unknown_toml_section(tmp_path: Path) -> None:
    assert "nonsense: unknown setting" in error_of(toml="[nonsense]\nx = 1\n", tmp_path=tmp_path)


def test_config_and_cli_only_keys_are_not_allowed_in_a_file(tmp_path: Path) -> None:
    assert "config: cannot be set in a config file" in error_of(
        toml='config = "x.toml"\n', tmp_path=tmp_path)
    assert "print_config: --print-config can only be given on the command line" in error_of(
        toml="print_config = true\n", tmp_path=tmp_path)


def test_unknown_env_variable() -> None:
    assert error_of(env={"FORKHTTPD_WORKER": "2"}) == \
        "FORKHTTPD_WORKER: unknown setting variable (did you mean FORKHTTPD_WORKERS?)"


def test_cli_only_env_variable() -> None:
    assert error_of(env={"FORKHTTPD_CHECK_CONFIG": "1"}) == \
        "FORKHTTPD_CHECK_CONFIG: --check-config can only be given on the command line"


def test_other_variables_are_ignored() -> None:
    env = {name: "3" for name in NON_SETTING_ENV} | {"PATH": "/bin", "FORKHTTPDX": "1"}
    assert load(env=env) == Settings()


def test_unknown_flag_suggests_the_right_one() -> None:
    message = error_of(["--worker", "2"])
    assert "unrecognized arguments: --worker 2" in message
    assert "did you mean --workers?" in message


def test_abbreviated_flags_are_not_accepted() -> None:
    assert "unrecognized arguments" in error_of(["--work", "2"])


def test_missing_flag_argument() -> None:
    assert "--workers: expected one argument" in error_of(["--workers"])


# ---- config file problems ------------------------------------------------------------------

def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert error_of(["-c", str(path)]) == f"config file {path}: no such file"


def test_invalid_toml(tmp_path: Path) -> None:
    message = error_of(toml="workers = = 2\n", tmp_path=tmp_path)
    assert message.startswith(f"config file {tmp_path / 'forkhttpd.toml'}: invalid TOML:")


def test_unreadable_config(tmp_path: Path) -> None:
    message = error_of(["-c", str(tmp_path)])
    assert message.startswith(f"config file {tmp_path}: cannot read it:")


def test_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'user = "j\xe9r\xf4me"\n')
    assert error_of(["-c", str(path)]) == f"config file {path}: not UTF-8 text"


# ---- value errors: each names the flag / variable / key and the expected form ---------------

@pytest.mark.parametrize(("argv", "message"), [
    (["--workers", "0"], "--workers: expected an integer >= 1, got '0'"),
    (["-w", "two"], "--workers: expected an integer >= 1, got 'two'"),
    (["--workers", "1.5"], "--workers: expected an integer >= 1, got '1.5'"),
    (["--backlog", "65536"], "--backlog: expected an integer from 1 to 65535, got '65536'"),
    (["--defer-accept", "-1"],
     "--defer-accept: expected an integer from 0 to 3600, got '-1'"),
    (["--limit-request-line", "63"],
     "--limit-request-line: expected an integer >= 64, got '63'"),
    (["--limit-request-fields", "32769"],
     "--limit-request-fields: expected an integer from 1 to 32768, got '32769'"),
    (["--keep-alive", "-1"], "--keep-alive: expected a number >= 0, got '-1'"),
    (["--timeout", "soon"], "--timeout: expected a number >= 0, got 'soon'"),
    (["--timeout", "inf"], "--timeout: expected a number >= 0, got 'inf'"),
    (["--graceful-timeout", "nan"], "--graceful-timeout: expected a number >= 0, got 'nan'"),
    (["--header-timeout", "0"], "--header-timeout: expected a number > 0, got '0'"),
    (["--cgi-timeout", "0"], "--cgi-timeout: expected a number > 0, got '0'"),
    (["--interface", "asgi"],
     "--interface: expected one of native, wsgi, handler-class, auto, got 'asgi'"),
    (["--log-level", "loud"],
     "--log-level: expected one of debug, info, warning, error, critical, got 'loud'"),
    (["--umask", "9"],
     "--umask: expected an octal number from 0 to 0o777, such as \"022\" or 0o022, got '9'"),
    (["--umask", "01000"], "--umask: expected an octal number"),
    (["--app", "app.py"], "--app: expected MODULE, MODULE:ATTR or MODULE:FACTORY(), got "
                          "'app.py' (a module name, not a file name: web, not web.py)"),
    (["--app", "mod:make(1)"], "--app: expected MODULE, MODULE:ATTR or MODULE:FACTORY(), got"),
    (["--app", "mod:"], "--app: expected MODULE, MODULE:ATTR or MODULE:FACTORY(), got 'mod:'"),
    (["--health-path", "healthz"],
     "--health-path: expected a URL path starting with \"/\", got 'healthz'"),
    (["--static", "static"],
     "--static: expected URL_PREFIX=DIR with a prefix starting with \"/\", got 'static'"),
    (["--static", "/s=./s", "--static", "s=./s"],
     "--static: expected URL_PREFIX=DIR with a prefix starting with \"/\", got 's=./s'"),
    (["--cgi-dir", "/cgi="], "--cgi-dir: expected URL_PREFIX=DIR"),
    (["--bind", "abc"],
     "--bind: expected HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N, got 'abc'"),
    (["--status-bind", "unix:/tmp/s"],
     "--status-bind: expected HOST:PORT or [IPV6]:PORT, got 'unix:/tmp/s' "
     "(only a TCP address is possible here)"),
    (["--access-log-format", "%(h)s %"],
     "--access-log-format: expected \"combined\", \"json\" or a format of %(atom)s fields, "
     "got '%(h)s %'"),
    (["--access-log-format", "%s"], "--access-log-format: expected"),
    (["--error-logfile", ""], "--error-logfile: expected a path, got ''"),
])
def test_cli_value_errors(argv: list[str], message: str) -> None:
    assert error_of(argv).startswith(message)


@pytest.mark.parametrize(("env", "message"), [
    ({"FORKHTTPD_WORKERS": "0"}, "FORKHTTPD_WORKERS: expected an integer >= 1, got '0'"),
    ({"FORKHTTPD_DAEMON": "maybe"},
     "FORKHTTPD_DAEMON: expected one of 1, 0, true, false, yes, no, on, off, got 'maybe'"),
    ({"FORKHTTPD_BIND": "127.0.0.1:80,nonsense"},
     "FORKHTTPD_BIND: expected HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N, got 'nonsense'"),
    ({"FORKHTTPD_KEEP_ALIVE": "x"}, "FORKHTTPD_KEEP_ALIVE: expected a number >= 0, got 'x'"),
])
def test_env_value_errors(env: dict[str, str], message: str) -> None:
    assert error_of(env=env) == message


@pytest.mark.parametrize(("toml", "message"), [
    ('workers = "4"', "workers: expected an integer >= 1, got '4'"),
    ("workers = 4.0", "workers: expected an integer >= 1, got 4.0"),
    ("workers = true", "workers: expected an integer >= 1, got true"),
    ("workers = 0", "workers: expected an integer >= 1, got 0"),
    ('daemon = "yes"', "daemon: expected one of 1, 0, true, false, yes, no, on, off, got 'yes' "
                       "(TOML booleans are written true or false, without quotes)"),
    ("keep_alive = true", "keep_alive: expected a number >= 0, got true"),
    ('bind = "0.0.0.0:80"', "bind: expected HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N, got "
                            "'0.0.0.0:80' (a TOML array of strings is needed here"),
    ('bind = ["0.0.0.0:80", 80]',
     "bind: expected HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N, got 80"),
    ("umask = 1024", "umask: expected an octal number"),
    ("app = 3", "app: expected MODULE, MODULE:ATTR or MODULE:FACTORY(), got 3"),
])
def test_toml_value_errors(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "forkhttpd.toml"
    assert error_of(toml=toml + "\n", tmp_path=tmp_path).startswith(f"{path}: {message}")


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load(["--backlog", "0"], {"FORKHTTPD_TIMEOUT": "x"}, "workers = 0\nbogus = 1\n",
             tmp_path)
    assert len(caught.value.errors) == 4
    assert str(caught.value).count("\n") == 3


def test_bad_lower_layer_value_is_an_error_even_if_overridden() -> None:
    assert "FORKHTTPD_WORKERS" in error_of(["-w", "2"], {"FORKHTTPD_WORKERS": "zero"})


# ---- values that parse ---------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("022", 0o22), ("0o22", 0o22), ("0O077", 0o77), ("0", 0), ("777", 0o777),
])
def test_umask_text_forms(text: str, value: int) -> None:
    assert load(["--umask", text]).umask == value
    assert load(env={"FORKHTTPD_UMASK": text}).umask == value


def test_umask_toml_forms(tmp_path: Path) -> None:
    assert load(toml="umask = 0o027\n", tmp_path=tmp_path).umask == 0o27
    assert load(toml='umask = "027"\n', tmp_path=tmp_path).umask == 0o27


@pytest.mark.parametrize("app", ["web:app", "my_pkg.sub.web:application", "web:create_app()",
                                 "web:App.handler", " web:app "])
def test_app_forms(app: str) -> None:
    assert load(["--app", app]).app == app.strip()


def test_choices_are_case_insensitive() -> None:
    s = load(["--log-level", "WARNING", "--interface", "WSGI", "--app", "a:b"])
    assert (s.log_level, s.interface) == ("warning", "wsgi")


def test_floats_accept_integers(tmp_path: Path) -> None:
    s = load(toml="keep_alive = 2\ntimeout = 0.5\n", tmp_path=tmp_path)
    assert (s.keep_alive, s.timeout) == (2.0, 0.5)
    assert isinstance(s.keep_alive, float)


def test_empty_value_means_not_set(tmp_path: Path) -> None:
    assert load(["--app", "a:b", "--app="]).app is None
    assert load(["--app="], {"FORKHTTPD_APP": "a:b"}).app is None
    assert load(env={"FORKHTTPD_PID": ""}).pid is None
    assert load(toml='access_logfile = ""\n', tmp_path=tmp_path).access_logfile is None


def test_custom_access_log_format() -> None:
    fmt = '%(h)s "%(r)s" %(s)s %(b)s 100%% %(D)d'
    assert load(["--access-log-format", fmt]).access_log_format == fmt


# ---- bind addresses ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "address"), [
    ("127.0.0.1:8000", BindAddress("tcp", host="127.0.0.1", port=8000)),
    ("0.0.0.0:80", BindAddress("tcp", host="0.0.0.0", port=80)),
    ("localhost:8080", BindAddress("tcp", host="localhost", port=8080)),
    (":8000", BindAddress("tcp", host="", port=8000)),
    ("[::1]:0", BindAddress("tcp", host="::1", port=0)),
    ("[::]:65535", BindAddress("tcp", host="::", port=65535)),
    ("[fe80::1%eth0]:80", BindAddress("tcp", host="fe80::1%eth0", port=80)),
    ("unix:/run/forkhttpd.sock", BindAddress("unix", path="/run/forkhttpd.sock")),
    ("unix:relative.sock", BindAddress("unix", path="relative.sock")),
    ("fd://3", BindAddress("fd", fd=3)),
    ("fd://0", BindAddress("fd", fd=0)),
])
def test_bind_forms(text: str, address: BindAddress) -> None:
    assert parse_bind(text) == address
    assert str(address) == text
    assert parse_bind(str(address)) == address


@pytest.mark.parametrize(("text", "reason"), [
    ("abc", ""),
    ("8000", ""),
    ("127.0.0.1", ""),
    ("127.0.0.1:", "the port must be a number from 0 to 65535"),
    ("127.0.0.1:65536", "the port must be a number from 0 to 65535"),
    ("127.0.0.1:-1", "the port must be a number from 0 to 65535"),
    ("127.0.0.1:80a", "the port must be a number from 0 to 65535"),
    ("127.0.0.1: 80", "the port must be a number from 0 to 65535"),
    ("::1:8000", "IPv6 addresses need brackets, as in [::1]:8000"),
    ("[::g]:80", "'::g' is not an IPv6 address"),
    ("[127.0.0.1]:80", "'127.0.0.1' is not an IPv6 address"),
    ("300.1.1.1:80", "'300.1.1.1' is not an IPv4 address"),
    ("bad_host:80", "'bad_host' is not a host name or IPv4 address"),
    ("unix:", "a Unix socket needs a path"),
    ("unix:/" + "x" * 200, "Unix socket paths are limited to 107 bytes"),
    ("fd://", "the fd must be a number >= 0"),
    ("fd://-1", "the fd must be a number >= 0"),
    ("fd://three", "the fd must be a number >= 0"),
])
def test_bad_bind_forms(text: str, reason: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_bind(text)
    expected = f"--bind: expected HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N, got {text!r}"
    assert str(caught.value) == expected + (f" ({reason})" if reason else "")


def test_parse_bind_names_the_given_flag() -> None:
    with pytest.raises(SettingsError, match="^--status-bind: expected"):
        parse_bind("x", flag="--status-bind")


@given(st.ip_addresses(), st.integers(0, 65535))
def test_tcp_bind_round_trips(ip: object, port: int) -> None:
    address = BindAddress("tcp", host=str(ip), port=port)
    assert parse_bind(str(address)) == address


def test_status_bind(tmp_path: Path) -> None:
    assert load(["--status-bind", "[::1]:9000"]).status_bind == BindAddress("tcp", "::1", 9000)
    assert load(toml='status_bind = "127.0.0.1:9"\n', tmp_path=tmp_path).status_bind == \
        BindAddress("tcp", "127.0.0.1", 9)


# ---- booleans ------------------------------------------------------------------------------

def test_boolean_flags_on_the_command_line() -> None:
    assert load(["--reuse-port"]).reuse_port is True
    assert load(["--reuse-port", "--no-reuse-port"]).reuse_port is False
    assert load(["-D"]).daemon is True
    assert load(["--no-daemon"], {"FORKHTTPD_DAEMON": "1"}).daemon is False
    assert load(["--check-config", "--print-config"]).check_config is True


@pytest.mark.parametrize(("word", "value"), [
    ("1", True), ("true", True), ("yes", True), ("on", True), ("TRUE", True), ("On", True),
    ("0", False), ("false", False), ("no", False), ("off", False), ("No", False),
])
def test_boolean_environment_words(word: str, value: bool) -> None:
    assert load(env={"FORKHTTPD_LIST_DIRECTORIES": word}).list_directories is value


def test_boolean_toml(tmp_path: Path) -> None:
    s = load(toml="show_hidden = true\nfollow_symlinks = false\n", tmp_path=tmp_path)
    assert (s.show_hidden, s.follow_symlinks) == (True, False)
    s = load(["--no-show-hidden"], {"FORKHTTPD_FOLLOW_SYMLINKS": "yes"},
             "show_hidden = true\n", tmp_path)
    assert (s.show_hidden, s.follow_symlinks) == (False, True)


def test_cli_only_booleans_have_no_negative_form() -> None:
    assert "unrecognized arguments" in error_of(["--no-print-config"])


# ---- lists ---------------------------------------------------------------------------------

def test_repeated_flag_builds_a_list() -> None:
    s = load(["-b", "127.0.0.1:1", "--bind", "unix:/tmp/a.sock", "-b", "fd://3"])
    assert [str(a) for a in s.bind] == ["127.0.0.1:1", "unix:/tmp/a.sock", "fd://3"]


def test_cli_list_replaces_file_and_env_lists(tmp_path: Path) -> None:
    toml = 'bind = ["0.0.0.0:1", "0.0.0.0:2"]\nstatic = ["/a=./a"]\n'
    s = load(["-b", "0.0.0.0:3", "--static", "/b=./b"], toml=toml, tmp_path=tmp_path)
    assert [str(a) for a in s.bind] == ["0.0.0.0:3"]
    assert s.static == (Mount("/b", "./b"),)
    s = load(["-b", "0.0.0.0:3"], {"FORKHTTPD_BIND": "0.0.0.0:4,0.0.0.0:5"})
    assert [str(a) for a in s.bind] == ["0.0.0.0:3"]


def test_env_lists_are_comma_separated() -> None:
    s = load(env={"FORKHTTPD_BIND": "127.0.0.1:1, [::1]:2 ,unix:/tmp/x",
                  "FORKHTTPD_STATIC": "/s=./static,/m=/srv/media"})
    assert [str(a) for a in s.bind] == ["127.0.0.1:1", "[::1]:2", "unix:/tmp/x"]
    assert s.static == (Mount("/s", "./static"), Mount("/m", "/srv/media"))
    assert s.static[0].url_prefix == "/s" and s.static[1].directory == "/srv/media"


def test_toml_lists(tmp_path: Path) -> None:
    s = load(toml='cgi_dir = ["/cgi-bin=./cgi", "/x=./y=z"]\nbind = []\nstatic = []\n'
                  '[server]\n', tmp_path=tmp_path, argv=["-b", ":80"])
    assert s.cgi_dir == (Mount("/cgi-bin", "./cgi"), Mount("/x", "./y=z"))
    assert s.static == ()


def test_empty_bind_list_is_an_error(tmp_path: Path) -> None:
    assert error_of(env={"FORKHTTPD_BIND": ""}) == "--bind: at least one address is needed"
    assert error_of(toml="bind = []\n", tmp_path=tmp_path) == \
        "--bind: at least one address is needed"


# ---- gunicorn's spelling -------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--limit-request-field_size", "--limit-request-field-size"])
def test_limit_request_field_size_spellings(flag: str) -> None:
    assert load([flag, "100"]).limit_request_field_size == 100
    assert error_of([flag, "10"]) == \
        "--limit-request-field_size: expected an integer >= 64, got '10'"


# ---- cross-checks --------------------------------------------------------------------------

def test_jitter_without_max_requests_is_ignored() -> None:
    assert load(["--max-requests-jitter", "50"]).max_requests_jitter == 50


def test_jitter_larger_than_max_requests() -> None:
    assert error_of(["--max-requests", "10", "--max-requests-jitter", "11"]) == \
        "--max-requests-jitter (11) must not exceed --max-requests (10)"
    assert load(["--max-requests", "10", "--max-requests-jitter", "10"]).max_requests == 10


def test_lifetime_jitter_larger_than_lifetime() -> None:
    assert load(["--max-worker-lifetime-jitter", "5"]).max_worker_lifetime_jitter == 5
    assert error_of(["--max-worker-lifetime", "60", "--max-worker-lifetime-jitter", "61"]) == \
        "--max-worker-lifetime-jitter (61) must not exceed --max-worker-lifetime (60)"


def test_explicit_interface_needs_an_app() -> None:
    assert error_of(["--interface", "wsgi"]) == "--interface wsgi needs --app or --routes"
    assert load(["--interface", "wsgi", "--app", "a:b"]).interface == "wsgi"
    assert load(["--interface", "native", "--routes", "r"]).interface == "native"


def test_duplicate_bind() -> None:
    assert error_of(["-b", "[::1]:80", "-b", "[::1]:80"]) == "--bind: [::1]:80 is given twice"


def test_status_bind_clashing_with_bind() -> None:
    assert error_of(["--status-bind", "127.0.0.1:8000"]) == \
        "--status-bind: 127.0.0.1:8000 is also a --bind address"


def test_proxy_and_tls_combinations() -> None:
    assert error_of(["--keyfile", "k.pem"]) == "--keyfile: needs --certfile"
    assert error_of(["--cert-reqs", "optional"]) == "--cert-reqs: needs --certfile"
    assert error_of(["--certfile", "c.pem", "--cert-reqs", "required"]) == (
        "--cert-reqs required: client certificates are checked against --ca-certs, which "
        "is not set")
    assert error_of(["--proxy-protocol", "--forwarded-allow-ips", ""]) == (
        "--proxy-protocol: needs the proxies' addresses in --forwarded-allow-ips, which is "
        "empty")


def test_forwarded_allow_ips_forms() -> None:
    assert load([]).forwarded_allow_ips == ("127.0.0.1", "::1")
    assert load(["--forwarded-allow-ips", " 10.0.0.1/8 ,::1, *,unix"]).forwarded_allow_ips \
        == ("10.0.0.0/8", "::1", "*", "unix")
    assert load(["--forwarded-allow-ips", ""]).forwarded_allow_ips == ()
    assert error_of(["--forwarded-allow-ips", "10.0.0.0/8,proxy"]) == (
        '--forwarded-allow-ips: expected a comma list of IP addresses and networks (CIDR), '
        '"*" or "unix", got \'10.0.0.0/8,proxy\' (\'proxy\' is not an IP address or network)')


def test_root_path_forms() -> None:
    assert load(["--root-path", "/app"]).root_path == "/app"
    assert not load(["--root-path", "/"]).root_path
    assert error_of(["--root-path", "app"]).startswith("--root-path: expected a URL path")


def test_url_prefix_used_twice() -> None:
    assert error_of(["--static", "/a=x", "--static", "/a=y"]) == \
        "--static: URL prefix /a is already used by --static"
    assert error_of(["--static", "/a=x", "--cgi-dir", "/a=y"]) == \
        "--cgi-dir: URL prefix /a is already used by --static"


def test_check_config_with_print_config_is_allowed() -> None:
    s = load(["--check-config", "--print-config"])
    assert s.check_config and s.print_config


# ---- to_toml round trip --------------------------------------------------------------------

def _everything_changed() -> Settings:
    return Settings(
        app="pkg.web:make_app()", bind=(BindAddress("tcp", "::1", 0), BindAddress("fd", fd=3),
                                        BindAddress("unix", path='/tmp/we"ird\\ \x7f.sock')),
        workers=4, backlog=10, chdir="/srv/é", reuse_port=True, defer_accept=0,
        health_path="/up",
        status_bind=BindAddress("tcp", "0.0.0.0", 9000),
        forwarded_allow_ips=("10.0.0.0/8", "*", "unix"), proxy_protocol=True, root_path="/a",
        certfile="c.pem", keyfile="k.pem", ca_certs="ca.pem", cert_reqs="required",
        ssl_ciphers="ECDHE+AESGCM", interface="wsgi",
        static=(Mount("/s", "./static"),), routes="routes", cgi_dir=(Mount("/c", "cgi"),),
        list_directories=True, show_hidden=True, serve_hidden=True, follow_symlinks=True,
        cgi_timeout=1.5,
        keep_alive=0.0, max_keepalive_requests=0, limit_request_line=64,
        limit_request_fields=1, limit_request_field_size=65, limit_request_body=0,
        header_timeout=0.25, min_body_rate=0, allow_missing_host=True, timeout=1e-3,
        graceful_timeout=1e9, max_requests=5, max_requests_jitter=5, max_rss=100,
        max_worker_lifetime=3600.0, max_worker_lifetime_jitter=60.0,
        access_logfile="-", access_log_format='%(h)s "%(r)s"\t%(s)s', error_logfile="err.log",
        log_level="debug", daemon=True, pid="x.pid", user="1000", group="nogroup",
        umask=0o777, hooks="deploy.hooks", reload=True, reload_extra_file=("/srv/a.toml",),
        log_config=str(ROOT / "etc" / "logging.toml"))


def test_every_setting_is_changed_by_the_round_trip_fixture() -> None:
    changed = _everything_changed()
    compared = {f.name for f in dataclasses.fields(Settings) if f.compare}
    assert all(getattr(changed, name) != getattr(Settings(), name) for name in compared)


@pytest.mark.parametrize("settings", [Settings(), _everything_changed()],
                         ids=["defaults", "everything-changed"])
def test_to_toml_round_trips(tmp_path: Path, settings: Settings) -> None:
    text = to_toml(settings)
    tomllib.loads(text)
    path = tmp_path / "printed.toml"
    path.write_text(text, encoding="utf-8")
    loaded = load_settings(["-c", str(path)], {})
    assert loaded == settings
    assert loaded.config == str(path)


def test_to_toml_leaves_out_how_settings_were_loaded() -> None:
    text = to_toml(Settings(config="/etc/f.toml", check_config=True, print_config=True))
    assert "config" not in tomllib.loads(text)["process"]
    assert "print_config" not in text and "check_config" not in text


def test_config_and_actions_are_not_compared() -> None:
    assert Settings(config="a.toml", print_config=True) == Settings()


# ---- reloadable_changes --------------------------------------------------------------------

def test_reloadable_changes() -> None:
    old = Settings()
    new = dataclasses.replace(old, workers=3, log_level="debug", backlog=1, user="nobody",
                              config="x.toml")
    assert reloadable_changes(old, new) == (["workers", "log_level"], ["backlog", "user"])
    assert reloadable_changes(old, old) == ([], [])


def test_reloadable_changes_sees_list_changes() -> None:
    old = Settings()
    new = dataclasses.replace(old, bind=(BindAddress("tcp", "", 80),),
                              static=(Mount("/s", "s"),))
    assert reloadable_changes(old, new) == (["static"], ["bind"])


# ---- generated files and the parser --------------------------------------------------------

def test_sample_config_is_not_stale() -> None:
    assert (ROOT / "etc/forkhttpd.toml").read_text(encoding="utf-8") == render_toml(), \
        "run: python -m forkhttpd.config.settings --write"


def test_settings_doc_is_not_stale() -> None:
    assert (ROOT / "docs/settings.md").read_text(encoding="utf-8") == render_markdown(), \
        "run: python -m forkhttpd.config.settings --write"


def test_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert settings_module.main(["--check"]) == 0
    assert settings_module.main(["--check", "--root", str(tmp_path)]) == 1
    assert "stale: etc/forkhttpd.toml, docs/settings.md" in capsys.readouterr().err
    assert settings_module.main(["--write", "--root", str(tmp_path)]) == 0
    assert settings_module.main(["--check", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "docs/settings.md").read_text(encoding="utf-8") == render_markdown()


def test_sample_config_loads_as_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "sample.toml"
    path.write_text(render_toml(), encoding="utf-8")
    assert load_settings(["-c", str(path)], {}) == Settings()


def test_sample_config_uncommented_is_valid(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # where the example --log-config file, etc/logging.toml, is
    lines = [re.sub(r"^# ([a-z_]+ = )", r"\1", line) for line in render_toml().splitlines()]
    text = "\n".join(lines)
    keys = {key for table in tomllib.loads(text).values() for key in table}
    assert keys == {setting.name for setting in SETTINGS if setting.in_file}
    path = tmp_path / "all.toml"
    path.write_text(text, encoding="utf-8")
    load_settings(["-c", str(path)], {})


def test_markdown_lists_every_setting() -> None:
    text = render_markdown()
    for section in SECTIONS:
        assert f"\n## {section}\n" in text
    for setting in SETTINGS:
        assert all(f"`{flag}`" in text for flag in setting.flags)
        assert setting.env is None or f"`{setting.env}`" in text
    assert "`--no-daemon`" in text


def test_help_lists_every_flag_by_section() -> None:
    parser = build_parser()
    assert parser.prog == "forkhttpd"
    text = parser.format_help()
    positions = [text.index(f"\n{section} settings:\n") for section in SECTIONS]
    assert positions == sorted(positions)
    for setting in SETTINGS:
        for flag in setting.flags:
            assert flag in text
    assert "--no-reuse-port" in text and "%(h)s" in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        load_settings(["--version"], {})
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"forkhttpd {package_version()}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", package_version())
