"""The shipped systemd units pass `systemd-analyze verify` with nothing on stderr, say what
the operations contract needs, and the shipped nginx config passes `nginx -t`."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from forkhttpd.config.settings import Settings

from .harness import REPO

UNITS = REPO / "systemd"
SYSTEMD_APT = "apt-get install -y systemd"


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, f"systemd-analyze is missing: {SYSTEMD_APT} (CI: add it to .ci/run)"
    return found


def _fake_root(tmp: Path) -> Path:
    """A root for `verify --root`: the host's own units (for the targets ours name), stub
    executables for the commands ours run, and our units in /etc/systemd/system."""
    root = tmp / "root"
    for system_dir in ("/usr/lib/systemd/system", "/lib/systemd/system"):
        if os.path.isdir(system_dir):
            shutil.copytree(system_dir, root / "usr/lib/systemd/system", symlinks=True,
                            dirs_exist_ok=True)
            break
    for stub in ("usr/local/bin/forkhttpd", "bin/kill"):
        path = root / stub
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    target = root / "etc/systemd/system"
    target.mkdir(parents=True)
    for unit in ("forkhttpd.service", "forkhttpd.socket", "forkhttpd@.service",
                 "forkhttpd@.socket"):
        shutil.copy(UNITS / unit, target / unit)
    # Instances of the templates, as `systemctl enable forkhttpd@blue` would make.
    (target / "forkhttpd@blue.service").symlink_to("forkhttpd@.service")
    (target / "forkhttpd@blue.socket").symlink_to("forkhttpd@.socket")
    return root


@pytest.mark.parametrize("unit", ["forkhttpd.service", "forkhttpd.socket",
                                  "forkhttpd@blue.service", "forkhttpd@blue.socket"])
def test_units_verify_clean(tmp_path: Path, unit: str) -> None:
    analyze = _analyze()
    root = _fake_root(tmp_path)
    result = subprocess.run([analyze, "verify", "--man=no", f"--root={root}", unit],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    # The check above is only worth something if a wrong key shows on stderr.
    analyze = _analyze()
    root = _fake_root(tmp_path)
    unit = root / "etc/systemd/system/forkhttpd.service"
    unit.write_text(unit.read_text().replace("KillMode=mixed", "KilMode=mixed"))
    result = subprocess.run([analyze, "verify", "--man=no", f"--root={root}",
                             "forkhttpd.service"], capture_output=True, text=True, timeout=60)
    assert "KilMode" in result.stderr


def _section(name: str, section: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser[section]


def _service(name: str) -> configparser.SectionProxy:
    return _section(name, "Service")


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", text)
    assert match, text
    return float(match[1]) * (60 if match[2] == "min" else 1)


@pytest.mark.parametrize("name", ["forkhttpd.service", "forkhttpd@.service"])
def test_service_contract(name: str) -> None:
    service = _service(name)
    assert service["Type"] == "notify"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillMode"] == "mixed"
    assert _seconds(service["TimeoutStopSec"]) > Settings().graceful_timeout
    assert service["User"] == "forkhttpd" and service["Group"] == "forkhttpd"
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("PrivateTmp", "yes"), ("ProtectHome", "yes")):
        assert service[key] == value, key
    config = "/etc/forkhttpd/%i.toml" if "@" in name else "/etc/forkhttpd/forkhttpd.toml"
    assert service["ExecStart"].endswith(f"--config {config}")
    assert "--daemon" not in service["ExecStart"]  # refused under NOTIFY_SOCKET anyway
    # The configuration is checked (paths as this user, the app's import) before the start.
    assert service["ExecStartPre"] == f"/usr/local/bin/forkhttpd --check-config --config {config}"
    # A pid file in RuntimeDirectory, for `forkhttpd status|reload|reopen` and logrotate.
    runtime = service["RuntimeDirectory"]
    assert service["Environment"] == f"FORKHTTPD_PID=/run/{runtime}/forkhttpd.pid"
    assert service["RestartPreventExitStatus"] == "2"  # a settings error does not heal
    unit = _section(name, "Unit")
    assert unit["After"] == unit["Wants"] == "network-online.target"


def test_units_named_in_comments_ship() -> None:
    for path in UNITS.iterdir():
        for named in re.findall(r"forkhttpd@?\.(?:service|socket|sysusers)", path.read_text()):
            assert (UNITS / named).exists(), f"{path.name} names {named}, which does not ship"


def test_logrotate_config_matches_the_unit() -> None:
    text = (REPO / "etc" / "logrotate.d" / "forkhttpd").read_text()
    service = _service("forkhttpd.service")
    pid = service["Environment"].split("=", 1)[1]
    assert f"forkhttpd reopen --pid {pid}" in text
    assert f"/var/log/{service['LogsDirectory']}/*.log" in text


def test_template_socket_unit() -> None:
    socket = _section("forkhttpd@.socket", "Socket")
    assert socket["ListenStream"] == "/run/forkhttpd-%i.sock" and socket["Accept"] == "no"


def test_socket_unit() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / "forkhttpd.socket")
    assert parser["Socket"]["ListenStream"] == "127.0.0.1:8000"
    assert parser["Socket"]["Accept"] == "no"


def test_shipped_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(nginx), "nginx is missing: apt-get install -y nginx-light"
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
                    "events {}\nhttp {\n"
                    f"  include {REPO}/etc/nginx/forkhttpd.conf;\n}}\n")
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(main)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
