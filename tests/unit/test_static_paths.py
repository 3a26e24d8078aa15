"""Static path mapping never leaves the root."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from forkhttpd.interfaces.static import content_type_for, map_path, open_beneath, resolve_path


@pytest.fixture
def root(tmp_path: Path) -> str:
    site = tmp_path / "site"
    (site / "sub").mkdir(parents=True)
    (site / "a.txt").write_text("a")
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path / "outside.txt", site / "escape")
    os.symlink(site / "a.txt", site / "inside-link")
    return os.path.realpath(site)


@pytest.mark.parametrize("raw", [
    "/../outside.txt", "/%2e%2e/outside.txt", "/%2E%2E/outside.txt", "/sub/../../outside.txt",
    "/..%2foutside.txt", "/..%2Foutside.txt", "/sub%2f..%2f..%2foutside.txt", "/..\\outside.txt",
    "/%5c..%5coutside.txt", "/a.txt%00", "/a.txt\x00", "/escape", "/./a.txt", "/%2e/a.txt",
])
def test_refuses_escapes(root: str, raw: str) -> None:
    assert resolve_path(root, raw) is None


def test_maps_inside_paths(root: str) -> None:
    assert resolve_path(root, "/a.txt") == os.path.join(root, "a.txt")
    assert resolve_path(root, "//a.txt") == os.path.join(root, "a.txt")
    assert resolve_path(root, "/inside-link") == os.path.join(root, "a.txt")
    assert resolve_path(root, "/") == root
    # absolute paths inside the URL are just segments under the root
    assert resolve_path(root, "/etc/passwd") == os.path.join(root, "etc", "passwd")


def test_follow_symlinks_is_opt_in(root: str) -> None:
    assert resolve_path(root, "/escape", follow_symlinks=True) is not None


def test_content_types() -> None:
    assert content_type_for("x.html") == "text/html; charset=utf-8"
    assert content_type_for("x.css") == "text/css; charset=utf-8"
    assert content_type_for("x.png") == "image/png"
    assert content_type_for("x.zzz") == "text/plain; charset=utf-8"
    assert content_type_for("noext", "application/octet-stream") == "application/octet-stream"


def test_open_beneath_checks_the_opened_descriptor(root: str, tmp_path: Path) -> None:
    """The static handler opens first and checks where the descriptor really points."""
    fd, st = open_beneath(root, os.path.join(root, "inside-link"), follow_symlinks=False)
    try:
        assert os.read(fd, 10) == b"a" and st.st_size == 1
    finally:
        os.close(fd)
    with pytest.raises(FileNotFoundError):
        open_beneath(root, os.path.join(root, "escape"), follow_symlinks=False)
    os.symlink(tmp_path, os.path.join(root, "dir-escape"))  # a directory link out, too
    with pytest.raises(FileNotFoundError):
        open_beneath(root, os.path.join(root, "dir-escape", "outside.txt"), False)
    fd, _ = open_beneath(root, os.path.join(root, "escape"), follow_symlinks=True)
    os.close(fd)


def test_open_beneath_does_not_block_on_a_fifo(root: str) -> None:
    os.mkfifo(os.path.join(root, "pipe"))
    fd, st = open_beneath(root, os.path.join(root, "pipe"), follow_symlinks=False)
    os.close(fd)  # opened at once (O_NONBLOCK), and the caller sees it is no regular file
    assert stat.S_ISFIFO(st.st_mode)


def test_map_path_does_not_resolve_symlinks(root: str) -> None:
    assert map_path(root, "/inside-link") == os.path.join(root, "inside-link")
    assert map_path(root, "/%2e%2e/x") is None
