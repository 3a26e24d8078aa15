"""Static files over real sockets: the default app and --static mounts next to an app; sendfile
bodies, validators and 304, single ranges (206/416), HEAD, index.html, 301 for a directory
without "/", listings, and traversal attempts that all end in 404."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .harness import Server, StartServer


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "data.bin").write_bytes(bytes(range(256)) * 40)  # 10240 bytes
    (root / "notes.txt").write_text("n\u00f6tes")
    (root / "docs" / "a&b <c>.txt").write_text("escaped")
    (root / "docs" / "B.txt").write_text("b")
    (root / "docs" / ".hidden").write_text("dot")
    (root / "docs" / "deep" / "x.json").write_text("{}")
    (tmp_path / "outside.txt").write_text("top secret")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "s.txt").write_text("top secret too")
    os.symlink(tmp_path / "outside.txt", root / "leak.txt")
    os.symlink(tmp_path / "outside", root / "docs" / "leakdir")
    return root


def test_conditional_requests_ranges_and_head(start_server: StartServer, site: Path) -> None:
    server = start_server(cwd=site)
    status, headers, body = server.request("GET", "/data.bin")
    assert status == 200 and len(body) == 10240 and headers["accept-ranges"] == "bytes"
    etag, modified = headers["etag"], headers["last-modified"]
    assert headers["content-type"] == "application/octet-stream"
    assert server.request("GET", "/notes.txt")[1]["content-type"] == "text/plain; charset=utf-8"
    status, headers, body = server.request("GET", "/data.bin", headers={"If-None-Match": etag})
    assert (status, body, headers["etag"]) == (304, b"", etag)
    assert server.request("GET", "/data.bin", headers={"If-Modified-Since": modified})[0] == 304
    assert server.request("GET", "/data.bin", headers={
        "If-None-Match": '"other"', "If-Modified-Since": modified})[0] == 200
    status, headers, body = server.request("GET", "/data.bin", headers={"Range": "bytes=10-19"})
    assert (status, body) == (206, bytes(range(10, 20)))
    assert headers["content-range"] == "bytes 10-19/10240" and headers["content-length"] == "10"
    status, headers, body = server.request("GET", "/data.bin", headers={"Range": "bytes=-4"})
    assert (status, body, headers["content-range"]) == (206, bytes(range(252, 256)),
                                                        "bytes 10236-10239/10240")
    status, _, body = server.request("GET", "/data.bin", headers={"Range": "bytes=10200-"})
    assert status == 206 and len(body) == 40
    status, headers, _ = server.request("GET", "/data.bin", headers={"Range": "bytes=20000-"})
    assert status == 416 and headers["content-range"] == "bytes */10240"
    # several ranges, or a stale If-Range: the whole file
    assert len(server.request("GET", "/data.bin", headers={"Range": "bytes=0-1,5-6"})[2]) == 10240
    assert server.request("GET", "/data.bin", headers={
        "Range": "bytes=0-1", "If-Range": '"stale"'})[0] == 200
    assert server.request("GET", "/data.bin", headers={
        "Range": "bytes=0-1", "If-Range": etag})[0] == 206
    status, headers, body = server.request("HEAD", "/data.bin")
    assert (status, body, headers["content-length"]) == (200, b"", "10240")
    # keep-alive survives ranged and full sendfile bodies
    raw = server.raw(b"GET /data.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-2\r\n\r\n"
                     b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.count(b"HTTP/1.1 ") == 2 and raw.endswith(b"<h1>home</h1>")


def test_directories_index_redirect_and_listing(start_server: StartServer, site: Path) -> None:
    server = start_server(cwd=site)
    assert server.request("GET", "/")[2] == b"<h1>home</h1>"
    status, headers, _ = server.request("GET", "/docs?x=1")
    assert status == 301 and headers["location"] == "/docs/?x=1"
    # no index.html: the no-app default lists (as python -m http.server does), a --static
    # mount only when asked
    assert server.request("GET", "/docs/")[0] == 200
    mounted = start_server("--static", f"/files={site}", cwd=site)
    assert mounted.request("GET", "/files/docs/")[0] == 404
    listing = start_server("--list-directories", cwd=site)
    status, headers, body = listing.request("GET", "/docs/")
    page = body.decode()
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "a&amp;b &lt;c&gt;.txt" in page and 'href="a%26b%20%3Cc%3E.txt"' in page
    assert page.index("a&amp;b") < page.index("B.txt") < page.index("deep/")
    assert ".hidden" not in page and "leakdir" not in page and "<c>" not in page
    hidden = start_server("--list-directories", "--show-hidden", cwd=site)
    assert ".hidden" in hidden.request("GET", "/docs/")[2].decode()


TRAVERSALS = [
    "/../outside.txt", "/%2e%2e/outside.txt", "/%2E%2E%2Foutside.txt",
    "/docs/..%2f..%2foutside.txt",
    "/docs/%2e%2e/%2e%2e/outside.txt", "/..%5coutside.txt", "/docs\\..\\..\\outside.txt",
    "/index.html%00", "/index.html%00.txt", "/leak.txt", "/docs/leakdir/s.txt", "//etc/passwd",
    "/%2fetc%2fpasswd", "/docs/%c0%ae%c0%ae/outside.txt", "/.%2e/outside.txt",
]


def test_traversal_attempts_are_404(start_server: StartServer, site: Path) -> None:
    server = start_server(cwd=site)
    for attack in TRAVERSALS:
        raw = server.raw(f"GET {attack} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         .encode())
        assert raw.split(b"\r\n", 1)[0] == b"HTTP/1.1 404 Not Found", (attack, raw)
        assert b"secret" not in raw


def test_absolute_path_and_follow_symlinks_opt_in(start_server: StartServer, site: Path,
                                                  tmp_path: Path) -> None:
    server = start_server(cwd=site)
    assert server.request("GET", f"/{tmp_path}/outside.txt")[0] == 404
    raw = server.raw(f"GET {tmp_path}/outside.txt HTTP/1.1\r\nHost: x\r\nConnection: close"
                     "\r\n\r\n".encode())
    assert b"secret" not in raw
    following = start_server("--follow-symlinks", cwd=site)
    assert following.request("GET", "/leak.txt")[2] == b"top secret"


def test_static_mounts_sit_in_front_of_the_app(start_server: StartServer, site: Path,
                                               tmp_path: Path) -> None:
    from .harness import APPS

    server = start_server("--app", "mymod:handler", "--static", f"/assets={site}",
                          "--static", f"/assets/docs={site / 'docs' / 'deep'}", cwd=APPS)
    assert server.request("GET", "/hello")[2] == b"Hello world!"  # the app
    assert server.request("GET", "/assets/notes.txt")[2] == "n\u00f6tes".encode()
    assert server.request("GET", "/assets/docs/x.json")[2] == b"{}"  # the longest prefix
    status, headers, _ = server.request("GET", "/assets")
    assert status == 301 and headers["location"] == "/assets/"
    assert server.request("GET", "/assets/")[2] == b"<h1>home</h1>"
    assert server.request("GET", "/assetsX")[0] == 404  # the app's own 404
    assert server.request("GET", "/assets/../secret.txt")[0] == 404
    assert server.request("GET", "/assets/%2e%2e/secret.txt")[0] == 404
    assert server.request("POST", "/assets/notes.txt", body=b"x")[0] == 405


def test_missing_mount_directory_is_a_startup_error(tmp_path: Path) -> None:
    server = Server("--static", f"/x={tmp_path / 'nope'}", log_dir=tmp_path)
    try:
        assert server.proc.wait(20) == 2
        assert "no such directory" in server.stderr and "Traceback" not in server.stderr
    finally:
        server.stop()
