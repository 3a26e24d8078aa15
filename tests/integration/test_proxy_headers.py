"""Forwarding fields over the real server: from a --forwarded-allow-ips peer, X-Forwarded-* and
Forwarded set the client, scheme, host and port that WSGI, native handlers, CGI programs and the
access log see; from any other peer (spoofing) they change nothing; malformed values are
ignored, never a 500; --root-path as SCRIPT_NAME.

Trusted and untrusted peers are both on loopback: the server trusts 127.0.0.2 only, and a
client binds its source address to 127.0.0.2 (trusted) or 127.0.0.1 (a stranger)."""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path
from typing import Any

from .harness import Server, StartServer, wait_until

PROXY = "127.0.0.2"
STRANGER = "127.0.0.1"
SPOOF = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
         "X-Forwarded-Host": "shop.example:8443", "X-Forwarded-Port": "8443",
         "Forwarded": "for=198.51.100.9;proto=https"}


def ask(server: Server, path: str = "/", headers: dict[str, str] | None = None,
        source: str = PROXY) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, body


def test_wsgi_sees_what_the_trusted_proxy_says(start_server: StartServer) -> None:
    server = start_server("--app", "origin_apps:wsgi", "--interface", "wsgi",
                          "--forwarded-allow-ips", PROXY)
    status, env = ask(server, "/p", {"X-Forwarded-For": "6.6.6.6, 203.0.113.7",
                                     "X-Forwarded-Proto": "https",
                                     "X-Forwarded-Host": "shop.example"})
    assert status == 200
    # the right-most hop the proxy did not add itself: the client's own claim (6.6.6.6) loses
    assert env["REMOTE_ADDR"] == "203.0.113.7" and env["REMOTE_PORT"] is None
    assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
    assert env["HTTP_HOST"] == "shop.example" and env["SERVER_NAME"] == "shop.example"
    assert env["SERVER_PORT"] == "443"
    # RFC 7239 Forwarded alone works too
    status, env = ask(server, "/", {"Forwarded": 'for="[2001:db8::7]:4711";proto=https'})
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["wsgi.url_scheme"]) == (
        "2001:db8::7", "4711", "https")
    # X-Forwarded-Port says the port outright
    status, env = ask(server, "/", {"X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443"})
    assert env["SERVER_PORT"] == "8443"


def test_spoofed_fields_from_an_untrusted_peer_change_nothing(
        start_server: StartServer) -> None:
    server = start_server("--app", "origin_apps:wsgi", "--interface", "wsgi",
                          "--forwarded-allow-ips", PROXY)
    status, env = ask(server, "/", SPOOF, source=STRANGER)
    assert status == 200
    assert env["REMOTE_ADDR"] == STRANGER and env["REMOTE_PORT"] is not None
    assert env["wsgi.url_scheme"] == "http" and env["HTTPS"] is None
    assert env["HTTP_HOST"] == f"127.0.0.1:{server.port}"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"  # passed through as a plain field


def test_no_trusted_peer_at_all(start_server: StartServer) -> None:
    server = start_server("--app", "origin_apps:wsgi", "--interface", "wsgi",
                          "--forwarded-allow-ips", "")
    status, env = ask(server, "/", SPOOF, source=STRANGER)
    assert env["REMOTE_ADDR"] == STRANGER and env["wsgi.url_scheme"] == "http"


def test_malformed_values_are_ignored_never_a_500(start_server: StartServer) -> None:
    server = start_server("--app", "origin_apps:wsgi", "--interface", "wsgi",
                          "--forwarded-allow-ips", PROXY)
    for headers in ({"X-Forwarded-For": "not-an-ip"}, {"X-Forwarded-For": "1.2.3.4,,"},
                    {"X-Forwarded-Proto": "gopher"}, {"X-Forwarded-Host": "a b"},
                    {"X-Forwarded-Port": "99999"}, {"Forwarded": 'for="unterminated'},
                    {"Forwarded": "for=1.2.3.4;for=5.6.7.8"}):
        status, env = ask(server, "/", headers)
        assert status == 200, headers
        assert env["REMOTE_ADDR"] == PROXY and env["wsgi.url_scheme"] == "http", headers
        assert env["HTTP_HOST"] == f"127.0.0.1:{server.port}", headers


def test_native_handler_cgi_and_access_log_agree(start_server: StartServer,
                                                 tmp_path: Path) -> None:
    cgi = tmp_path / "cgi"
    cgi.mkdir()
    script = cgi / "env.py"
    script.write_text(f"#!{sys.executable}\nimport json, os\n"
                      "print('Content-Type: application/json')\nprint()\n"
                      "print(json.dumps({k: os.environ.get(k) for k in ('REMOTE_ADDR', "
                      "'HTTPS', 'HTTP_HOST', 'SERVER_PORT', 'SCRIPT_NAME', 'PATH_INFO')}))\n")
    script.chmod(0o755)
    log = tmp_path / "access.log"
    server = start_server("--app", "origin_apps:native", "--interface", "native",
                          "--forwarded-allow-ips", PROXY, "--cgi-dir", f"/cgi={cgi}",
                          "--access-logfile", str(log))
    said = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "shop.example"}
    status, seen = ask(server, "/native", said)
    assert status == 200 and seen["peer"][0] == "203.0.113.7"
    status, env = ask(server, "/cgi/env.py/extra", said)
    assert status == 200
    assert env == {"REMOTE_ADDR": "203.0.113.7", "HTTPS": "on", "HTTP_HOST": "shop.example",
                   "SERVER_PORT": "443", "SCRIPT_NAME": "/cgi/env.py", "PATH_INFO": "/extra"}
    status, seen = ask(server, "/native", SPOOF, source=STRANGER)
    assert seen["peer"][0] == STRANGER
    assert wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 3)
    clients = [line.split(" ", 1)[0] for line in log.read_text().splitlines()]
    assert clients == ["203.0.113.7", "203.0.113.7", STRANGER]


def test_root_path(start_server: StartServer, tmp_path: Path) -> None:
    static = tmp_path / "files"
    static.mkdir()
    (static / "a.txt").write_text("static under the root path\n")
    server = start_server("--app", "origin_apps:wsgi", "--interface", "wsgi",
                          "--root-path", "/app", "--static", f"/files={static}")
    # a proxy that passes the prefix through: it moves to SCRIPT_NAME
    status, env = ask(server, "/app/users/7?x=1")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/users/7")
    # a proxy that strips it: the path stays whole, SCRIPT_NAME still names the mount point
    status, env = ask(server, "/users/7")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/users/7")
    # whole segments only
    status, env = ask(server, "/apple")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/apple")
    # mounts see the application's own paths
    status, body = ask(server, "/app/files/a.txt")
    assert status == 200 and body == b"static under the root path\n"
