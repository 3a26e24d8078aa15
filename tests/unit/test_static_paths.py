"""Static path mapping never leaves the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forkhttpd.static import content_type_for, resolve_path


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
