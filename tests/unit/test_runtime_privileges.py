"""--user/--group resolution: names, numbers, primary groups and the errors a person sees."""

from __future__ import annotations

import grp
import os
import pwd
from typing import Any

import pytest

from forkhttpd.runtime import privileges
from forkhttpd.runtime.privileges import Identity, PrivilegeError, resolve


def test_nothing_asked_nothing_done() -> None:
    assert resolve(None, None) is None
    privileges.drop(None)  # a no-op


def test_user_name_takes_its_primary_group() -> None:
    if os.geteuid() != 0:
        pytest.skip("only root may name another user")
    nobody = pwd.getpwnam("nobody")
    assert resolve("nobody", None) == Identity(nobody.pw_uid, nobody.pw_gid, "nobody",
                                               nobody.pw_dir)


def test_numbers_and_names_agree() -> None:
    if os.geteuid() != 0:
        pytest.skip("only root may name another user")
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    assert resolve(str(nobody.pw_uid), group) == resolve("nobody", str(nobody.pw_gid))


def test_unknown_names_are_errors() -> None:
    with pytest.raises(PrivilegeError, match="--user no-such-user-xyz: no such user"):
        resolve("no-such-user-xyz", None)
    with pytest.raises(PrivilegeError, match="--group no-such-group-xyz: no such group"):
        resolve(None, "no-such-group-xyz")


def test_a_uid_without_passwd_entry_needs_a_group() -> None:
    uid = 3_999_999
    with pytest.raises(PrivilegeError, match="give --group too"):
        resolve(str(uid), None)
    if os.geteuid() == 0:
        assert resolve(str(uid), "4000") == Identity(uid, 4000, None, None)


def test_switching_needs_root(monkeypatch: Any) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    with pytest.raises(PrivilegeError, match="needs root; running as uid 1000"):
        resolve("nobody", None)


def test_hand_over_files_skips_streams(tmp_path: Any) -> None:
    class Settings:
        access_logfile = "-"
        error_logfile = "-"

    assert privileges.hand_over_files(Settings(), Identity(65534, 65534, "nobody")) == []
