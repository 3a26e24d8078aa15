"""HTTPS over the real server with certificates made at test time: the stdlib client, curl and
openssl s_client; TLS 1.2 at least and ALPN http/1.1; `https` in what the app sees; static files
over TLS (no sendfile); client certificates; a stalled or trickled handshake never holds the one
worker; plain HTTP on the TLS port; certificates re-read on SIGHUP, a bad one failing the reload
while the old generation serves."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from .harness import Server, StartServer, wait_until

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs openssl")


def make_cert(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([OPENSSL or "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def pems(tmp_path: Path) -> tuple[Path, Path]:
    return make_cert(tmp_path / "pki")


def client_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.set_alpn_protocols(["http/1.1"])
    return context


def https_get(server: Server, cert: Path, path: str = "/",
              context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=10,
                                       context=context or client_context(cert))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start_tls(start_server: StartServer, pems: tuple[Path, Path], *args: str) -> Server:
    cert, key = pems
    return start_server("--app", "origin_apps:wsgi", "--interface", "wsgi",
                        "--certfile", str(cert), "--keyfile", str(key), *args)


def test_stdlib_client_alpn_and_https_scheme(start_server: StartServer,
                                             pems: tuple[Path, Path]) -> None:
    server = start_tls(start_server, pems)
    cert = pems[0]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
            client_context(cert).wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        # keep-alive: two requests on one TLS connection
        for _ in range(2):
            tls.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
            response = http.client.HTTPResponse(tls)
            response.begin()
            env = json.loads(response.read())
            assert response.status == 200
            assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
            assert env["SERVER_PORT"] == str(server.port)


def test_curl_and_openssl_s_client(start_server: StartServer, pems: tuple[Path, Path]) -> None:
    server = start_tls(start_server, pems)
    cert = pems[0]
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-sS", "--cacert", str(cert),
                              f"https://localhost:{server.port}/curl",
                              "--resolve", f"localhost:{server.port}:127.0.0.1"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["wsgi.url_scheme"] == "https"
    s_client = subprocess.run(
        [OPENSSL or "openssl", "s_client", "-connect", f"127.0.0.1:{server.port}",
         "-servername", "localhost", "-alpn", "http/1.1", "-CAfile", str(cert),
         "-verify_return_error", "-ign_eof"],
        input=b"GET /s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        capture_output=True, timeout=30)
    text = s_client.stdout.decode(errors="replace")
    assert "ALPN protocol: http/1.1" in text
    assert "Verify return code: 0 (ok)" in text
    assert "HTTP/1.1 200 OK" in text and '"wsgi.url_scheme": "https"' in text
    # below TLS 1.2 nothing is negotiated
    old = subprocess.run(
        [OPENSSL or "openssl", "s_client", "-connect", f"127.0.0.1:{server.port}",
         "-tls1_1", "-CAfile", str(cert)],
        input=b"", capture_output=True, timeout=30)
    assert old.returncode != 0
    assert b"no peer certificate available" in old.stdout  # refused before any certificate


def test_plain_http_to_the_tls_port(start_server: StartServer, pems: tuple[Path, Path]) -> None:
    server = start_tls(start_server, pems)
    answer = server.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"plain HTTP" in answer
    # the server still serves HTTPS
    assert https_get(server, pems[0])[0] == 200


def test_static_file_over_tls(start_server: StartServer, pems: tuple[Path, Path],
                              tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    blob = bytes(range(256)) * 8192  # 2 MiB: several reads and records
    (files / "blob.bin").write_bytes(blob)
    server = start_tls(start_server, pems, "--static", f"/files={files}")
    status, body = https_get(server, pems[0], "/files/blob.bin")
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(blob).digest()


def test_stalled_and_trickled_handshakes_do_not_hold_the_worker(
        start_server: StartServer, pems: tuple[Path, Path]) -> None:
    server = start_tls(start_server, pems, "--workers", "1", "--header-timeout", "3",
                       "--defer-accept", "0")
    cert = pems[0]
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    trickle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        # the first bytes of a ClientHello (a handshake record header), then one byte a while
        trickle.sendall(b"\x16\x03\x01\x02")
        time.sleep(0.3)
        started = time.monotonic()
        status, _ = https_get(server, cert, "/meanwhile")
        assert status == 200
        assert time.monotonic() - started < 2.5  # served while both handshakes are stuck
        for _ in range(3):
            trickle.sendall(b"\x00")
            time.sleep(0.2)
        assert https_get(server, cert)[0] == 200
        # the header deadline ends both (EOF or a reset, with no HTTP answer)
        for sock in (silent, trickle):
            sock.settimeout(8)
            try:
                rest = sock.recv(4096)
            except ConnectionResetError:
                rest = b""
            assert not rest.startswith(b"HTTP/")
            assert rest == b"" or sock.recv(4096) == b""
    finally:
        silent.close()
        trickle.close()


def test_client_certificates_required(start_server: StartServer,
                                      pems: tuple[Path, Path]) -> None:
    cert, key = pems
    server = start_tls(start_server, pems, "--ca-certs", str(cert), "--cert-reqs", "required")
    anonymous = client_context(cert)
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.HTTPException,
                        BrokenPipeError)):
        https_get(server, cert, context=anonymous)
    known = client_context(cert)
    known.load_cert_chain(str(cert), str(key))
    assert https_get(server, cert, context=known)[0] == 200


def _served_cert(server: Server) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def test_certificates_reread_on_sighup(start_server: StartServer, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path / "live", "first")
    server = start_server("--app", "origin_apps:wsgi", "--interface", "wsgi",
                          "--certfile", str(cert), "--keyfile", str(key))
    first = _served_cert(server)
    new_cert, new_key = make_cert(tmp_path / "next", "second")
    shutil.copy(new_cert, cert)
    shutil.copy(new_key, key)
    server.send_signal(signal.SIGHUP)
    second = ssl.PEM_cert_to_DER_cert(new_cert.read_text())
    assert wait_until(lambda: _served_cert(server) == second, timeout=20)
    assert first != second
    # a broken certificate fails the reload; the running generation keeps serving its own
    cert.write_text("not a certificate\n")
    server.send_signal(signal.SIGHUP)
    server.wait_for_log("reload failed", timeout=20)
    assert "--certfile" in server.stderr
    assert _served_cert(server) == second
    assert https_get(server, new_cert)[0] == 200
