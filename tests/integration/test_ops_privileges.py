"""--user/--group (as root: the master keeps root, zygotes and workers drop before the app is
imported), --umask and --chdir, on the real forkhttpd."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import APPS, StartServer, cmdline, run_forkhttpd, wait_until

APP = '''
import os

IMPORTED_AS = (os.getuid(), os.geteuid(), os.getgid())


def handler(request, response):
    return {"imported_as": IMPORTED_AS, "pid": os.getpid(),
            "now": (os.getuid(), os.geteuid(), os.getgid(), os.getgroups())}
'''

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def _ids(pid: int) -> dict[str, list[int]]:
    found = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                found[key] = [int(x) for x in value.split()]
    return found


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the unprivileged user can read (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="forkhttpd-ops-", dir="/tmp"))
    path.chmod(0o755)
    (path / "whoami.py").write_text(APP)
    (path / "whoami.py").chmod(0o644)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def unprivileged() -> tuple[str, str, int, int]:
    """nobody/nogroup, which Debian always has (created by base-passwd)."""
    user = pwd.getpwnam("nobody")
    group = grp.getgrgid(user.pw_gid)
    return user.pw_name, group.gr_name, user.pw_uid, user.pw_gid


@needs_root
def test_workers_and_zygote_drop_before_importing_the_app(
        start_server: StartServer, shared_dir: Path,
        unprivileged: tuple[str, str, int, int]) -> None:
    import json

    user, group, uid, gid = unprivileged
    access = shared_dir / "access.log"
    server = start_server("--app", "whoami:handler", "-w", "2", "--user", user,
                          "--group", group, "--access-logfile", str(access), cwd=shared_dir)
    status, _, body = server.request("GET", "/")
    assert status == 200
    seen = json.loads(body)
    assert seen["imported_as"] == [uid, uid, gid]  # the zygote dropped before the import
    assert seen["now"][:3] == [uid, uid, gid]
    assert set(seen["now"][3]) <= {gid} | {g.gr_gid for g in grp.getgrall()
                                           if user in g.gr_mem}  # initgroups, not root's

    worker = seen["pid"]
    ids = _ids(worker)
    assert ids["Uid"] == [uid] * 4 and ids["Gid"] == [gid] * 4  # real, effective, saved, fs
    assert 0 not in ids["Groups"]
    zygotes = [p for p in server.children() if "zygote" in cmdline(p)]
    assert zygotes and all(_ids(p)["Uid"] == [uid] * 4 for p in zygotes)
    master = _ids(server.pid)
    assert master["Uid"][0] == 0 and master["Gid"][0] == 0  # the master keeps root

    # The access log was handed over, so the worker (no longer root) could write to it.
    assert wait_until(lambda: access.exists() and '"GET / HTTP/1.1" 200' in access.read_text())
    assert access.stat().st_uid == uid


@needs_root
def test_user_alone_takes_the_users_primary_group(start_server: StartServer, shared_dir: Path,
                                                  unprivileged: tuple[str, str, int, int]) -> None:
    import json

    user, _, uid, gid = unprivileged
    server = start_server("--app", "whoami:handler", "--user", str(uid), cwd=shared_dir)
    assert json.loads(server.request("GET", "/")[2])["now"][:3] == [uid, uid, gid]


def test_unknown_user_fails_at_startup(tmp_path: Path) -> None:
    result = run_forkhttpd("--app", "mymod:handler", "--user", "no-such-user-xyz",
                           "--bind", "127.0.0.1:1", cwd=APPS, timeout=20)
    assert result.returncode == 2
    assert "--user no-such-user-xyz: no such user" in result.stderr


@needs_root
def test_check_config_imports_as_the_user(shared_dir: Path,
                                          unprivileged: tuple[str, str, int, int]) -> None:
    user, group, uid, gid = unprivileged
    result = run_forkhttpd("--check-config", "--app", "whoami:handler", "--user", user,
                           "--group", group, cwd=shared_dir, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"as uid {uid}, gid {gid}" in result.stdout


@pytest.mark.parametrize(("umask", "mode"), [("077", 0o700), ("027", 0o750)])
def test_umask_applies_to_what_the_server_creates(start_server: StartServer, tmp_path: Path,
                                                  umask: str, mode: int) -> None:
    path = tmp_path / "s.sock"
    server = start_server("--app", "mymod:handler", "--umask", umask, "--bind",
                          f"unix:{path}", bind_socket=False)
    assert stat.S_IMODE(path.lstat().st_mode) == mode
    server.stop()
    assert not path.exists()  # the master removes its unix socket


def test_chdir_is_where_the_app_is_found(start_server: StartServer, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.py").write_text(
        "def handler(request, response):\n    import os\n    return os.getcwd()\n")
    server = start_server("--app", "elsewhere:handler", "--chdir", str(tmp_path),
                          cwd="/")
    assert server.request("GET", "/")[2] == str(tmp_path).encode()


def test_bad_chdir_is_a_startup_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = run_forkhttpd("--app", "mymod:handler", "--chdir", str(missing),
                           "--bind", "127.0.0.1:1", cwd=APPS, timeout=20)
    assert result.returncode == 2
    assert f"--chdir {missing}: no such directory" in result.stderr
