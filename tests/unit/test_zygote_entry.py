"""The exec'd zygote's start: settings as plain data and back, the bootstrap, the interpreter
options passed on, the scoreboard shared through its memfd, and how little a fresh zygote
imports; no fork (the lean-import check runs a separate interpreter, as the master would)."""

from __future__ import annotations

import dataclasses
import marshal
import os
import subprocess
import sys
import time
from pathlib import Path

from forkhttpd.config.settings import BindAddress, Mount, Settings
from forkhttpd.master import zygote_entry
from forkhttpd.runtime.scoreboard import Scoreboard

REPO = Path(__file__).resolve().parents[2]


def test_every_setting_survives_the_trip_as_plain_data() -> None:
    settings = dataclasses.replace(
        Settings(), app="pkg.mod:app", workers=3, static=(Mount("/s", "./static"),),
        cgi_dir=(Mount("/cgi-bin", "/srv/cgi"),), keep_alive=2.5, user="nobody",
        status_bind=BindAddress("tcp", "127.0.0.1", 9000))
    data = marshal.loads(marshal.dumps(zygote_entry.plain_settings(settings)))
    seen = zygote_entry.settings_from_plain(data)
    for field in dataclasses.fields(Settings):
        value, got = getattr(settings, field.name), getattr(seen, field.name)
        if field.name == "status_bind":
            assert vars(got) == dataclasses.asdict(value)
        elif field.name == "bind":
            assert [vars(b) for b in got] == [dataclasses.asdict(b) for b in value]
        else:
            assert got == value, field.name
    mount = seen.static[0]
    assert (mount.url_prefix, mount.directory, str(mount)) == ("/s", "./static", "/s=./static")


def test_the_bootstrap_is_length_prefixed_marshal() -> None:
    blob = zygote_entry.bootstrap(Settings(), 7, [5, 6], 9, 256, 1234, "mymod:app")
    size = int.from_bytes(blob[:8], "big")
    assert size == len(blob) - 8
    boot = marshal.loads(blob[8:])
    assert (boot["number"], boot["listeners"], boot["board"], boot["master_pid"],
            boot["app_label"]) == (7, (5, 6), (9, 256), 1234, "mymod:app")
    assert list(boot["path"]) == sys.path and list(boot["argv"]) == sys.argv


def test_the_command_runs_this_interpreter_with_this_package() -> None:
    argv = zygote_entry.zygote_command(11, 12)
    assert argv[0] == sys.executable
    assert argv[-4:] == [zygote_entry.BOOTSTRAP, str(REPO), "11", "12"]


def test_the_scoreboard_is_shared_through_its_memfd() -> None:
    board = Scoreboard(4)
    try:
        assert board.fd >= 0
        other = Scoreboard.attach(os.dup(board.fd), 4)  # as an exec'd zygote maps it
        other.close_fd()
        board.claim(1, 4321, 2, 5, time.monotonic(), time.time())
        assert other.read(1).pid == 4321
        other.slot(1).beat(123.0)
        assert board.read(1).last_beat == 123.0
    finally:
        board.close_fd()
    assert board.fd == -1


def test_a_fresh_zygote_imports_none_of_the_master() -> None:
    # What an exec'd zygote imports before the app: the worker's modules, not the master's.
    code = ("import sys\n"
            "from forkhttpd.master import zygote_entry\n"
            "from forkhttpd.master import zygote\n"
            "from forkhttpd.interfaces import router\n"
            "print(' '.join(sorted(sys.modules)))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", check=True,
                         capture_output=True, text=True).stdout.split()
    master_only = {"argparse", "tomllib", "psutil", "ctypes", "forkhttpd.config.settings",
                   "forkhttpd.config.table", "forkhttpd.master.health", "forkhttpd.master.status",
                   "forkhttpd.master.arbiter", "forkhttpd.master.generations",
                   "forkhttpd.cli", "forkhttpd.runtime.privileges", "forkhttpd.master.metrics",
                   "subprocess", "forkhttpd.interfaces.cgi", "forkhttpd.interfaces.loader",
                   "forkhttpd.ops.run", "forkhttpd.ops.compat",
                   "forkhttpd.interfaces.compat_pyhttp"}
    assert master_only.isdisjoint(out), sorted(master_only & set(out))
