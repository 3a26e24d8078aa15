"""CGI programs (RFC 3875) over real sockets: meta-variables, the body on stdin,
Status/Location/Content-Type from the output, local redirects, only executable files, no shell,
a timeout, stderr to the error log, 502 on a malformed response."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from .harness import APPS, StartServer

SCRIPTS = {
    "env.py": """
import json, os, sys
body = sys.stdin.buffer.read()
keys = {k: v for k, v in os.environ.items() if k.isupper()}
keys["BODY"] = body.decode()
keys["CWD"] = os.getcwd()
keys["ARGV"] = sys.argv[1:]
sys.stdout.write("Content-Type: application/json\\r\\n\\r\\n" + json.dumps(keys))
""",
    "status.py": """
import sys
sys.stdout.write("Status: 201 Made\\nContent-Type: text/plain\\nX-Extra: yes\\n\\ncreated")
""",
    "away.py": """
print("Location: https://example.com/elsewhere")
print()
""",
    "local.py": """
print("Location: /static/style.css")
print()
""",
    "noisy.py": """
import sys
sys.stderr.write("something went sideways\\n")
print("Content-Type: text/plain")
print()
print("fine anyway", end="")
""",
    "garbage.py": """
print("this is not a header block")
""",
    "untyped.py": """
print()
print("a body without a type")
""",
    "slow.py": """
import time
time.sleep(30)
""",
    "shell.sh": "echo 'Content-Type: text/plain'; echo; echo shell ran",
}


@pytest.fixture
def cgi_bin(tmp_path: Path) -> Path:
    directory = tmp_path / "cgi-bin"
    (directory / "sub").mkdir(parents=True)
    for name, text in SCRIPTS.items():
        path = directory / name
        shebang = "#!/bin/sh\n" if name.endswith(".sh") else f"#!{sys.executable}\n"
        path.write_text(shebang + text.lstrip("\n"))
        path.chmod(0o755)
    (directory / "sub" / "deep.py").write_text((directory / "status.py").read_text())
    (directory / "sub" / "deep.py").chmod(0o755)
    (directory / "readme.txt").write_text("not a program")  # not executable
    (directory / ".hidden.py").write_text((directory / "status.py").read_text())
    (directory / ".hidden.py").chmod(0o755)
    (tmp_path / "outside.py").write_text((directory / "status.py").read_text())
    (tmp_path / "outside.py").chmod(0o755)
    return directory


def test_meta_variables_and_body_on_stdin(start_server: StartServer, cgi_bin: Path) -> None:
    server = start_server("--cgi-dir", f"/cgi-bin={cgi_bin}")
    status, headers, body = server.request(
        "POST", "/cgi-bin/env.py/extra/p%20ath?q=1&r=two", body=b"posted body",
        headers={"Content-Type": "text/plain", "X-Custom": "v", "Proxy": "http://evil",
                 "Authorization": "Basic c2VjcmV0"})
    env = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1" and env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.py" and env["PATH_INFO"] == "/extra/p ath"
    assert env["QUERY_STRING"] == "q=1&r=two"
    assert env["CONTENT_LENGTH"] == "11" and env["CONTENT_TYPE"] == "text/plain"
    assert env["BODY"] == "posted body"
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1" and env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_X_CUSTOM"] == "v" and "HTTP_PROXY" not in env  # httpoxy
    assert env["AUTH_TYPE"] == "Basic" and "HTTP_AUTHORIZATION" not in env
    assert env["CWD"] == str(cgi_bin) and env["ARGV"] == []
    raw = server.raw(b"POST /cgi-bin/env.py HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                     b"\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    env = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert env["BODY"] == "hello" and env["CONTENT_LENGTH"] == "5"


def test_output_fields_redirects_and_errors(start_server: StartServer, cgi_bin: Path) -> None:
    server = start_server("--cgi-dir", f"/cgi-bin={cgi_bin}", "--static",
                          f"/static={APPS / 'site'}")
    status, headers, body = server.request("GET", "/cgi-bin/status.py")
    assert (status, body, headers["x-extra"]) == (201, b"created", "yes")
    assert headers["server"] == "forkhttpd" and headers["date"].endswith(" GMT")
    assert server.request("GET", "/cgi-bin/sub/deep.py")[0] == 201
    status, headers, _ = server.request("GET", "/cgi-bin/away.py")
    assert status == 302 and headers["location"] == "https://example.com/elsewhere"
    status, headers, body = server.request("GET", "/cgi-bin/local.py")  # a local redirect
    assert (status, body) == (200, (APPS / "site" / "style.css").read_bytes())
    assert "location" not in headers
    assert server.request("GET", "/cgi-bin/noisy.py")[2] == b"fine anyway"
    server.wait_for_log("something went sideways")
    assert server.request("GET", "/cgi-bin/garbage.py")[0] == 502
    assert server.request("GET", "/cgi-bin/untyped.py")[0] == 502
    assert server.request("GET", "/cgi-bin/shell.sh")[2] == b"shell ran\n"  # its own #!
    assert "Traceback" not in server.stderr


def test_a_program_past_its_time_is_killed(start_server: StartServer, cgi_bin: Path) -> None:
    server = start_server("--cgi-dir", f"/cgi-bin={cgi_bin}", "--cgi-timeout", "1")
    started = time.monotonic()
    assert server.request("GET", "/cgi-bin/slow.py")[0] == 504
    assert time.monotonic() - started < 8
    server.wait_for_log("--cgi-timeout")
    assert server.request("GET", "/echo.py")[0] == 200  # the worker lives on (static files)


def test_only_executable_files_inside_the_directory(start_server: StartServer,
                                                    cgi_bin: Path) -> None:
    server = start_server("--cgi-dir", f"/cgi-bin={cgi_bin}")
    for path in ("/cgi-bin/readme.txt", "/cgi-bin/.hidden.py", "/cgi-bin/", "/cgi-bin/sub",
                 "/cgi-bin/missing.py", "/cgi-bin/../outside.py", "/cgi-bin/%2e%2e/outside.py",
                 "/cgi-bin/sub/..%2f..%2foutside.py", "/cgi-bin/status.py%00"):
        status, _, body = server.request("GET", path)
        assert status == 404, path
        assert b"created" not in body
    os.chmod(cgi_bin / "status.py", 0o644)
    assert server.request("GET", "/cgi-bin/status.py")[0] == 404
